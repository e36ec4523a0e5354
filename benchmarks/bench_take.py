"""One take with one tool, measured: CPU (whole and steady), RSS, latencies, and the file.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on the machine), so
the API driver's own timestamps and the harness's line up.
"""

from __future__ import annotations

import json
import select
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from bench_files import has_audio, inspect
from bench_proc import ProcessTree
from bench_tools import EXTENSION, Config, Tool

#: Seconds after the first audio (or the start) before the steady-state CPU window opens.
SETTLE_S = 1.0
#: A tool that has written no audio by then is measured from this point anyway.
_LATEST_STEADY_START_S = 2.0
_FAST_POLL_S = 0.005
_SLOW_POLL_S = 0.05
_EXIT_TIMEOUT_S = 20.0
_API_TIMEOUT_S = 30.0
KILL_AFTER_S = 3.0


@dataclass
class Take:
    """What one take measured. Times in seconds; None where a tool gives no such figure."""

    cpu_total: float  # CPU seconds per recorded second, start-up and stop included
    cpu_steady: float  # CPU seconds per second while recording
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
    #: What the sound server saw during the steady window (PipeWire: node.latency, quantum, xruns).
    server: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(row.pop("server") or {})
        return row


class Observer(Protocol):
    """Watches the sound server while a take is steady (e.g. bench_pipewire.GraphObserver)."""

    def begin(self, pids: list[int]) -> None: ...

    def end(self) -> dict[str, Any]: ...


@dataclass
class Killed:
    """A take ended by SIGKILL after :data:`KILL_AFTER_S` seconds."""

    ffmpeg_ok: bool
    sndfile_ok: bool | None
    seconds: float

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
                seconds: float, name: str, observer: Observer | None = None) -> Take:
    """Record ``seconds`` with ``tool``, stop it as its user would, and judge the file.

    An ``observer`` watches the server from the steady window's start to its end.
    """
    run = _Running(tool, encoder, cfg, workdir, env, name)
    latest = run.started + min(_LATEST_STEADY_START_S, seconds / 2)
    first = run.wait_for_audio(latest, _FAST_POLL_S)
    steady_from = min((first or latest) + SETTLE_S, run.started + seconds * 0.6)
    if first is None:
        first = run.wait_for_audio(steady_from, _SLOW_POLL_S)
    _sleep_until(steady_from)
    cpu_a, wall_a = run.tree.runtime_ns(), time.monotonic()
    run.tree.note_peak_rss()
    if observer is not None:
        observer.begin(run.tree.live_pids())
    if first is None:
        first = run.wait_for_audio(run.started + seconds, _SLOW_POLL_S)
    _sleep_until(run.started + seconds)
    cpu_b, wall_b = run.tree.runtime_ns(), time.monotonic()
    run.tree.note_peak_rss()
    seen = observer.end() if observer is not None else None
    stop_s, first_sample, clean, api_cpu = _stop(run)
    recorded = wall_b - run.started
    # The API driver's own start-up (interpreter, imports, warm-up take) is not the API's cost.
    cpu_total = run.tree.cpu_seconds if api_cpu is None else api_cpu
    check = inspect(run.out)
    signal_report = check.signal
    return Take(
        cpu_total=cpu_total / recorded,
        cpu_steady=(cpu_b - cpu_a) / 1e9 / (wall_b - wall_a),
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
        server=seen,
    )


def _stop(run: _Running) -> tuple[float, float | None, bool, float | None]:
    """Stop the take: (stop latency, first-block latency, exited on its own, CPU start→stop).

    The last two only come from the API driver.
    """
    if not run.tool.api:
        asked = run.tree.send(signal.SIGINT)
        clean = run.tree.reap(_EXIT_TIMEOUT_S)
        return run.tree.exited_at - asked, None, clean, None
    assert run.tree.stdin is not None
    run.tree.stdin.write(b"stop\n")
    run.tree.stdin.flush()
    stopped = run.message("stopped")
    run.tree.close_pipes()
    clean = run.tree.reap(_EXIT_TIMEOUT_S)
    return float(stopped["stop_s"]), stopped["first_block_s"], clean, float(stopped["cpu_s"])


def killed_take(tool: Tool, encoder: str, cfg: Config, workdir: Path, env: dict[str, str],
                name: str) -> Killed:
    """Record, SIGKILL the whole tool after :data:`KILL_AFTER_S`, and see what the file holds."""
    run = _Running(tool, encoder, cfg, workdir, env, name)
    _sleep_until(run.started + KILL_AFTER_S)
    run.tree.send(signal.SIGKILL)
    run.tree.reap(_EXIT_TIMEOUT_S)
    run.tree.close_pipes()
    check = inspect(run.out)
    return Killed(check.ffmpeg_ok, check.sndfile_ok, check.seconds)


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)
