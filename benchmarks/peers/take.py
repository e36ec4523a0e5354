"""One take with one tool, measured: CPU (whole and steady), wake-ups, RSS, latencies, the file,
and how complete it is (its tail at the stop, its loss at a kill).

Times are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on the machine), so
the API driver's own timestamps, the harness's and the reference capture's line up.
"""

from __future__ import annotations

import json
import random
import select
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from .files import decode_mono, has_audio, inspect
from .proc import ProcessTree, profile
from .reference import Reference, trim_trailing_quiet
from .tools import EXTENSION, Config, Tool

#: Seconds after the first audio (or the start) before the steady-state CPU window opens.
SETTLE_S = 1.0
#: A tool that has written no audio by then is measured from this point anyway.
_LATEST_STEADY_START_S = 2.0
_FAST_POLL_S = 0.005
_SLOW_POLL_S = 0.05
_EXIT_TIMEOUT_S = 20.0
_API_TIMEOUT_S = 30.0
KILL_AFTER_S = 3.0
#: Takes and kills last up to this much longer, drawn per take (see :func:`stop_phase`).
PHASE_S = 1.0


@dataclass
class Take:
    """What one take measured. Times in seconds; None where a tool gives no such figure."""

    cpu_total: float  # CPU seconds per recorded second, start-up and stop included
    cpu_steady: float  # CPU seconds per second while recording
    wakeups_steady: float  # times any of its threads was scheduled in, per second while recording
    rss_mb: float
    first_sample_s: float | None  # API only: start_recording() -> first captured block
    first_audio_s: float | None  # start -> first audio bytes in the file
    stop_s: float  # stop request -> file finalized (API) / every process exited (tools)
    exited_cleanly: bool
    ffmpeg_ok: bool
    sndfile_ok: bool | None
    codec: str
    rate: int
    channels: int
    seconds: float
    duration_error_s: float
    dropouts: int | None
    frequency: float | None
    peak_dbfs: float | None
    #: Stop request -> the last fed audio in the file, ms (negative: audio sent before the stop is missing).
    tail_ms: float | None = None
    #: Thread by thread over the steady window: "process#n" -> (CPU s/s, wake-ups/s).
    threads: dict[str, tuple[float, float]] | None = None
    #: What the sound server saw during the steady window (PipeWire: node.latency, quantum, xruns).
    server: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(row.pop("server") or {})
        return row


class Observer(Protocol):
    """Watches the sound server while a take is steady (e.g. pipewire.GraphObserver)."""

    def begin(self, pids: list[int]) -> None: ...

    def end(self) -> dict[str, Any]: ...


@dataclass
class Killed:
    """A take ended by SIGKILL :data:`KILL_AFTER_S` seconds (and a phase) after its start."""

    ffmpeg_ok: bool
    sndfile_ok: bool | None
    seconds: float
    killed_after_s: float
    #: The kill -> the last fed audio ffmpeg reads from the file, s (None: not found).
    loss_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Running:
    """A started take: the processes, the output file, and when recording started."""

    def __init__(self, tool: Tool, encoder: str, cfg: Config, workdir: Path, env: dict[str, str],
                 name: str) -> None:
        self.tool = tool
        self.out = workdir / f"{name}{EXTENSION[encoder]}"
        self.out.unlink(missing_ok=True)
        self.tree = ProcessTree(tool.build(encoder, cfg, self.out), env, workdir / f"{name}.log", talk=tool.api)
        self.started = self.tree.launched
        if tool.api:
            self.started = float(self.message("started")["called"])

    def message(self, event: str) -> dict[str, Any]:
        """The API driver's next JSON line, which must be ``event``."""
        stream = self.tree.stdout
        assert stream is not None
        ready, _, _ = select.select([stream], [], [], _API_TIMEOUT_S)
        line = stream.readline() if ready else b""
        try:
            message: dict[str, Any] = json.loads(line)
        except ValueError:
            message = {}
        if message.get("event") != event:
            self.tree.send(signal.SIGKILL)
            self.tree.reap(_EXIT_TIMEOUT_S)
            raise RuntimeError(f"{self.tool.label}: expected {event!r} from the API driver, got {line!r} "
                               f"(see {self.out.with_suffix('.log')})")
        return message

    def wait_for_audio(self, until: float, poll: float) -> float | None:
        while True:
            if has_audio(self.out):
                return time.monotonic()
            if time.monotonic() >= until:
                return None
            time.sleep(poll)


