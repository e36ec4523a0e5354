"""What a segment join costs each encoder: samples added or lost, and the click at the join.

Usage::

    .venv/bin/python -m benchmarks segments [--seconds 6] [--segment 1]

Records one 440 Hz tone (-10 dBFS, 48 kHz mono, through the deterministic test backend) twice:
as one file and with ``segment_seconds``. Every file is decoded with the ffmpeg binary. For
each encoder it prints the decoded length of each segment minus the audio it was given
(priming/padding the decoder does not trim), whether the lossless segments put end to end
equal the one-file take sample for sample, and the largest sample-to-sample step within 10 ms
of each join of the decoded segments put end to end, against the largest step anywhere in the
one-file take (a click shows as a step well above the tone's own).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from micrec import AudioEncoder, AudioRecorder, encoders
from micrec.backends import TestBackend

RATE = 48000
CASES = [("wav", ".wav"), ("flac", ".flac"), ("pcm16bits", ".pcm"), ("aacLc", ".m4a"), ("aacHe", ".m4a"),
         ("aacEld", ".m4a"), ("opus", ".ogg"), ("amrNb", ".amr"), ("amrWb", ".awb")]


def decode(path: str, rate: int) -> np.ndarray:
    fmt = ["-f", "s16le", "-ar", str(rate), "-ac", "1"] if path.endswith(".pcm") else []
    out = subprocess.run(["ffmpeg", "-v", "error", *fmt, "-i", path, "-f", "s16le", "-ac", "1", "-"],
                         capture_output=True, timeout=60, check=True).stdout
    return np.frombuffer(out, dtype=np.int16)


def record(encoder: str, path: Path, signal: np.ndarray, segment: float | None) -> tuple[AudioRecorder, str]:
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=RATE, channels_num=1, segment_seconds=segment,
                        backend=TestBackend(signal, RATE, realtime=False, after_end="stop", block_frames=960))
    rec.start_recording(path)
    assert isinstance(rec.backend, TestBackend)
    rec.backend.wait_done(60)
    last = -1.0
    while rec.duration_ms != last:
        last = rec.duration_ms
        time.sleep(0.1)
    result = rec.stop_recording()
    assert result is not None
    return rec, result


def measure(encoder: str, suffix: str, signal: np.ndarray, segment: float, workdir: Path) -> str:
    probe = AudioRecorder(audio_encoder=encoder)
    if not probe.is_supported_encoder(encoder):
        return f"| {encoder} | not supported here | | | |"
    cls = encoders.encoder_class(AudioEncoder(encoder))
    assert cls is not None
    rate = cls.admitted_rate(RATE)
    _, whole_path = record(encoder, workdir / f"whole-{encoder}{suffix}", signal, None)
    rec, _ = record(encoder, workdir / f"seg-{encoder}{suffix}", signal, segment)
    parts = [decode(p, rate) for p in rec.segment_paths]
    nominal = round(segment * rate)
    extra = [len(p) - nominal for p in parts[:-1]]
    whole = decode(whole_path, rate)
    joined = np.concatenate(parts)
    exact = "yes" if np.array_equal(joined, whole) else "no"
    steps = np.abs(np.diff(joined.astype(np.int32)))
    ends = np.cumsum([len(p) for p in parts[:-1]])
    window = rate // 100
    join_step = max(int(steps[max(0, e - window):e + window].max()) for e in ends)
    natural = int(np.abs(np.diff(whole.astype(np.int32)))[rate // 10:-rate // 10].max())
    extra_text = f"{min(extra)}..{max(extra)}" if min(extra) != max(extra) else f"{extra[0]}"
    return (f"| {AudioEncoder(encoder).name} | {rate} | {extra_text} ({1000 * max(extra) / rate:.1f} ms) "
            f"| {exact} | {join_step} vs {natural} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--segment", type=float, default=1.0)
    args = parser.parse_args(argv)
    t = np.arange(int(args.seconds * RATE)) / RATE
    signal = np.round(0.316 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    print("| encoder | file rate | decoded samples per segment beyond its audio | segments = one file, "
          "sample for sample | largest step at a join vs anywhere in one file |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for encoder, suffix in CASES:
            print(measure(encoder, suffix, signal, args.segment, Path(tmp)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
