"""Where a recorder's CPU goes, thread by thread: CPU seconds and wake-ups per second.

Runs each variant recording the benchmark microphone (see ``bench_mic``) and reads every
thread's ``schedstat`` (run time, and the number of times it was scheduled) over a steady
window. micrec variants can change ``micrec.session.BLOCK_MS`` and the capture backend, which
is how the figures in ``docs/benchmarks.md``'s profile section were made::

    python benchmarks/profile_threads.py micrec micrec-py parecord arecord
    python benchmarks/profile_threads.py micrec micrec:100 portaudio:50 parecord arecord
    python benchmarks/profile_threads.py --keepalive-ms 100 micrec micrec:50
    python benchmarks/profile_threads.py --server pipewire micrec parecord arecord

Variants: ``micrec[:BLOCK_MS]`` (the CLI's pipeline on the Pulse backend, the session's block
size as given), ``micrec-py[:BLOCK_MS]`` (the same with the backend's per-packet loop in Python,
``MICREC_PYTHON_CAPTURE=1``), ``portaudio[:BLOCK_MS]`` (the same on PortAudio through ALSA's pulse plugin),
``parecord`` (100 ms latency), ``arecord``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench_mic import BenchMicrophone


def command(variant: str, out: Path) -> list[str]:
    name, _, block = variant.partition(":")
    record = f"['record', '{out}.wav', '-q'{{}}]"
    block_setting = f"import micrec.session as s; s.BLOCK_MS = {block}; " if block else ""
    micrec = block_setting + "from micrec.cli import main; main({})"
    if name == "micrec":
        return [sys.executable, "-c", micrec.format(record.format(""))]
    if name == "micrec-py":  # the pulse backend's loop in Python, not the compiled one
        python_loop = "import os; os.environ['MICREC_PYTHON_CAPTURE'] = '1'; "
        return [sys.executable, "-c", python_loop + micrec.format(record.format(""))]
    if name == "portaudio":
        return [sys.executable, "-c", micrec.format(record.format(", '--backend', 'portaudio'"))]
    if name == "parecord":
        return ["parecord", "--latency-msec=100", "--raw", "--rate=44100", "--channels=2", f"{out}.raw"]
    if name == "arecord":
        return ["arecord", "-q", "-D", "pulse", "-f", "S16_LE", "-r", "44100", "-c", "2", "-t", "wav", f"{out}.wav"]
    raise SystemExit(f"unknown variant {variant!r}")


def threads(pid: int) -> dict[str, tuple[str, int, int]]:
    """tid -> (thread name, run time ns, times scheduled)."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            run_ns, _, slices = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:3]
            found[tid] = (name, int(run_ns), int(slices))
    return found


def measure(cmd: list[str], env: dict[str, str], settle: float, seconds: float) -> dict[str, tuple[float, float]]:
    """Per thread: (CPU s/s, wake-ups/s) over ``seconds`` after ``settle``."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        before, started = threads(proc.pid), time.monotonic()
        time.sleep(seconds)
        after, elapsed = threads(proc.pid), time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Python does not name its threads for the OS: tell them apart by creation order (tid).
    per_thread = {}
    for rank, tid in enumerate(sorted(after, key=int)):
        name, run_ns, slices = after[tid]
        _, run0, slices0 = before.get(tid, (name, 0, 0))
        per_thread[f"{name}#{rank}"] = ((run_ns - run0) / 1e9 / elapsed, (slices - slices0) / elapsed)
    return per_thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--keepalive-ms", type=int)
    parser.add_argument("--server", choices=("pulseaudio", "pipewire"), default="pulseaudio")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant, interleaved (median)")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results: dict[str, list[dict[str, tuple[float, float]]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp, BenchMicrophone(args.keepalive_ms, args.server) as mic:
        for _ in range(args.repeat):
            for variant in args.variants:
                out = Path(tmp) / variant.replace(":", "-")
                results[variant].append(measure(command(variant, out), mic.env, 2.0, args.seconds))
    keepalive = f", keep-alive {args.keepalive_ms or 20} ms" if args.server == "pulseaudio" else ""
    print(f"{args.server}{keepalive}; median of {args.repeat} runs of {args.seconds:g} s")
    for variant, runs in results.items():
        total = statistics.median(sum(c for c, _ in run.values()) for run in runs)
        wakes = statistics.median(sum(w for _, w in run.values()) for run in runs)
        names = sorted({n for run in runs for n in run})
        detail = ", ".join(f"{n} {statistics.median(run.get(n, (0, 0))[0] for run in runs):.4f}"
                           f"/{statistics.median(run.get(n, (0, 0))[1] for run in runs):.0f}" for n in names)
        print(f"{variant:<14} CPU {total:.4f} s/s, {wakes:4.0f} wake-ups/s   [{detail}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
