"""Where a recorder's CPU goes, thread by thread: CPU seconds and wake-ups per second.

Runs each variant recording the benchmark microphone (see ``benchmarks.peers.mic``) and reads every
thread's ``schedstat`` (run time, and the number of times it was scheduled) over a steady
window. micrec variants can change ``micrec.session.BLOCK_MS`` and the capture backend, which
is how the figures in ``docs/benchmarks.md``'s profile section were made::

    python -m benchmarks profile micrec-meter micrec api api-levels parecord arecord
    python -m benchmarks profile micrec micrec-py parecord arecord
    python -m benchmarks profile micrec micrec:100 portaudio:50 parecord arecord
    python -m benchmarks profile --keepalive-ms 100 micrec micrec:50
    python -m benchmarks profile --server pipewire micrec parecord arecord

Variants: ``micrec[:BLOCK_MS]`` (the CLI's pipeline with ``--quiet`` on the Pulse backend, the
session's block size as given), ``micrec-meter[:BLOCK_MS]`` (the same with its level meter, as
the CLI runs by default), ``api`` and ``api-levels`` (a plain API take, and one whose level is
polled every 50 ms, through ``peers/api_driver.py``), ``micrec-py[:BLOCK_MS]`` (the same with
the backend's per-packet loop in Python, ``MICREC_PYTHON_CAPTURE=1``), ``portaudio[:BLOCK_MS]``
(the same on PortAudio through ALSA's pulse plugin), ``parecord`` (100 ms latency), ``arecord``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.peers.compare import compile_bytecode
from benchmarks.peers.mic import BenchMicrophone
from benchmarks.peers.proc import process_schedstat, profile


def command(variant: str, out: Path) -> list[str]:
    name, _, block = variant.partition(":")
    record = f"['record', '{out}.wav', '-q'{{}}]"
    block_setting = f"import micrec.session as s; s.BLOCK_MS = {block}; " if block else ""
    micrec = block_setting + "from micrec.cli import main; main({})"
    if name == "micrec":
        return [sys.executable, "-c", micrec.format(record.format(""))]
    if name == "micrec-meter":
        return [sys.executable, "-c", micrec.format(f"['record', '{out}.wav']")]
    if name in ("api", "api-levels"):
        levels = ["--poll-levels", "0.05"] if name == "api-levels" else []
        return [sys.executable, str(Path(__file__).resolve().parent / "peers" / "api_driver.py"), f"{out}.wav",
                "--encoder", "wav", *levels]
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


def measure(cmd: list[str], env: dict[str, str], settle: float, seconds: float) -> dict[str, tuple[float, float]]:
    """Per thread: (CPU s/s, wake-ups/s) over ``seconds`` after ``settle``."""
    # The API driver waits for a line on stdin before it stops: a pipe, closed at the end.
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        before, started = process_schedstat(proc.pid), time.monotonic()
        time.sleep(seconds)
        after, elapsed = process_schedstat(proc.pid), time.monotonic() - started
    finally:
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(b"stop\n")
            proc.stdin.close()
        if "api_driver.py" not in " ".join(cmd):  # the driver stops on the line above
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Python does not name its threads for the OS: tell them apart by creation order (tid).
    return profile(before, after, elapsed).threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--keepalive-ms", type=int)
    parser.add_argument("--server", choices=("pulseaudio", "pipewire"), default="pulseaudio")
    parser.add_argument("--alone", action="store_true",
                        help="no other client on the microphone sets its pace (see benchmarks.peers.mic)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant, interleaved (median)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    compile_bytecode()
    results: dict[str, list[dict[str, tuple[float, float]]]] = defaultdict(list)
    microphone = BenchMicrophone(args.keepalive_ms, args.server, alone=args.alone, reference=False)
    with tempfile.TemporaryDirectory() as tmp, microphone as mic:
        for _ in range(args.repeat):
            for variant in args.variants:
                out = Path(tmp) / variant.replace(":", "-")
                results[variant].append(measure(command(variant, out), mic.env, 2.0, args.seconds))
    keepalive = "" if args.server == "pipewire" else f", keep-alive {args.keepalive_ms or 20} ms"
    keepalive = ", alone" if args.alone else keepalive
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
