"""micrec against the recorders users would pick instead: one run, side by side, on both servers.

Starts a private PulseAudio server whose one virtual microphone hears a continuous 1 kHz tone
over a quiet noise, records it with every tool for every encoder (takes of 10 s), stops each as
its user would and places the file's last audio in time against an independent capture (the
tail); kills one take of each with SIGKILL after 3 s (the kill loss); does so with other clients
keeping the source at 20 ms packets and with the recorder alone; then the same on a private
PipeWire, where it also reads each tool's node.latency and the graph's quantum and xruns;
measures micrec's offline throughput and import time, and writes ``docs/benchmarks.md``,
``docs/benchmarks-cpu.png`` and ``docs/benchmarks-results.json``::

    .venv/bin/python -m benchmarks                # the default run (under 10 minutes)
    .venv/bin/python -m benchmarks --targets      # every target row and the watched API take (~20 min)
    .venv/bin/python -m benchmarks --full         # every tool and mode, 2 takes each, 16 kHz mono too (~75 min)
    .venv/bin/python -m benchmarks --quick        # 1 take of 3 s, PulseAudio only, to a temp dir
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .mic import BenchMicrophone
from .offline import times_real_time, tone
from .pipewire import GraphObserver
from .reference import Reference
from .take import Observer, Take, killed_take, record_take, stop_phase
from .tools import AAC, ENCODERS, TARGET_TOOLS, TOOLS, WAV, Config, Tool, micrec_unsupported

ROOT = Path(__file__).resolve().parent.parent.parent
MAIN = Config(44100, 2)
VOICE = Config(16000, 1)
SERVERS = ("pulseaudio", "pipewire")
CONDITIONS = ("keepalive", "alone")
_IMPORT_RUNS = 7
#: For :func:`estimate_s`, measured on the 2-core machine: a take's start, stop, decoding and
#: placing beyond its length; a kill take (3 s and the same); a server's start and stop; the
#: offline part and import times at the default length.
_TAKE_OVERHEAD_S = 2.0
_KILL_TAKE_S = 5.0
_STAGE_S = 6.0
_OFFLINE_S = 40.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1 run of 3 s takes, PulseAudio with the keep-alive only, no kill runs, short offline")
    parser.add_argument("--targets", action="store_true",
                        help="every encoder of the target rows and of the watched API take, in both conditions "
                             "on both servers (~20 minutes)")
    parser.add_argument("--full", action="store_true",
                        help="every tool and mode, 2 takes per row, 16 kHz mono rows, 60 s offline (~75 minutes)")
    parser.add_argument("--runs", type=int, help="takes per row (default 1; --full 2)")
    parser.add_argument("--seconds", type=float, help="length of a take (default 10)")
    parser.add_argument("--servers", help="comma-separated subset of pulseaudio,pipewire (default both)")
    parser.add_argument("--conditions", help="comma-separated subset of keepalive,alone (default both)")
    parser.add_argument("--tools", help=f"comma-separated subset of {','.join(t.key for t in TOOLS)} "
                                        f"(default {','.join(TARGET_TOOLS)}; --targets adds micrec-levels; --full all)")
    parser.add_argument("--encoders", help=f"comma-separated subset of {','.join(ENCODERS)} (default all; "
                                           "the default run does all on PulseAudio with the keep-alive, WAV and "
                                           "AAC-LC alone, WAV on PipeWire, and kills WAV takes only)")
    parser.add_argument("--no-voice", action="store_true", help="skip the 16 kHz mono rows")
    parser.add_argument("--no-kill", action="store_true", help="skip the kill -9 takes")
    parser.add_argument("--no-offline", action="store_true",
                        help="skip the offline throughput and import time (the default run skips them)")
    parser.add_argument("--offline-seconds", type=int, help="seconds of audio per offline take (default 10)")
    parser.add_argument("--keepalive-ms", type=int,
                        help="packets the other clients ask for in the keep-alive condition (default 20)")
    parser.add_argument("--keep", type=Path, help="keep the recorded takes in this directory")
    parser.add_argument("--out", type=Path, help="directory for the report (default: docs/; a temp dir for --quick)")
    args = parser.parse_args(argv)
    # The default run keeps under 10 minutes: every encoder only where users mostly are (PulseAudio,
    # other clients on the microphone), the cheapest and the dearest encoder elsewhere, kills of WAV.
    args.lean = not (args.full or args.targets or args.encoders)
    args.no_offline = args.no_offline or args.lean
    args.runs = args.runs or (2 if args.full else 1)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.offline_seconds = args.offline_seconds or (60 if args.full else 10)
    args.no_kill = args.no_kill or args.quick
    args.no_voice = args.no_voice or not args.full
    args.servers = args.servers.split(",") if args.servers else ["pulseaudio"] if args.quick else list(SERVERS)
    args.conditions = (args.conditions.split(",") if args.conditions
                       else ["keepalive"] if args.quick else list(CONDITIONS))
    args.tools = (args.tools.split(",") if args.tools else [t.key for t in TOOLS] if args.full
                  else [*TARGET_TOOLS, "micrec-levels"] if args.targets else list(TARGET_TOOLS))
    args.encoders = args.encoders.split(",") if args.encoders else list(ENCODERS)
    return args


def median_take(takes: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the numbers over the takes; booleans become "k/n" counts of True."""
    row: dict[str, Any] = {}
    for key in takes[0]:
        values = [t[key] for t in takes if t[key] is not None]
        if not values:
            row[key] = None
        elif isinstance(values[0], bool):
            row[key] = f"{sum(values)}/{len(values)}"
        elif isinstance(values[0], (int, float)):
            row[key] = statistics.median(values)
        else:
            row[key] = values[0]
    return row


