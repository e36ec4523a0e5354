"""Where a take's last audio sits in wall-clock time: an independent capture of the microphone.

A ``parec`` of the benchmark microphone runs for the whole run, read by a thread that notes the
``time.monotonic()`` of every read and how many frames had arrived by then. The frame the server
delivered at time *t* follows from those notes: audio cannot arrive before it is sent, so the
lower envelope of ``t_read - frames_so_far / rate`` over the reads near *t* is when frame 0 was
sent, as the server's clock runs (a local estimate, so clock drift and a late read do not count).

A take is placed on that timeline by its content: the feed is a tone over noise that never
repeats within 7 s (``tone.feed_period``), so the last 0.5 s of audio the decoded file holds is
found in the reference by cross-correlation (band-passed to 2-12 kHz, where only the noise is),
to the sample. The time its last sample was sent, minus the stop's (or the kill's) time, is the
take's tail (or, negated, its kill loss).

In the keep-alive condition the reference asks for 20 ms packets and is itself the client that
keeps the source at that pace; in the "alone" condition it asks for 2 s on PulseAudio, as large
as the server allows, and 100 ms on PipeWire, above the graph's largest quantum, so that the
recorder under test is the one that sets the source's pace.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import numpy.typing as npt

#: Seconds of the piece of a take that is looked for (the take's end).
PIECE_S = 0.5
#: How far before and after where it is expected (the stop, the kill) a take's end is looked for:
#: nothing captured after the stop can be in the file, but a tool may lose seconds before it.
SEARCH_BEFORE_S = 2.5
SEARCH_AFTER_S = 1.0
#: Only the noise is correlated: the tone (1 kHz) is periodic and would match every millisecond.
BAND_HZ = (2000.0, 12000.0)
#: The correlation peak must stand this far above any other (outside +-2 ms) to count as found.
MIN_PEAK_RATIO = 2.0
#: How much reference audio is kept (older audio is dropped): a take plus its margins.
_KEEP_S = 90.0
#: Reads within this many seconds of a moment estimate the timeline there.
_ENVELOPE_S = 8.0
_READ_BYTES = 1 << 16
_WAIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Placed:
    """Where the end of a take's audio was found."""

    sent_at: float  # time.monotonic() when the server sent the take's last sample
    peak_ratio: float  # correlation peak / the next best one (confidence)


