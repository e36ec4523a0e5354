"""A private sound server (PulseAudio or PipeWire) whose one microphone hears the known tone, without a break.

The tone (over a quiet noise) is written to a ``pacat`` on the microphone's feed by a thread of
the harness; the pipe's back-pressure paces it, so the phase runs on seamlessly for as long as
the run lasts. An independent capture of the microphone (``reference.Reference``) runs as long.

Two conditions:

``keepalive``
    Other clients keep the source at 20 ms packets (``--keepalive-ms``): PulseAudio's silent
    keep-alive stream on the feed and the reference capture, both at 20 ms (on PipeWire, the
    reference's 20 ms pulls the graph's quantum down to 1024 at 48 kHz). A desktop where a
    browser or a call also listens to the microphone looks like this.
``alone``
    The recorder under test is the only client that sets the pace: the feed, the keep-alive and
    the reference ask for :data:`ALONE_MS`, longer than any recorder does. On PipeWire the
    reference asks for :data:`PIPEWIRE_ALONE_REFERENCE_MS`: above the graph's largest quantum
    (2048 at 48 kHz, 42.7 ms), so the graph still runs at the pace the recorder sets, while
    pipewire-pulse hands a 2 s client its audio in a few late lumps that cannot be placed.
"""

from __future__ import annotations

import os
import subprocess
import threading
from types import TracebackType

from micrec.vmic import MicSpec, VirtualMicrophone

from .reference import Reference, end_process
from .tone import feed_period

#: How much tone the server holds ahead: enough that a busy machine never starves the feed
#: (a starved feed puts silence into the microphone, which would read as the recorder's dropout).
#: The microphone still renders in 20 ms steps: VirtualMicrophone keeps a 20 ms stream on it.
_FEED_BUFFER_MS = 500
#: What every other client asks for in the "alone" condition (PulseAudio's longest for a null sink).
ALONE_MS = 2000
PIPEWIRE_ALONE_REFERENCE_MS = 100
#: 44.1 kHz stereo like the main configuration, so that it needs no conversion on the server.
MIC = MicSpec("benchmic", 44100, 2, "Benchmark microphone")


class BenchMicrophone:
    """``with BenchMicrophone() as mic:`` — the server runs and the tone plays inside the block."""

    def __init__(self, keepalive_ms: int | None = None, server: str = "pulseaudio", *, alone: bool = False,
                 reference: bool = True) -> None:
        # The keep-alive's latency sets how often the server sends every recorder a packet
        # (20 ms: ~600 a second; a real microphone follows its recorders' latency, as 100 ms does).
        # VirtualMicrophone starts none on PipeWire: its graph runs at the quantum its clients ask for.
        self.latency_ms = ALONE_MS if alone else keepalive_ms or 20
        self._feed_ms = ALONE_MS if alone else _FEED_BUFFER_MS
        self._reference_ms = PIPEWIRE_ALONE_REFERENCE_MS if alone and server == "pipewire" else self.latency_ms
        self.vm = VirtualMicrophone(mics=(MIC,), speaker=False, keepalive_latency_ms=self.latency_ms,
                                    server=server)
        self.reference: Reference | None = None
        self._with_reference = reference
        self._player: subprocess.Popen[bytes] | None = None
        self._feeder: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def env(self) -> dict[str, str]:
        return self.vm.env

    def __enter__(self) -> BenchMicrophone:
        self.vm.start()
        try:
            self._start_tone()
            if self._with_reference:
                self.reference = Reference(self.env, MIC.name, MIC.rate, self._reference_ms).__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.reference is not None:
            self.reference.__exit__(None, None, None)
        self._stop.set()
        if self._player is not None:
            end_process(self._player)
        if self._feeder is not None:
            self._feeder.join(timeout=5)
        self.vm.stop()

    def _start_tone(self) -> None:
        self._player = subprocess.Popen(
            ["pacat", "-p", f"--latency-msec={self._feed_ms}", "--raw", "--format=s16le", f"--rate={MIC.rate}",
             f"--channels={MIC.channels}", "-d", MIC.feed_sink],
            env=self.vm.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._feeder = threading.Thread(target=self._feed, name="bench-tone", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        assert self._player is not None and self._player.stdin is not None
        fd = self._player.stdin.fileno()
        period = memoryview(feed_period(MIC.rate, MIC.channels))
        try:
            while not self._stop.is_set():
                view = period
                while view:
                    view = view[os.write(fd, view):]
        except OSError:
            return  # the player was stopped