def skip_reason(tool: Tool, encoder: str) -> str | None:
    if encoder not in tool.encoders:
        return "cannot write it"
    if tool.micrec:
        return micrec_unsupported(encoder)
    return tool.missing()


@dataclass(frozen=True)
class Stage:
    """Where a row runs: the server, the condition, and what watches the takes."""

    server: str
    condition: str
    observer: Observer | None
    reference: Reference | None


def run_row(tool: Tool, encoder: str, cfg: Config, args: argparse.Namespace, workdir: Path,
            env: dict[str, str], stage: Stage, *, kill: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"tool": tool.key, "label": tool.label, "encoder": encoder, "config": cfg.label,
                           "server": stage.server, "condition": stage.condition, "rate_asked": cfg.rate,
                           "channels_asked": cfg.channels, "load_before": os.getloadavg()[0]}
    reason = skip_reason(tool, encoder)
    if reason is not None:
        return {**row, "skipped": reason}
    stem = f"{stage.server}-{stage.condition}-{tool.key}-{encoder}-{cfg.rate}x{cfg.channels}"
    names = [f"{stem}-{n}" for n in range(args.runs)]
    takes: list[Take] = [record_take(tool, encoder, cfg, workdir, env, args.seconds + stop_phase(name), name,
                                     stage.observer, stage.reference) for name in names]
    row.update(median_take([t.to_dict() for t in takes]), runs=len(takes),
               cpu_steady_all=[t.cpu_steady for t in takes], tail_ms_all=[t.tail_ms for t in takes])
    if kill:
        row["killed"] = killed_take(tool, encoder, cfg, workdir, env, f"{stem}-killed", stage.reference).to_dict()
    return row


def plan(args: argparse.Namespace, server: str, condition: str) -> list[tuple[Tool, str, Config, bool]]:
    """(tool, encoder, configuration, with a kill take) for every row of one server and condition."""
    tools = [t for t in TOOLS if t.key in args.tools]
    encoders = args.encoders
    if args.lean and (server, condition) != ("pulseaudio", "keepalive"):
        encoders = [WAV, AAC] if server == "pulseaudio" else [WAV]
    kill = not args.no_kill and condition == "keepalive"
    rows = [(t, e, MAIN, kill and (e == WAV or not args.lean)) for t in tools for e in encoders]
    if not args.no_voice and server == "pulseaudio" and condition == "keepalive":
        rows += [(t, e, VOICE, False) for t in tools for e in encoders]
    return rows


def estimate_s(args: argparse.Namespace) -> float:
    """About how long the run takes (seconds), from its plan."""
    total = 0.0 if args.no_offline else _OFFLINE_S
    for server in args.servers:
        for condition in args.conditions:
            rows = [(t, e, kill) for t, e, _, kill in plan(args, server, condition) if e in t.encoders]
            total += _STAGE_S + sum(args.runs * (args.seconds + _TAKE_OVERHEAD_S) + kill * _KILL_TAKE_S
                                    for _, _, kill in rows)
    return total


def run_live(args: argparse.Namespace, workdir: Path, server: str = "pulseaudio",
             condition: str = "keepalive") -> list[dict[str, Any]]:
    """Every row on one server in one condition."""
    pipewire = server == "pipewire"
    rows = []
    with BenchMicrophone(args.keepalive_ms, server=server, alone=condition == "alone") as mic:
        stage = Stage(server, condition, GraphObserver(mic.vm) if pipewire else None, mic.reference)
        for tool, encoder, cfg, kill in plan(args, server, condition):
            started = time.monotonic()
            try:
                row = run_row(tool, encoder, cfg, args, workdir, mic.env, stage, kill=kill)
            except Exception as exc:  # noqa: BLE001 - one broken row must not cost the whole run
                row = {"tool": tool.key, "label": tool.label, "encoder": encoder, "config": cfg.label,
                       "server": server, "condition": condition, "skipped": f"failed: {exc}"}
            rows.append(row)
            print(f"{server:<10} {condition:<9} {tool.label:<34} {encoder:<6} {cfg.label:<16} {_progress(row)} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    return rows


def _progress(row: dict[str, Any]) -> str:
    if row.get("skipped"):
        return str(row["skipped"])
    text = f"CPU {row['cpu_steady']:.4f} s/s, {row['wakeups_steady']:.0f} wake-ups/s, tail {_ms(row['tail_ms'])}"
    if row.get("killed"):
        loss = row["killed"]["loss_s"]
        text += f", kill loss {'?' if loss is None else f'{loss:.2f} s'}"
    if row.get("pw_node_latency_ms") is not None:
        text += f", node.latency {row['pw_node_latency_ms']} ms, quantum {row['pw_quantum']}"
    return text


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:+.0f} ms"


