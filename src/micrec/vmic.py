"""A virtual microphone on a private sound server: PulseAudio or PipeWire.

Machines without a sound card (servers, CI, containers) have no microphone to record. This
module starts a sound server of its own, in a private runtime directory, with a null sink as
the *feed* and a ``module-remap-source`` on its monitor, so that the feed shows up as an
ordinary capture source. Whatever is played into the feed is what the microphone hears.

The server is either PulseAudio (``server="pulseaudio"``) or PipeWire with WirePlumber and
pipewire-pulse (``server="pipewire"``), what most Linux desktops run today. Both speak the
PulseAudio protocol to clients, so the same clients (micrec, pactl, paplay) work on either.

It is used by ``micrec demo`` (clearly labelled as a virtual microphone), by the test suite
and by the benchmarks. It only ever stops the processes it started.

Examples
--------
>>> with VirtualMicrophone() as vm:                      # doctest: +SKIP
...     vm.play_tone(440.0, seconds=3.0)
...     rec = AudioRecorder(device=vm.source_name)
>>> with VirtualMicrophone(server="pipewire") as vm:     # doctest: +SKIP
...     print(vm.node_latencies())
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import wave
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import BackendUnavailableError

__all__ = ["SERVERS", "MicSpec", "VirtualMicrophone", "install_command", "missing_programs", "stream_latencies_ms",
           "write_wav"]

#: The sound servers a virtual microphone can run on.
SERVERS = ("pulseaudio", "pipewire")

_START_TIMEOUT = 20.0
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
    """A private sound server (PulseAudio or PipeWire) with one or more virtual microphones.

    Parameters
    ----------
    mics : sequence of MicSpec, optional
        The microphones to create. The first is the server's default source.
    speaker : bool
        Also create a null sink ``speaker`` as the default output (echo tests use its monitor).
    keepalive_latency_ms : int
        PulseAudio only: latency of the silent stream kept open on every feed. A null sink
        renders in 2 s bursts without one; its latency also sets how often the server sends
        capture packets to every client (20 ms: ~600 packets/s), which weighs on CPU
        benchmarks. A real microphone follows its recorders' latency instead: 100 ms models
        that better. PipeWire needs none (its null sinks render at the graph's quantum), and
        one would pull the quantum down, so none is started there.
    server : {"pulseaudio", "pipewire"}
        The sound server to run: PulseAudio 16, or PipeWire with WirePlumber and
        pipewire-pulse (which serves PulseAudio clients).
    """

    mics: Sequence[MicSpec] = (MicSpec(),)
    speaker: bool = True
    keepalive_latency_ms: int = 20
    server: str = "pulseaudio"
    runtime_dir: Path = field(init=False)
    _daemon: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _keepalive: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)
    _samples: list[str] = field(default_factory=list, init=False)
    _saved_env: dict[str, str | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.server not in SERVERS:
            raise ValueError(f"unknown sound server {self.server!r}: use one of {', '.join(SERVERS)}")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> VirtualMicrophone:
        """Start the server, wait until it answers, and create the microphones."""
        missing = missing_programs(self.server)
        if missing:
            raise BackendUnavailableError(
                f"the virtual microphone on {self.server} needs {', '.join(missing)}: {install_command(self.server)}"
            )
        self.runtime_dir = Path(tempfile.mkdtemp(prefix=f"micrec-{self.server}-"))  # mode 700
        (self.runtime_dir / "home").mkdir()
        try:
            if self.is_pipewire:
                self._start_pipewire()
            else:
                self._start_pulseaudio()
            self._warm_up()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the players and the server this object started, and remove its directory."""
        for proc in self._keepalive:
            _terminate(proc)
        self._samples.clear()
        self._keepalive.clear()
        if self._daemon is not None:
            if self.is_pipewire:
                _terminate_group(self._daemon)
            else:
                _terminate(self._daemon)
            self._daemon = None
        if getattr(self, "runtime_dir", None) is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def answers(self) -> bool:
        """Whether the server is up and answering PulseAudio clients (``pactl info`` succeeds)."""
        try:
            self.pactl("info")
        except (subprocess.SubprocessError, OSError):
            return False
        return True

    def restart(self) -> VirtualMicrophone:
        """Stop the server this object started, if any part of it still runs, and start it anew.

        The fresh server has a fresh runtime directory; a process pointed at the old one
        (:meth:`activate`) is pointed at the new one.
        """
        active = bool(self._saved_env)
        self.stop()
        self.start()
        if active:
            self.activate()
        return self

    def __enter__(self) -> VirtualMicrophone:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- environment -------------------------------------------------------------------------
    @property
    def is_pipewire(self) -> bool:
        """Whether the server is PipeWire (with pipewire-pulse) rather than PulseAudio."""
        return self.server == "pipewire"

    @property
    def server_address(self) -> str:
        """The PULSE_SERVER address of the private server."""
        if self.is_pipewire:
            return f"unix:{self.runtime_dir / 'pulse' / 'native'}"
        return f"unix:{self.runtime_dir / 'native'}"

    @property
    def env(self) -> dict[str, str]:
        """An environment in which PulseAudio (and PipeWire) clients talk to the private server."""
        env = dict(os.environ)
        env.update(self.env_overrides)
        return env

    @property
    def env_overrides(self) -> dict[str, str]:
        overrides = {
            "PULSE_SERVER": self.server_address,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "HOME": str(self.runtime_dir / "home"),
            "PULSE_RUNTIME_PATH": str(self.runtime_dir / "pulse" if self.is_pipewire else self.runtime_dir),
        }
        if self.is_pipewire:
            overrides["PIPEWIRE_RUNTIME_DIR"] = str(self.runtime_dir)
        return overrides

    @contextmanager
    def activated(self) -> Iterator[VirtualMicrophone]:
        """Point this process's PulseAudio clients at the private server for the block."""
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
    # on its real-time threads: no client process has to keep up, so a busy machine cannot
    # starve the "microphone" into gaps of silence. pipewire-pulse ends a sample's stream
    # before its last, partial quantum (up to 43 ms) is heard; the silence padded after each
    # feed there is what is lost instead.
    def play_file(self, path: str | os.PathLike[str], mic: str | None = None) -> str:
        """Play a 16-bit WAV file (up to 16 MB) into a microphone's feed; returns the sample's name."""
        spec = self._mic(mic)
        name = f"micrec_feed_{len(self._samples)}"
        if self.is_pipewire:
            path = self._padded_copy(Path(path), name)
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

    @contextmanager
    def stalled(self, mic: str | None = None) -> Iterator[None]:
        """The microphone delivers nothing while inside, and reports no error: a stalled device.

        On PulseAudio its source is suspended (``suspend-source``). PipeWire cannot keep a
        source suspended while a client records from it: pipewire-pulse sends the node a
        Suspend command and the graph runs it again at once, since it is linked (measured with
        PipeWire 0.3.65: audio goes on at the full rate), and suspending the feed sink instead
        crashes pipewire-pulse 0.3.65, dropping every client. So on PipeWire the graph stops:
        the ``pipewire`` process (which runs it) gets SIGSTOP, and SIGCONT on the way out;
        pipewire-pulse and its clients stay connected and their streams get nothing, as from a
        hung driver. That stalls every microphone of the server, not only ``mic``.
        """
        spec = self._mic(mic)
        if not self.is_pipewire:
            self.pactl("suspend-source", spec.name, "1")
            try:
                yield
            finally:
                self.pactl("suspend-source", spec.name, "0")
            return
        graph = self._pipewire_pid()
        os.kill(graph, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(graph, signal.SIGCONT)

    def _pipewire_pid(self) -> int:
        """The pid of the ``pipewire`` process of this server's own process group."""
        assert self._daemon is not None, "the server runs"
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:  # ended meanwhile
                continue
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            pgrp = int(stat[stat.rindex(")") + 2:].split()[2])
            if comm == "pipewire" and pgrp == self._daemon.pid:
                return int(entry)
        raise BackendUnavailableError(f"the private {self.server} server has no pipewire process")

    def pactl(self, *args: str) -> str:
        """Run ``pactl`` against the private server and return its output."""
        result = subprocess.run(["pactl", *args], env=self.env, capture_output=True,
                                timeout=_CMD_TIMEOUT, check=True)
        return result.stdout.decode()

    # -- PipeWire's view ---------------------------------------------------------------------
    def pw_dump(self) -> list[dict[str, Any]]:
        """The PipeWire server's objects, as ``pw-dump`` prints them (PipeWire only)."""
        self._require_pipewire("pw_dump")
        result = subprocess.run(["pw-dump", "--no-colors"], env=self.env, capture_output=True,
                                timeout=_CMD_TIMEOUT, check=True)
        objects: list[dict[str, Any]] = json.loads(result.stdout or b"[]")
        return objects

    def node_latencies(self) -> dict[str, str]:
        """``node.latency`` (e.g. ``"1024/48000"``) of every node that asks one, by node name.

        pipewire-pulse sets a stream's node.latency from its fragment size (record streams)
        or its requested latency (playback); the graph runs at the smallest one.
        """
        latencies: dict[str, str] = {}
        for node in _nodes(self.pw_dump()):
            props = node.get("info", {}).get("props", {})
            if "node.latency" in props:
                key = str(props.get("node.name", node.get("id")))
                if key in latencies:
                    key = f"{key}#{node.get('id')}"
                latencies[key] = str(props["node.latency"])
        return latencies

    def graph_quanta(self, seconds: float = 1.0) -> list[int]:
        """The graph's quantum (frames per cycle) in each cycle during ``seconds``, from pw-profiler.

        Empty when no driver ran (an idle, suspended graph).
        """
        with self.profiling() as quanta:
            time.sleep(seconds)
        return quanta

    @contextmanager
    def profiling(self) -> Iterator[list[int]]:
        """Profile the graph during the block; the list yielded holds each cycle's quantum after it.

        pw-profiler reports each cycle's period, from which the quantum follows at the graph's rate.
        """
        self._require_pipewire("profiling")
        quanta: list[int] = []
        with tempfile.TemporaryDirectory(dir=self.runtime_dir) as tmp:
            log = Path(tmp) / "profiler.log"
            proc = subprocess.Popen(["pw-profiler", "-o", str(log)], cwd=tmp, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                yield quanta
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=_CMD_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=_CMD_TIMEOUT)
            quanta += _quanta_from_profile(log.read_text() if log.exists() else "", self._graph_rate())

    def xrun_warnings(self) -> int:
        """How many xruns ("client too slow", "xrun") the PipeWire daemons have logged so far."""
        self._require_pipewire("xrun_warnings")
        text = (self.runtime_dir / "daemon.log").read_text(errors="replace")
        return sum(1 for line in text.splitlines() if "xrun" in line or "too slow" in line)

    # -- internals ---------------------------------------------------------------------------
    def _mic(self, name: str | None) -> MicSpec:
        if name is None:
            return self.mics[0]
        for spec in self.mics:
            if name in (spec.name, spec.feed_sink):
                return spec
        raise KeyError(f"no virtual microphone named {name!r}")

    def _require_pipewire(self, what: str) -> None:
        if not self.is_pipewire:
            raise BackendUnavailableError(f"{what}() needs the PipeWire server (server='pipewire')")

    def _graph_rate(self) -> int:
        for obj in self.pw_dump():
            if obj.get("type", "").endswith("Metadata") and obj.get("props", {}).get("metadata.name") == "settings":
                for entry in obj.get("metadata") or []:
                    if entry.get("key") == "clock.rate":
                        return int(entry["value"])
        return 48000

    def _padded_copy(self, path: Path, name: str) -> Path:
        padded = self.runtime_dir / f"{name}-padded.wav"
        with wave.open(str(path), "rb") as src, wave.open(str(padded), "wb") as dst:
            dst.setparams(src.getparams())
            dst.writeframes(src.readframes(src.getnframes()))
            dst.writeframes(bytes(src.getsampwidth() * src.getnchannels() * src.getframerate() // 4))
        return padded

    def _module_lines(self) -> list[str]:
        """The modules making up the microphones (PulseAudio's default.pa syntax)."""
        lines = []
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
        return lines

    def _start_pulseaudio(self) -> None:
        config = self.runtime_dir / "default.pa"
        native = f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.runtime_dir / 'native'}"
        config.write_text("\n".join([native, *self._module_lines()]) + "\n")
        with open(self.runtime_dir / "daemon.log", "wb") as log:
            self._daemon = subprocess.Popen(
                ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--system=false", "-n",
                 "-F", str(config), "--use-pid-file=no", "--disallow-exit", "--log-target=stderr",
                 "--realtime=yes", "--high-priority=yes"],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self._wait_ready()
        for mic in self.mics:
            self._keepalive.append(self._spawn_silence(mic))

    def _start_pipewire(self) -> None:
        home = self.runtime_dir / "home"
        config = home / ".config"
        _write_wireplumber_config(config)
        env = {**self.env, "XDG_CONFIG_HOME": str(config), "XDG_STATE_HOME": str(home / ".local" / "state"),
               "XDG_DATA_HOME": str(home / ".local" / "share")}
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        with open(self.runtime_dir / "daemon.log", "wb") as log:
            # Its own session (process group): stop() ends dbus, pipewire, wireplumber and
            # pipewire-pulse together, and nothing else.
            self._daemon = subprocess.Popen(
                ["dbus-run-session", "--", "bash", "-c",
                 "pipewire & sleep 0.4; wireplumber & pipewire-pulse & wait"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        self._wait_ready()
        for line in self._module_lines():
            # pactl hands its arguments on joined by spaces, quotes and all, as default.pa would.
            command, *args = line.split(" ", 2 if line.startswith("load-module") else 1)
            if command.startswith("set-default-"):
                self._until_accepted(command, *args)
            else:
                self.pactl(command, *args)

    def _until_accepted(self, *args: str) -> None:
        # pipewire-pulse announces a loaded module's sink/source a moment later, and on a busy
        # machine refuses it as a default now and then even once it is listed.
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                self.pactl(*args)
                return
            except subprocess.CalledProcessError as exc:
                if time.monotonic() > deadline:
                    raise BackendUnavailableError(f"the private {self.server} server refused "
                                                  f"{' '.join(args)}: {exc.stderr.decode(errors='replace')}") from exc
                time.sleep(0.1)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._daemon is not None
            if self._daemon.poll() is not None:
                log = (self.runtime_dir / "daemon.log").read_text(errors="replace")
                raise BackendUnavailableError(f"the private {self.server} server exited: {log[-2000:]}")
            probe = subprocess.run(["pactl", "info"], env=self.env, capture_output=True,
                                   timeout=_CMD_TIMEOUT)
            if probe.returncode == 0:
                return
            time.sleep(0.05)
        raise BackendUnavailableError(f"the private {self.server} server did not answer within "
                                      f"{_START_TIMEOUT:g} s")

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


_REQUIRED = {
    "pulseaudio": ("pulseaudio", "pactl", "pacat", "parec"),
    "pipewire": ("pipewire", "wireplumber", "pipewire-pulse", "dbus-run-session", "pactl", "parec", "pw-dump"),
}
_PACKAGES = {
    "pulseaudio": "pulseaudio pulseaudio-utils",
    "pipewire": "pipewire pipewire-pulse wireplumber dbus pulseaudio-utils",
}

# WirePlumber for a private test server: no hardware monitors (there is no hardware), and no
# stream restore: it would remember a feed muted by stop_players() and mute every later one.
_WIREPLUMBER_OVERRIDES = """\
alsa_monitor.enabled = false
v4l2_monitor.enabled = false
libcamera_monitor.enabled = false
stream_defaults.enabled = false
"""


def missing_programs(server: str) -> list[str]:
    """The programs a private ``server`` ("pulseaudio" or "pipewire") needs that are not installed."""
    return [tool for tool in _REQUIRED[server] if shutil.which(tool) is None]


def install_command(server: str) -> str:
    """The Debian command that installs what a private ``server`` needs."""
    return f"apt-get install {_PACKAGES[server]}"


def _write_wireplumber_config(config_home: Path) -> None:
    directory = config_home / "wireplumber" / "main.lua.d"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "51-micrec-vmic.lua").write_text(_WIREPLUMBER_OVERRIDES)


def _nodes(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (obj for obj in objects if str(obj.get("type", "")).endswith(":Node"))


def stream_latencies_ms(objects: list[dict[str, Any]], pids: Collection[int]) -> list[float]:
    """node.latency in ms of the capture streams that processes ``pids`` opened, from pw_dump()'s objects."""
    found = []
    for node in _nodes(objects):
        props = node.get("info", {}).get("props", {})
        if props.get("media.class") != "Stream/Input/Audio" or "node.latency" not in props:
            continue
        if int(props.get("application.process.id", -1)) in pids:
            frames, _, rate = str(props["node.latency"]).partition("/")
            found.append(1000 * int(frames) / int(rate))
    return found


def _quanta_from_profile(text: str, rate: int) -> list[int]:
    # pw-profiler's 4th column is the driver's estimated period in microseconds.
    quanta = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) > 4 and fields[3].strip().isdigit():
            # Quanta are powers of two unless forced; the estimate jitters by a frame or so.
            quanta.append(2 ** round(math.log2(max(1.0, int(fields[3]) * rate / 1e6))))
    return quanta


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



def _terminate_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """End a process started in a session of its own, and every process in its group."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(proc.pid):
        proc.poll()
        time.sleep(0.02)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