class Reference:
    """``with Reference(env, source, rate, latency_ms):`` an independent, timestamped capture (mono s16)."""

    def __init__(self, env: dict[str, str], source: str, rate: int, latency_ms: int) -> None:
        self.rate = rate
        self._argv = ["parec", "--raw", "--format=s16le", f"--rate={rate}", "--channels=1",
                      f"--latency-msec={latency_ms}", "-d", source]
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._dropped_frames = 0  # frames before the first kept chunk
        self._frames = 0
        self._reads: list[tuple[float, int]] = []  # (monotonic time of the read, frames so far)
        self._pending = b""

    def __enter__(self) -> Reference:
        self._proc = subprocess.Popen(self._argv, env=self._env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL)
        self._thread = threading.Thread(target=self._read, name="bench-reference", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            end_process(self._proc)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, _READ_BYTES)
            except OSError:
                return
            if not data:
                return
            self.add(data, time.monotonic())

    def add(self, data: bytes, at: float) -> None:
        """Note ``data`` (s16le mono) read at monotonic time ``at``."""
        data, self._pending = self._pending + data, b""
        if len(data) % 2:
            data, self._pending = data[:-1], data[-1:]
        with self._lock:
            self._chunks.append(data)
            self._frames += len(data) // 2
            self._reads.append((at, self._frames))
            self._trim(at)

    def _trim(self, now: float) -> None:
        while self._reads and self._reads[0][0] < now - _KEEP_S:
            self._reads.pop(0)
        keep_from = self._frames - int(_KEEP_S * self.rate)
        while self._chunks and self._dropped_frames + len(self._chunks[0]) // 2 < keep_from:
            self._dropped_frames += len(self._chunks.pop(0)) // 2

    def origin(self, moment: float) -> float | None:
        """When frame 0 was sent, estimated from the reads within a few seconds of ``moment``."""
        with self._lock:
            near = [t - frames / self.rate for t, frames in self._reads if abs(t - moment) <= _ENVELOPE_S]
        return min(near) if near else None

    def wait_until(self, moment: float) -> bool:
        """Wait until the reference has audio sent at least up to ``moment``; False if it never does."""
        deadline = time.monotonic() + _WAIT_TIMEOUT_S + max(0.0, moment - time.monotonic())
        while time.monotonic() < deadline:
            origin = self.origin(moment)
            with self._lock:
                frames = self._frames
            if origin is not None and origin + frames / self.rate >= moment:
                return True
            time.sleep(0.05)
        return False

    def audio(self) -> tuple[int, npt.NDArray[np.float64]]:
        """(index of the first kept frame, every kept frame as floats in [-1, 1))."""
        with self._lock:
            start, data = self._dropped_frames, b"".join(self._chunks)
        return start, np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768

    def place_end(self, take: npt.NDArray[np.float64], expected: float) -> Placed | None:
        """When the server sent the last sample of ``take`` (mono floats at :attr:`rate`), or None.

        The take's end is looked for from :data:`SEARCH_BEFORE_S` before ``expected`` (a monotonic
        time) to :data:`SEARCH_AFTER_S` after.
        """
        piece_len = int(PIECE_S * self.rate)
        if len(take) < piece_len or not self.wait_until(expected + SEARCH_AFTER_S):
            return None
        origin = self.origin(expected)
        start, ref = self.audio()
        if origin is None:
            return None
        centre = int((expected - origin) * self.rate) - start
        lo = max(0, centre - int(SEARCH_BEFORE_S * self.rate) - piece_len)
        hi = min(len(ref), centre + int(SEARCH_AFTER_S * self.rate))
        if hi - lo < piece_len * 2:
            return None
        offset, ratio = locate(take[-piece_len:], ref[lo:hi], self.rate)
        if ratio < MIN_PEAK_RATIO:
            return None
        last_frame = start + lo + offset + piece_len - 1
        return Placed(origin + (last_frame + 1) / self.rate, ratio)


def end_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Terminate ``proc`` (one the harness started), killing it if it does not exit in time."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=timeout)


def locate(piece: npt.NDArray[np.float64], haystack: npt.NDArray[np.float64], rate: int) -> tuple[int, float]:
    """Where ``piece`` starts in ``haystack`` (samples), and how far its peak stands above the rest."""
    size = 1 << int(np.ceil(np.log2(len(haystack) + len(piece))))
    freqs = np.fft.rfftfreq(size, 1 / rate)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    spectrum = np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(piece, size)) * band
    corr = np.fft.irfft(spectrum, size)[: len(haystack) - len(piece) + 1]
    best = int(np.argmax(corr))
    guard = int(0.002 * rate)
    rest = np.concatenate([corr[: max(0, best - guard)], corr[best + guard + 1:]])
    runner_up = float(np.max(np.abs(rest))) if len(rest) else 0.0
    return best, float(corr[best] / runner_up) if runner_up > 0 else float("inf")


def trim_trailing_quiet(mono: npt.NDArray[np.float64], rate: int) -> npt.NDArray[np.float64]:
    """``mono`` without the near-silence an encoder pads its last frame with (10 ms windows)."""
    window = rate // 100
    count = len(mono) // window
    if count < 3:
        return mono
    rms = np.sqrt((mono[: count * window].reshape(count, window) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms >= 0.25 * np.median(rms))
    if not len(loud):
        return mono[:0]
    return mono if loud[-1] == count - 1 else mono[: (loud[-1] + 1) * window]
