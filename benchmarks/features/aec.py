"""ERLE of ``cancel_echo`` over repeated takes, at normal load or with busy loops running.

Runs the real-server echo test (tests/test_dsp.py, 48 kHz stereo and 16 kHz mono) ``--runs``
times, one pytest session each, collects the ERLE every take printed, and reports them::

    python -m benchmarks aec --runs 20                 # normal load
    python -m benchmarks aec --runs 20 --busy 4        # four busy-looping processes

A measuring tool for docs/dsp.md, not a test: the test itself asserts ERLE >= 20 dB per take.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/test_dsp.py::test_cancel_echo_removes_the_far_end_and_keeps_the_near_end"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="takes per parameter set")
    parser.add_argument("--busy", type=int, default=0, help="busy-looping processes to run meanwhile")
    args = parser.parse_args(argv)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    values: list[float] = []
    failed: list[str] = []
    try:
        for run in range(args.runs):
            out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST],
                                 cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
            erles = [float(v) for v in re.findall(r"ERLE (-?[0-9.]+) dB", out.stdout)]
            failed += re.findall(r"^FAILED .*$", out.stdout, flags=re.M)
            values += erles
            print(f"run {run + 1}: ERLE {erles} dB, {out.stdout.strip().splitlines()[-1]}", flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    if values:
        print(f"{len(values)} takes, {args.busy} busy loops: ERLE min {min(values):.1f}, median "
              f"{statistics.median(values):.1f}, max {max(values):.1f} dB; under 20 dB: "
              f"{sum(v < 20 for v in values)}, under 15 dB: {sum(v < 15 for v in values)}")
    for line in failed:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
