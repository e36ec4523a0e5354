"""A virtual microphone on a private PulseAudio server.

Machines without a sound card (servers, CI, containers) have no microphone to record. This
module starts a PulseAudio daemon of its own, in a private runtime directory, with a null
sink as the *feed* and a ``module-remap-source`` on its monitor, so that the feed shows up as
an ordinary capture source. Whatever is played into the feed is what the microphone hears.

It is used by ``micrec demo`` (clearly labelled as a virtual microphone), by the test suite
and by the benchmarks. It only ever stops the processes it started.

Examples
--------
>>> with VirtualMicrophone() as vm:                      # doctest: +SKIP
...     vm.play_tone(440.0, seconds=3.0)
...     rec = AudioRecorder(device=vm.source_name)
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .errors import BackendUnavailableError

__all__ = ["MicSpec", "VirtualMicrophone", "write_wav"]

_START_TIMEOUT = 10.0
_CMD_TIMEOUT = 10.0
# The keep-alive streams run ahead of other work where the user may raise priority (root; the
# daemon's render threads are real-time too); elsewhere nice only warns and runs them as they are.
_AHEAD = ("nice", "-n", "-10")


@dataclass(frozen=True)
class MicSpec:
    """One virtual microphone: a feed sink and the source that listens to it."""

    name: str = "vmic"
    rate: int = 48000
    channels: int = 1
    description: str = "Virtual microphone"

    @property
    def feed_sink(self) -> str:
        return f"{self.name}_feed"


@dataclass
class VirtualMicrophone:
    """A private PulseAudio server with one or more virtual microphones.

    Parameters
    ----------
    mics : sequence of MicSpec, optional
        The microphones to create. The first is the server's default source.
    speaker : bool
        Also create a null sink ``speaker`` as the default output (echo tests use its monitor).
    keepalive_latency_ms : int
        Latency of the silent stream kept open on every feed. A null sink renders in 2 s bursts
        without one; its latency also sets how often the server sends capture packets to every
        client (20 ms: ~600 packets/s), which weighs on CPU benchmarks. A real microphone
        follows its recorders' latency instead: 100 ms models that better.
    """

    mics: Sequence[MicSpec] = (MicSpec(),)
    speaker: bool = True
    keepalive_latency_ms: int = 20
    runtime_dir: Path = field(init=False)
    _daemon: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _keepalive: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)
    _samples: list[str] = field(default_factory=list, init=False)
    _saved_env: dict[str, str | None] = field(default_factory=dict, init=False)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> VirtualMicrophone:
        """Start the daemon, wait until it answers, and make it render with low latency."""
        if shutil.which("pulseaudio") is None or shutil.which("pacat") is None:
            raise BackendUnavailableError(
                "the virtual microphone needs PulseAudio: apt-get install pulseaudio pulseaudio-utils"
            )
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="micrec-pulse-"))
        (self.runtime_dir / "home").mkdir()
        config = self.runtime_dir / "default.pa"
        config.write_text(self._config_text())
        log = open(self.runtime_dir / "daemon.log", "wb")  # noqa: SIM115 - kept for the daemon's life
        self._daemon = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--system=false", "-n",
             "-F", str(config), "--use-pid-file=no", "--disallow-exit", "--log-target=stderr",
             "--realtime=yes", "--high-priority=yes"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()
        try:
            self._wait_ready()
            for mic in self.mics:
                self._keepalive.append(self._spawn_silence(mic))
            self._warm_up()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the players and the daemon this object started, and remove its directory."""
        for proc in self._keepalive:
            _terminate(proc)
        self._samples.clear()
        self._keepalive.clear()
        if self._daemon is not None:
            _terminate(self._daemon)
            self._daemon = None
        if getattr(self, "runtime_dir", None) is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def __enter__(self) -> VirtualMicrophone:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- environment -------------------------------------------------------------------------
    @property
    def server(self) -> str:
        """The PULSE_SERVER address of the private daemon."""
        return f"unix:{self.runtime_dir / 'native'}"

    @property
    def env(self) -> dict[str, str]:
        """An environment in which PulseAudio clients talk to the private daemon."""
        env = dict(os.environ)
        env.update(self.env_overrides)
        return env

    @property
    def env_overrides(self) -> dict[str, str]:
        return {
            "PULSE_SERVER": self.server,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "HOME": str(self.runtime_dir / "home"),
            "PULSE_RUNTIME_PATH": str(self.runtime_dir),
        }

    @contextmanager
    def activated(self) -> Iterator[VirtualMicrophone]:
        """Point this process's PulseAudio clients at the private daemon for the block."""
        self.activate()
        try:
            yield self
        finally:
            self.deactivate()

    def activate(self) -> None:
        for key, value in self.env_overrides.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def deactivate(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    @property
    def source_name(self) -> str:
        """The source name (device id) of the first microphone."""
        return self.mics[0].name

    # -- feeding -----------------------------------------------------------------------------
    # Feeds are played by the server itself from its sample cache (upload-sample, play-sample),
    # on its real-time render threads: no client process has to keep up, so a busy machine
    # cannot starve the "microphone" into gaps of silence.
    def play_file(self, path: str | os.PathLike[str], mic: str | None = None) -> str:
        """Play a WAV file (up to 16 MB) into a microphone's feed; returns the sample's name."""
        spec = self._mic(mic)
        name = f"micrec_feed_{len(self._samples)}"
        self.pactl("upload-sample", os.fspath(path), name)
        self._samples.append(name)
        self.pactl("play-sample", name, spec.feed_sink)
        return name

    def play_samples(self, samples: object, rate: int, mic: str | None = None) -> str:
        """Write int16 ``samples`` (frames x channels, or 1-D) to a WAV file and play it."""
        path = self.runtime_dir / f"feed-{len(self._samples)}.wav"
        write_wav(path, samples, rate)
        return self.play_file(path, mic)

    def play_tone(self, frequency: float, seconds: float, amplitude: float = 0.5,
                  mic: str | None = None) -> str:
        """Play a sine tone into a microphone's feed, at the feed's rate."""
        import numpy as np

        spec = self._mic(mic)
        t = np.arange(int(seconds * spec.rate)) / spec.rate
        tone = np.round(amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
        return self.play_samples(tone, spec.rate, mic)

    def stop_players(self) -> None:
        """Stop everything that is playing into the feeds (the keep-alive streams stay)."""
        if not self._samples:
            return
        ours = set(self._samples)
        for stream in json.loads(self.pactl("--format=json", "list", "sink-inputs") or "[]"):
            if stream.get("properties", {}).get("media.name") in ours:
                # The server's own sample players cannot be killed, only silenced; one that
                # ended since the listing is gone already, which is fine.
                subprocess.run(["pactl", "set-sink-input-mute", str(stream["index"]), "1"], env=self.env,
                               capture_output=True, timeout=_CMD_TIMEOUT, check=False)
        for name in self._samples:
            self.pactl("remove-sample", name)
        self._samples.clear()

    def pactl(self, *args: str) -> str:
        """Run ``pactl`` against the private daemon and return its output."""
        result = subprocess.run(["pactl", *args], env=self.env, capture_output=True,
                                timeout=_CMD_TIMEOUT, check=True)
        return result.stdout.decode()

    # -- internals ---------------------------------------------------------------------------
    def _mic(self, name: str | None) -> MicSpec:
        if name is None:
            return self.mics[0]
        for spec in self.mics:
            if name in (spec.name, spec.feed_sink):
                return spec
        raise KeyError(f"no virtual microphone named {name!r}")

    def _config_text(self) -> str:
        lines = [f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.runtime_dir / 'native'}"]
        if self.speaker:
            lines.append("load-module module-null-sink sink_name=speaker rate=48000 channels=2 "
                         "sink_properties=device.description=Speaker")
        for spec in self.mics:
            lines += [
                f"load-module module-null-sink sink_name={spec.feed_sink} rate={spec.rate} "
                f"channels={spec.channels} sink_properties=\"device.description='Feed of {spec.name}'\"",
                f"load-module module-remap-source master={spec.feed_sink}.monitor source_name={spec.name} "
                f"channels={spec.channels} rate={spec.rate} "
                f"source_properties=\"device.description='{spec.description}'\"",
            ]
        lines.append(f"set-default-source {self.mics[0].name}")
        if self.speaker:
            lines.append("set-default-sink speaker")
        return "\n".join(lines) + "\n"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._daemon is not None
            if self._daemon.poll() is not None:
                log = (self.runtime_dir / "daemon.log").read_text(errors="replace")
                raise BackendUnavailableError(f"the private PulseAudio server exited: {log[-2000:]}")
            probe = subprocess.run(["pactl", "info"], env=self.env, capture_output=True,
                                   timeout=_CMD_TIMEOUT)
            if probe.returncode == 0:
                return
            time.sleep(0.05)
        raise BackendUnavailableError("the private PulseAudio server did not answer within 10 s")

    def _spawn_silence(self, spec: MicSpec) -> subprocess.Popen[bytes]:
        # A null sink renders in bursts of up to 2 s unless a connected stream asks for low
        # latency; a silent stream kept open on the feed makes it render in 20 ms steps.
        return subprocess.Popen(
            [*_AHEAD, "pacat", "-p", f"--latency-msec={self.keepalive_latency_ms}", "--raw", "--format=s16le",
             f"--rate={spec.rate}", f"--channels={spec.channels}", "-d", spec.feed_sink, "/dev/zero"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _warm_up(self) -> None:
        # The first capture streams after start may get audio late; one short read settles it.
        for spec in self.mics:
            self._read_briefly(spec)

    def _read_briefly(self, spec: MicSpec) -> None:
        proc = subprocess.Popen(
            ["parec", "--raw", "--latency-msec=20", "-d", spec.name, "--format=s16le",
             f"--rate={spec.rate}", "--channels=1"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            wanted, deadline = spec.rate // 10 * 2, time.monotonic() + 5.0  # 100 ms of audio
            while wanted > 0 and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 0.5)
                if ready:
                    chunk = os.read(proc.stdout.fileno(), wanted)
                    if not chunk:
                        break
                    wanted -= len(chunk)
        finally:
            _terminate(proc)


def write_wav(path: str | os.PathLike[str], samples: object, rate: int) -> None:
    """Write int16 samples (1-D, or frames x channels) to a 16-bit WAV file."""
    import numpy as np

    data = np.asarray(samples, dtype=np.int16)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(data).tobytes())


def _terminate(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)

