"""CPU and bit-rate accuracy of micrec's lossy encoders (issue 3's closing figures).

Two measurements per encoder:

* **CPU seconds per recorded second, whole process**: a fresh Python process records the
  benchmark microphone (a private PulseAudio server playing a 1 kHz tone, 44.1 kHz stereo)
  through :class:`micrec.AudioRecorder`; after 1 s of settling, its own CPU clock (every
  thread) is read over ``--seconds`` of recording and divided by the seconds written to the
  file. Median of ``--runs``. AMR records at its own rate (8/16 kHz mono); Opus at 48 kHz.
* **Bit-rate accuracy and the codec's own CPU**: a 440 Hz tone plus noise, 44.1 kHz stereo
  (AMR: mono at its rate), is encoded offline in 20 ms blocks at 32, 64 and 128 kbit/s;
  ffprobe's packet sizes over the packet durations (codec payload, no container) against the
  setting, and the encoding thread's CPU time per second of audio at 128 kbit/s. AMR has
  fixed modes: its row gives the measured payload rate at the default bit_rate instead.

::

    .venv/bin/python -m benchmarks encoders-cpu                 # 3 runs of 8 s each
    .venv/bin/python -m benchmarks encoders-cpu --runs 1 --seconds 4 --encoders opus,aacLc
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.peers.mic import BenchMicrophone
from micrec import AudioEncoder, encoders

LOSSY = ("aacLc", "aacHe", "aacEld", "opus", "amrNb", "amrWb")
EXTENSION = {"aacLc": ".m4a", "aacHe": ".m4a", "aacEld": ".m4a", "opus": ".ogg", "amrNb": ".amr",
             "amrWb": ".awb", "wav": ".wav", "flac": ".flac"}
BIT_RATES = (32000, 64000, 128000)
RATE, CHANNELS = 44100, 2
TIMEOUT = 120

CHILD = textwrap.dedent("""
    import json, sys, time
    from micrec import AudioRecorder
    encoder, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    frames = [0]
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=44100, channels_num=2, backend="pulse",
                        on_audio=lambda b: frames.__setitem__(0, frames[0] + len(b)))
    rec.start_recording(path)
    time.sleep(1.0)
    cpu0, frames0 = time.process_time(), frames[0]
    time.sleep(seconds)
    cpu1, frames1 = time.process_time(), frames[0]
    rec.stop_recording()
    print(json.dumps({"cpu": cpu1 - cpu0, "frames": frames1 - frames0}))
""")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--encoders", default=",".join(LOSSY),
                        help="comma-separated (wav and flac give a baseline)")
    args = parser.parse_args(argv)
    args.encoders = args.encoders.split(",")
    return args


def file_rate(encoder: str) -> int:
    cls = encoders.resolve(AudioEncoder(encoder), "x" + EXTENSION[encoder])
    return cls.admitted_rate(RATE)


def cpu_per_second(encoder: str, mic: BenchMicrophone, workdir: Path, seconds: float) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, encoder, str(workdir / f"take{EXTENSION[encoder]}"),
                          str(seconds)], env=mic.env, capture_output=True, text=True, timeout=TIMEOUT,
                         check=True)
    result = json.loads(out.stdout)
    return float(result["cpu"]) / (result["frames"] / file_rate(encoder))


def payload_bit_rate(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "packet=size,pts_time", "-of", "json", str(path)],
                         capture_output=True, timeout=TIMEOUT, check=True).stdout
    packets = json.loads(out)["packets"]
    pts = [float(p["pts_time"]) for p in packets]
    seconds = pts[-1] - pts[0] + float(np.median(np.diff(pts)))
    return sum(int(p["size"]) for p in packets) * 8 / seconds


def test_signal(seconds: float, rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.4 * 32767 * np.sin(2 * np.pi * 440 * t) + np.random.default_rng(1).normal(0, 2000, len(t))
    mono = np.clip(x, -32768, 32767).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1)


def offline_take(encoder: str, bit_rate: int, workdir: Path) -> tuple[float, float]:
    """(measured payload bit rate, thread CPU seconds per second) of a 6 s offline take."""
    path = workdir / f"rate{EXTENSION[encoder]}"
    cls = encoders.resolve(AudioEncoder(encoder), path)
    rate, channels = cls.admitted_rate(RATE), cls.admitted_channels(CHANNELS)
    signal = test_signal(6.0, rate, channels)
    block = rate // 50
    cpu0 = time.thread_time()
    enc = cls(path, rate, channels, bit_rate)
    for i in range(0, len(signal), block):
        enc.write(signal[i:i + block])
    enc.close()
    cpu = (time.thread_time() - cpu0) / 6.0
    return payload_bit_rate(path), cpu


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="micrec-enc-bench-") as tmp, BenchMicrophone() as mic:
        workdir = Path(tmp)
        for encoder in args.encoders:
            cpu = statistics.median(cpu_per_second(encoder, mic, workdir, args.seconds)
                                    for _ in range(args.runs))
            rows.append((encoder, file_rate(encoder), cpu, *accuracy(encoder, workdir)))
    print(f"| encoder | file rate | whole process: CPU s per recorded s (median of {args.runs}) | "
          "codec alone: CPU s per s | bit rate: error at 32 / 64 / 128 kbit/s |")
    print("|---|---|---|---|---|")
    for encoder, rate, cpu, codec_cpu, rate_text in rows:
        print(f"| {encoder} | {rate} Hz | {cpu:.4f} | {codec_cpu} | {rate_text} |")
    return 0


def accuracy(encoder: str, workdir: Path) -> tuple[str, str]:
    """The codec's own CPU at 128 kbit/s, and its bit-rate accuracy, as table cells."""
    if encoder not in LOSSY:
        return "—", "—"
    if encoder.startswith("amr"):
        measured, cpu = offline_take(encoder, 128000, workdir)
        return f"{cpu:.4f}", f"fixed modes: {measured / 1000:.2f} kbit/s at the default 128000"
    results = [offline_take(encoder, br, workdir) for br in BIT_RATES]
    errors = " / ".join(f"{(measured / br - 1) * 100:+.1f} %" for (measured, _), br in zip(results, BIT_RATES,
                                                                                        strict=True))
    return f"{results[-1][1]:.4f}", errors


if __name__ == "__main__":
    raise SystemExit(main())