def record_take(tool: Tool, encoder: str, cfg: Config, workdir: Path, env: dict[str, str],
                seconds: float, name: str, observer: Observer | None = None,
                reference: Reference | None = None) -> Take:
    """Record ``seconds`` with ``tool``, stop it as its user would, and judge the file.

    An ``observer`` watches the server from the steady window's start to its end; the
    ``reference`` places the file's last audio in time.
    """
    run = _Running(tool, encoder, cfg, workdir, env, name)
    latest = run.started + min(_LATEST_STEADY_START_S, seconds / 2)
    first = run.wait_for_audio(latest, _FAST_POLL_S)
    steady_from = min((first or latest) + SETTLE_S, run.started + seconds * 0.6)
    if first is None:
        first = run.wait_for_audio(steady_from, _SLOW_POLL_S)
    _sleep_until(steady_from)
    sched_a, wall_a = run.tree.schedstat(), time.monotonic()
    run.tree.note_peak_rss()
    if observer is not None:
        observer.begin(run.tree.live_pids())
    if first is None:
        first = run.wait_for_audio(run.started + seconds, _SLOW_POLL_S)
    _sleep_until(run.started + seconds)
    sched_b, wall_b = run.tree.schedstat(), time.monotonic()
    run.tree.note_peak_rss()
    seen = observer.end() if observer is not None else None
    stop_s, stop_at, first_sample, clean, api_cpu = _stop(run)
    recorded = wall_b - run.started
    steady = profile(sched_a, sched_b, wall_b - wall_a)
    # The API driver's own start-up (interpreter, imports, warm-up take) is not the API's cost.
    cpu_total = run.tree.cpu_seconds if api_cpu is None else api_cpu
    check = inspect(run.out)
    signal_report = check.signal
    return Take(
        cpu_total=cpu_total / recorded,
        cpu_steady=steady.cpu,
        wakeups_steady=steady.wakeups,
        rss_mb=run.tree.peak_rss_mb,
        first_sample_s=first_sample,
        first_audio_s=None if first is None else first - run.started,
        stop_s=stop_s,
        exited_cleanly=clean,
        ffmpeg_ok=check.ffmpeg_ok,
        sndfile_ok=check.sndfile_ok,
        codec=check.codec,
        rate=check.rate,
        channels=check.channels,
        seconds=check.seconds,
        duration_error_s=check.seconds - recorded,
        dropouts=None if signal_report is None else signal_report.dropouts,
        frequency=None if signal_report is None else signal_report.frequency,
        peak_dbfs=None if signal_report is None else signal_report.peak_dbfs,
        tail_ms=_scaled(_last_audio_after(run.out, stop_at, reference), 1000),
        threads=steady.threads if tool.micrec else None,
        server=seen,
    )


def _stop(run: _Running) -> tuple[float, float, float | None, bool, float | None]:
    """Stop the take: (stop latency, when the stop was asked, first-block latency, exited on its
    own, CPU start→stop).

    The first-block latency and the CPU only come from the API driver.
    """
    if not run.tool.api:
        asked = run.tree.send(signal.SIGINT)
        clean = run.tree.reap(_EXIT_TIMEOUT_S)
        return run.tree.exited_at - asked, asked, None, clean, None
    assert run.tree.stdin is not None
    run.tree.stdin.write(b"stop\n")
    run.tree.stdin.flush()
    stopped = run.message("stopped")
    run.tree.close_pipes()
    clean = run.tree.reap(_EXIT_TIMEOUT_S)
    return (float(stopped["stop_s"]), float(stopped["stop_called"]), stopped["first_block_s"], clean,
            float(stopped["cpu_s"]))


def stop_phase(name: str) -> float:
    """Seconds in [0, :data:`PHASE_S`) to add to a take called ``name``, the same in every run.

    A recorder that writes in blocks keeps more or less of a take depending on where in a block
    it is stopped or killed; a take of a whole number of seconds would fall at the same point of
    a 1 s block every time. Each take gets its own point, so that the runs sample them all.
    """
    return random.Random(name).random() * PHASE_S


def killed_take(tool: Tool, encoder: str, cfg: Config, workdir: Path, env: dict[str, str],
                name: str, reference: Reference | None = None) -> Killed:
    """Record, SIGKILL the whole tool :data:`KILL_AFTER_S` and a phase after its start, and see
    what the file holds."""
    run = _Running(tool, encoder, cfg, workdir, env, name)
    after = KILL_AFTER_S + stop_phase(name)
    _sleep_until(run.started + after)
    killed_at = run.tree.send(signal.SIGKILL)
    run.tree.reap(_EXIT_TIMEOUT_S)
    run.tree.close_pipes()
    check = inspect(run.out)
    last = _last_audio_after(run.out, killed_at, reference)
    return Killed(check.ffmpeg_ok, check.sndfile_ok, check.seconds, after, None if last is None else -last)


def _last_audio_after(path: Path, moment: float, reference: Reference | None) -> float | None:
    """Seconds from ``moment`` to when the server sent the last fed audio ffmpeg reads in ``path``."""
    if reference is None:
        return None
    mono = decode_mono(path, reference.rate)
    if mono is None:
        return None
    placed = reference.place_end(trim_trailing_quiet(mono, reference.rate), moment)
    return None if placed is None else placed.sent_at - moment


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)
