"""The least CPU a recorder built as micrec is can cost, next to record's pipeline, in one run.

The CPU targets compare micrec with record's pipeline (``parecord | ffmpeg``). When the
recorder is the microphone's only client, that pipeline is cheap: two C programs, each waking
about ten times a second. This measures what the parts of any recorder shaped like micrec cost
on the same machine, with nothing of micrec in them, so that a target can be told apart from
the floor beneath it::

    python -m benchmarks floor                    # PulseAudio, the recorder alone
    python -m benchmarks floor --server pipewire

Rows (each a process recording, or idling, for ``--seconds``; CPU from every thread's
``schedstat``, the median of ``--repeat`` runs):

``record's pipeline``
    ``parecord --latency-msec=100 | ffmpeg`` writing WAV, as the peer comparison runs it.
``parecord alone``
    Its capture half, writing the raw audio to a file.
``capture only``
    ``parecord --latency-msec=250``, its output thrown away: what taking the server's packets in costs,
    in C, with 250 ms blocks (the server still sends a packet per ~100 ms).
``python: wake only``
    A Python thread that wakes every 250 ms and does nothing: the interpreter's own cost of
    a wake-up (its caches are cold after a sleep).
``python: worker skeleton``
    micrec's shape with no audio source: a capture thread that wakes every 250 ms and hands a
    250 ms block (44.1 kHz stereo, int16) to a worker through a deque and an eventfd; the
    worker takes its peak (numpy) and appends it to a WAV-like file, rewriting the header's size.

``capture only`` + ``python: worker skeleton`` is a floor for a Python recorder whose capture
thread hands blocks to a worker: micrec's own take does more (placing blocks on the capture
clock, encoders, events). It is printed next to half of record's pipeline (the plain take's
target) and three quarters of it (the meter's, before the meter's own wake-ups).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.peers.mic import MIC, BenchMicrophone
from benchmarks.peers.proc import ProcessTree, profile
from benchmarks.peers.report import REFERENCE
from benchmarks.peers.tools import TOOLS, WAV, Commands, Config

#: A Python thread that wakes every 250 ms and does nothing else.
WAKE_ONLY = """
import time
while True:
    time.sleep(0.25)
"""

#: micrec's thread shape without an audio source (see the module's docstring).
WORKER_SKELETON = """
import collections, os, struct, sys, threading, time
import numpy as np

RATE, CHANNELS = {rate}, {channels}
out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(out, bytes(44))
bell = os.eventfd(0)
queue = collections.deque()
source = np.random.default_rng(1).integers(-3000, 3000, (RATE // 4, CHANNELS), dtype=np.int16).tobytes()

def capture():
    while True:
        time.sleep(0.25)
        queue.append(np.frombuffer(source, dtype=np.int16).reshape(-1, CHANNELS).copy())
        os.eventfd_write(bell, 1)

def worker():
    written = 0
    while True:
        os.eventfd_read(bell)
        while queue:
            block = queue.popleft()
            peak = max(int(block.max()), -int(block.min()))
            written += os.write(out, block)
            os.pwrite(out, struct.pack("<I", written), 40)
            if len(sys.argv) > 2 and written >= int(sys.argv[2]) * block.nbytes:  # a test's few blocks
                return

threading.Thread(target=capture, daemon=True).start()
worker()
"""


def commands(tmp: Path) -> dict[str, Commands]:
    """row -> the commands of its process tree (a pipeline when more than one)."""
    cfg = Config(MIC.rate, MIC.channels)
    record = next(tool for tool in TOOLS if tool.key == REFERENCE).build(WAV, cfg, tmp / "record.wav")
    parecord = record[0]  # the pipeline's capture half, as the comparison runs it
    return {
        "record's pipeline": record,
        "parecord alone": [[*parecord, str(tmp / "parecord.raw")]],
        "capture only": [[*(arg for arg in parecord if not arg.startswith("--latency-msec")), "--latency-msec=250"]],
        "python: wake only": [[sys.executable, "-c", WAKE_ONLY]],
        "python: worker skeleton": [[sys.executable, "-c", WORKER_SKELETON.format(rate=cfg.rate, channels=cfg.channels),
                                     str(tmp / "skeleton.wav")]],
    }


def measure(commands: Commands, env: dict[str, str], log: Path, settle: float, seconds: float) -> float:
    """CPU seconds per second of every process of the tree, over ``seconds`` after ``settle``."""
    tree = ProcessTree(commands, env, log)
    try:
        time.sleep(settle)
        before, started = tree.schedstat(), time.monotonic()
        time.sleep(seconds)
        return profile(before, tree.schedstat(), time.monotonic() - started).cpu
    finally:
        tree.send(signal.SIGINT)
        tree.reap(timeout=10)
        tree.close_pipes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=("pulseaudio", "pipewire"), default="pulseaudio")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            BenchMicrophone(None, args.server, alone=True, reference=False) as mic:
        rows = commands(Path(tmp))
        for _ in range(args.repeat):
            for name, command in rows.items():
                results.setdefault(name, []).append(measure(command, mic.env, Path(tmp) / "log", 2.0, args.seconds))
    cpu = {name: statistics.median(runs) for name, runs in results.items()}
    print(f"{args.server}, the recorder alone; median of {args.repeat} runs of {args.seconds:g} s (CPU s/s)")
    for name, value in cpu.items():
        print(f"  {name:<26} {value:.4f}   ({' '.join(f'{v:.4f}' for v in results[name])})")
    record = cpu["record's pipeline"]
    floor = cpu["capture only"] + cpu["python: worker skeleton"]
    print(f"  {'floor: capture + skeleton':<26} {floor:.4f}   = {floor / record:.2f}x record's pipeline")
    print(f"  targets: plain take 0.5x = {0.5 * record:.4f}, CLI with meter 0.75x = {0.75 * record:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