def run_offline(args: argparse.Namespace) -> list[dict[str, Any]]:
    signal = tone(args.offline_seconds, MAIN.rate, MAIN.channels)
    rows = []
    for encoder in args.encoders:
        reason = micrec_unsupported(encoder)
        row: dict[str, Any] = {"encoder": encoder, "skipped": reason}
        if reason is None:
            row["dsp_off"] = times_real_time(encoder, signal, MAIN.rate, dsp=False, runs=args.runs)
            row["dsp_on"] = times_real_time(encoder, signal, MAIN.rate, dsp=True, runs=args.runs)
        rows.append(row)
        print(f"offline {encoder:<6} {row}", flush=True)
    return rows


def import_ms() -> float:
    """Median wall time of ``import micrec`` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import micrec; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                 check=True).stdout) for _ in range(_IMPORT_RUNS)]
    return statistics.median(runs) * 1000


def machine() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        if shutil.which(cmd[0]) is None:
            return "not installed"
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    debian = Path("/etc/debian_version")
    system = f"Debian {debian.read_text().strip()}" if debian.exists() else platform.system()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "os": f"{system}, kernel {platform.release()}",
        "python": platform.python_version(),
        "pulseaudio": first_line(["pulseaudio", "--version"]),
        "pipewire": first_line(["pipewire", "--version"]),
        "ffmpeg": first_line(["ffmpeg", "-version"]),
        "sox": first_line(["sox", "--version"]),
        "arecord": first_line(["arecord", "--version"]),
    }


def drop_page_cache() -> str:
    """Start from a cold page cache where allowed (root); says which it was.

    Files written shortly before (a fresh install) sit in the page cache in large folios, and a
    process that maps them (numpy's, PyAV's libraries) is charged the whole folio: measured
    here, `import av` 35.8 MB resident right after the install and 32.7 MB once the cache
    was dropped; `micrec record` of AAC 74 and 64 MB. Every tool's peak RSS is measured from
    the same state.
    """
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        return f"as found (could not drop it: {exc.strerror})"
    return "dropped before the run"


def compile_bytecode() -> None:
    """Compile micrec's modules, as an install does, so that no take starts by compiling them.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on this machine), an editable install's modules
    changed since the install are compiled from source at every launch: measured here, 20 ms
    of "CLI launch -> first audio" (session.py, backends/pulse.py), more with a cold cache.
    """
    import compileall

    import micrec

    compileall.compile_dir(Path(micrec.__file__).parent, quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    from .report import write_report

    args = parse_args(argv)
    # Started in the background (``cmd &``), a shell hands its children SIGINT ignored, and an
    # ignored signal stays ignored across exec: the tools would not stop on their Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = args.out or (Path(tempfile.mkdtemp(prefix="micrec-bench-")) if args.quick else ROOT / "docs")
    out.mkdir(parents=True, exist_ok=True)
    compile_bytecode()
    page_cache = drop_page_cache()
    started = time.time()
    print(f"about {estimate_s(args) / 60:.0f} minutes; results to {out}", flush=True)
    load_before = os.getloadavg()
    live: list[dict[str, Any]] = []
    for server in args.servers:
        for condition in args.conditions:
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                live += run_live(args, args.keep, server, condition)
            else:
                with tempfile.TemporaryDirectory(prefix="micrec-bench-takes-") as tmp:
                    live += run_live(args, Path(tmp), server, condition)
    offline = [] if args.no_offline else run_offline(args)
    results = {
        "command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "runs": args.runs, "seconds": args.seconds, "load_before": load_before, "machine": machine(),
        "page_cache": page_cache,
        "import_ms": None if args.no_offline else import_ms(),
        "live": live, "offline": offline, "keepalive_ms": args.keepalive_ms or 20,
        "offline_seconds": args.offline_seconds,
        "load_after": os.getloadavg(), "took_s": time.time() - started,
    }
    json_path = out / "benchmarks-results.json"
    json_path.write_text(json.dumps(results, indent=1))
    report = write_report(results, out)
    print(f"wrote {report} and {json_path} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
