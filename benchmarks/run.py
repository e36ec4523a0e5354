"""micrec against the recorders users would pick instead: one run, side by side, on both servers.

Starts a private PulseAudio server whose one virtual microphone hears a continuous 1 kHz tone,
records it with every tool for every encoder (median of ``--runs`` takes), kills one take of
each with SIGKILL after 3 s; then does the same on a private PipeWire (one take per row), where
it also reads each tool's node.latency and the graph's quantum and xruns; measures micrec's
offline throughput and import time, and writes ``docs/benchmarks.md``, ``docs/benchmarks-cpu.png``
and ``docs/benchmarks-results.json``::

    .venv/bin/python benchmarks/run.py            # the default run (under 10 minutes)
    .venv/bin/python benchmarks/run.py --full     # 3 takes of 8 s, 16 kHz mono rows too (~30 minutes)
    .venv/bin/python benchmarks/run.py --quick    # 1 take of 3 s, PulseAudio only, to a temp dir
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
from pathlib import Path
from typing import Any

from bench_mic import BenchMicrophone
from bench_offline import times_real_time, tone
from bench_pipewire import GraphObserver
from bench_take import Observer, Take, killed_take, record_take
from bench_tools import ENCODERS, TOOLS, Config, Tool, micrec_unsupported

ROOT = Path(__file__).resolve().parent.parent
MAIN = Config(44100, 2)
VOICE = Config(16000, 1)
_IMPORT_RUNS = 7


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1 run of 3 s takes, PulseAudio only, no kill runs, short offline")
    parser.add_argument("--full", action="store_true",
                        help="3 takes of 8 s per row, 16 kHz mono rows, 60 s offline (about 30 minutes)")
    parser.add_argument("--runs", type=int, help="takes per row on PulseAudio (default 2; --full 3)")
    parser.add_argument("--seconds", type=float, help="length of a take (default 4; --full 8)")
    parser.add_argument("--servers", help="comma-separated subset of pulseaudio,pipewire (default both)")
    parser.add_argument("--tools", help=f"comma-separated subset of {','.join(t.key for t in TOOLS)}")
    parser.add_argument("--encoders", help=f"comma-separated subset of {','.join(ENCODERS)}")
    parser.add_argument("--no-voice", action="store_true", help="skip the 16 kHz mono rows")
    parser.add_argument("--no-kill", action="store_true", help="skip the kill -9 takes")
    parser.add_argument("--offline-seconds", type=int, help="seconds of audio per offline take (default 60)")
    parser.add_argument("--keepalive-ms", type=int,
                        help="replace the virtual microphone's 20 ms keep-alive stream by one of this latency")
    parser.add_argument("--keep", type=Path, help="keep the recorded takes in this directory")
    parser.add_argument("--out", type=Path, help="directory for the report (default: docs/ for a full run, "
                                                   "a temp dir for --quick)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3 if args.full else 2)
    args.seconds = args.seconds or (3.0 if args.quick else 8.0 if args.full else 4.0)
    args.offline_seconds = args.offline_seconds or (60 if args.full else 10)
    args.no_kill = args.no_kill or args.quick
    args.no_voice = args.no_voice or not args.full
    args.servers = (args.servers.split(",") if args.servers
                    else ["pulseaudio"] if args.quick else ["pulseaudio", "pipewire"])
    args.tools = args.tools.split(",") if args.tools else [t.key for t in TOOLS]
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


def run_row(tool: Tool, encoder: str, cfg: Config, args: argparse.Namespace, workdir: Path,
            env: dict[str, str], *, kill: bool, runs: int, server: str = "pulseaudio",
            observer: Observer | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"tool": tool.key, "label": tool.label, "encoder": encoder, "config": cfg.label,
                           "server": server, "rate_asked": cfg.rate, "channels_asked": cfg.channels,
                           "load_before": os.getloadavg()[0]}
    reason = skip_reason(tool, encoder)
    if reason is not None:
        return {**row, "skipped": reason}
    stem = f"{server}-{tool.key}-{encoder}-{cfg.rate}x{cfg.channels}"
    takes: list[Take] = [record_take(tool, encoder, cfg, workdir, env, args.seconds, f"{stem}-{n}", observer)
                         for n in range(runs)]
    row.update(median_take([t.to_dict() for t in takes]), runs=len(takes),
               cpu_steady_all=[t.cpu_steady for t in takes])
    if kill:
        row["killed"] = killed_take(tool, encoder, cfg, workdir, env, f"{stem}-killed").to_dict()
    return row


def run_live(args: argparse.Namespace, workdir: Path, server: str = "pulseaudio") -> list[dict[str, Any]]:
    """Every row on one server. On PipeWire: 44.1 kHz stereo only, one take each, no kill takes."""
    pipewire = server == "pipewire"
    tools = [t for t in TOOLS if t.key in args.tools]
    plan = [(t, e, MAIN) for t in tools for e in args.encoders]
    if not args.no_voice and not pipewire:
        plan += [(t, e, VOICE) for t in tools for e in args.encoders]
    rows = []
    with BenchMicrophone(args.keepalive_ms, server=server) as mic:
        observer = GraphObserver(mic.vm) if pipewire else None
        for tool, encoder, cfg in plan:
            started = time.monotonic()
            try:
                row = run_row(tool, encoder, cfg, args, workdir, mic.env, server=server, observer=observer,
                              kill=not args.no_kill and cfg == MAIN and not pipewire,
                              runs=1 if pipewire else args.runs)
            except Exception as exc:  # noqa: BLE001 - one broken row must not cost the whole run
                row = {"tool": tool.key, "label": tool.label, "encoder": encoder, "config": cfg.label,
                       "server": server, "skipped": f"failed: {exc}"}
            rows.append(row)
            done = row.get("skipped") or f"steady CPU {row['cpu_steady']:.4f} s/s"
            if pipewire and not row.get("skipped"):
                done += f", node.latency {row['pw_node_latency_ms']} ms, quantum {row['pw_quantum']}"
            print(f"{server:<10} {tool.label:<34} {encoder:<6} {cfg.label:<16} {done} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    return rows


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


def main(argv: Sequence[str] | None = None) -> int:
    from bench_report import write_report

    args = parse_args(argv)
    # Started in the background (``cmd &``), a shell hands its children SIGINT ignored, and an
    # ignored signal stays ignored across exec: the tools would not stop on their Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = args.out or (Path(tempfile.mkdtemp(prefix="micrec-bench-")) if args.quick else ROOT / "docs")
    out.mkdir(parents=True, exist_ok=True)
    page_cache = drop_page_cache()
    started = time.time()
    load_before = os.getloadavg()
    live: list[dict[str, Any]] = []
    for server in args.servers:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            live += run_live(args, args.keep, server)
        else:
            with tempfile.TemporaryDirectory(prefix="micrec-bench-takes-") as tmp:
                live += run_live(args, Path(tmp), server)
    results = {
        "command": " ".join(["benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "runs": args.runs, "seconds": args.seconds, "load_before": load_before, "machine": machine(),
        "page_cache": page_cache,
        "import_ms": import_ms(),
        "live": live, "offline": run_offline(args), "offline_seconds": args.offline_seconds,
        "load_after": os.getloadavg(), "took_s": time.time() - started,
    }
    json_path = out / "benchmarks-results.json"
    json_path.write_text(json.dumps(results, indent=1))
    report = write_report(results, out)
    print(f"wrote {report} and {json_path} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
