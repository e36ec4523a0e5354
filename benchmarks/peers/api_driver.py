"""Driver of micrec's API in a process of its own, so that the harness can measure it like a tool.

It warms up (imports, one short take), then records one take through ``AudioRecorder`` and
talks to the harness in JSON lines: ``started`` after ``start_recording()`` returned, then it
waits for ``stop`` on stdin, stops, and reports ``stopped`` with its own timings::

    python benchmarks/peers/api_driver.py take.flac --encoder flac --rate 44100 --channels 2
    python benchmarks/peers/api_driver.py take.flac --encoder flac --poll-levels 0.05   # a watched take

A plain take is what a script or a Flet app does: start, wait, stop, nothing read meanwhile.
With ``--poll-levels`` the main thread calls ``get_amplitude()`` that often while it waits, as a
level meter would.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from pathlib import Path
from typing import Any

from micrec import AudioRecorder
from micrec.backends import StreamSpec, get_backend

_WARM_UP_S = 0.3


class FirstBlockClock:
    """A capture backend wrapper that notes when the first block reaches micrec's pipeline."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.name = backend.name
        self.first_block_at: float | None = None

    def list_devices(self) -> Any:
        return self._backend.list_devices()

    def can_capture(self, device: str | None) -> bool:
        return bool(self._backend.can_capture(device))

    def open(self, spec: StreamSpec, sink: Any) -> Any:
        self.first_block_at = None
        return self._backend.open(spec, _ClockedSink(self, sink))


class _ClockedSink:
    def __init__(self, clock: FirstBlockClock, sink: Any) -> None:
        self._clock = clock
        self._sink = sink

    def push(self, block: Any, *, wait: bool = False, capture_time: float | None = None) -> None:
        if self._clock.first_block_at is None:
            self._clock.first_block_at = time.monotonic()
        self._sink.push(block, wait=wait, capture_time=capture_time)

    def overflow(self, frames: int = 0) -> None:
        self._sink.overflow(frames)

    def fail(self, error: BaseException) -> None:
        self._sink.fail(error)


def _say(**message: Any) -> None:
    print(json.dumps(message), flush=True)


def _wait_for_stop(rec: AudioRecorder, poll_s: float | None) -> None:
    """Block until the harness writes a line on stdin, reading the level every ``poll_s`` if given."""
    if poll_s is None:
        sys.stdin.readline()
        return
    while not select.select([sys.stdin], [], [], poll_s)[0]:
        rec.get_amplitude()
    sys.stdin.readline()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--block-ms", type=int, help="what-if: override micrec.session.BLOCK_MS")
    parser.add_argument("--poll-levels", type=float, metavar="SECONDS",
                        help="call get_amplitude() this often while waiting for the stop")
    args = parser.parse_args()
    if args.block_ms:
        import micrec.session

        micrec.session.BLOCK_MS = args.block_ms
    clock = FirstBlockClock(get_backend("pulse"))
    rec = AudioRecorder(audio_encoder=args.encoder, sample_rate=args.rate, channels_num=args.channels,
                        backend=clock)
    warm = args.output.with_name("warm-up-" + args.output.name)
    rec.start_recording(warm)
    time.sleep(_WARM_UP_S)
    rec.stop_recording()
    os.unlink(warm)

    cpu = time.process_time()
    called = time.monotonic()
    rec.start_recording(args.output)
    _say(event="started", called=called, returned=time.monotonic())
    _wait_for_stop(rec, args.poll_levels)
    stop_called = time.monotonic()
    rec.stop_recording()
    stopped = time.monotonic()
    first = clock.first_block_at
    _say(event="stopped", first_block_s=None if first is None else first - called,
         stop_called=stop_called, stop_s=stopped - stop_called, cpu_s=time.process_time() - cpu,
         overflows=rec.overflows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
