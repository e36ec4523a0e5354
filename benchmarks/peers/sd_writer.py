"""Peer D: the recorder a Python user writes with sounddevice and soundfile.

The usual pattern (as in python-sounddevice's "record until Ctrl-C" example): an input stream
whose callback puts copies of its blocks on a queue, and a main loop that writes them with
soundfile until KeyboardInterrupt. Nothing micrec-specific; run::

    python benchmarks/peers/sd_writer.py take.flac --rate 44100 --channels 2
"""

from __future__ import annotations

import argparse
import queue
import sys
from typing import Any

import sounddevice as sd
import soundfile as sf

_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "OPUS")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output")
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    container, subtype = _FORMATS[args.output[args.output.rfind("."):].lower()]
    blocks: queue.Queue[Any] = queue.Queue()

    def callback(indata: Any, frames: int, time: Any, status: sd.CallbackFlags) -> None:
        if status:
            print(status, file=sys.stderr)
        blocks.put(indata.copy())

    try:
        with sf.SoundFile(args.output, "w", args.rate, args.channels, subtype, format=container) as f, \
                sd.InputStream(samplerate=args.rate, channels=args.channels, dtype="int16", callback=callback):
            while True:
                f.write(blocks.get())
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
