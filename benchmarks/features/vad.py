"""Compare voice-activity detectors on espeak-ng speech with known pauses, clean and in noise.

Usage::

    .venv/bin/python -m benchmarks vad [--takes 8] [--json docs/vad-results.json]

Every take is a few espeak-ng phrases separated by random pauses shorter than the silence
limit S, then 4 s of silence, at 48 kHz (so the 48 → 16 kHz resampling micrec does is part of
it). The same takes are mixed with pink noise at 20, 10 and 0 dB SNR (active speech level vs
noise power). The truth is where espeak-ng's phrases are (first to last sample above -50 dBFS).

For each engine and condition it reports, on a 10 ms grid: precision and recall of voice
frames; the onset lag (first voice frame vs the phrase start); the end-of-speech latency (the
last voice frame after a phrase vs the phrase end); and, running micrec's own VoiceGate with
``until_silence=S``: false stops (the take ended before the last word) and how far after
``last word + S`` it ended; plus the detector's CPU time per second of audio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from micrec.dsp.vad import SileroEngine, VoiceDetector, VoiceGate, WebRtcEngine

RATE = 48000
BLOCK = RATE * 50 // 1000
GRID = RATE // 100  # 10 ms
SNRS: list[float | None] = [None, 20.0, 10.0, 0.0]
LIMITS = (0.8, 1.5)
PHRASES = [
    "The quick brown fox jumps over the lazy dog",
    "Please record this message after the tone",
    "Seven blue boxes are waiting by the door",
    "She sells sea shells on the sea shore",
    "Turn left at the second traffic light",
    "We will meet again on Thursday morning",
    "Open the window and let the fresh air in",
    "Numbers like forty two are easy to say",
    "The meeting starts at half past nine",
    "Bring a pencil and some paper tomorrow",
    "A small cat sleeps under the warm lamp",
    "Coffee tastes better when it is fresh",
]

ENGINES: dict[str, Callable[[], Any]] = {
    "silero (0.5/0.35)": SileroEngine,
    "webrtc mode 1": lambda: WebRtcEngine(1),
    "webrtc mode 2": lambda: WebRtcEngine(2),
    "webrtc mode 3": lambda: WebRtcEngine(3),
}


@dataclass
class Take:
    clean: np.ndarray  # float64 at RATE
    phrases: list[tuple[int, int]]  # truth (start, end) in samples
    limit: float


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    onset: list[float] = field(default_factory=list)
    eos: list[float] = field(default_factory=list)
    false_stops: int = 0
    stop_excess: list[float] = field(default_factory=list)  # end - (last word + S), seconds
    takes: int = 0
    cpu: float = 0.0
    audio: float = 0.0


def speak(text: str, workdir: Path) -> np.ndarray:
    wav = workdir / "p.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), text], check=True, timeout=30)
    data, rate = sf.read(wav, dtype="float64")
    data = soxr.resample(data, rate, RATE, quality="HQ")
    loud = np.flatnonzero(np.abs(data) > 10 ** (-50 / 20))
    return data[loud[0]:loud[-1] + 1]


def build_takes(count: int, seed: int) -> list[Take]:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        voices = [speak(p, Path(tmp)) for p in PHRASES]
    takes = []
    for limit in LIMITS:
        for _ in range(count):
            parts = [np.zeros(int(rng.uniform(0.2, limit - 0.3) * RATE))]  # the limit counts from the start too
            spans = []
            pos = len(parts[0])
            chosen = rng.choice(len(voices), size=int(rng.integers(3, 5)), replace=False)
            for k, idx in enumerate(chosen):
                voice = voices[idx] * 10 ** (rng.uniform(-6, 0) / 20)
                spans.append((pos, pos + len(voice)))
                parts.append(voice)
                pos += len(voice)
                gap = 4.0 if k == len(chosen) - 1 else rng.uniform(0.2, limit - 0.2)
                parts.append(np.zeros(int(gap * RATE)))
                pos += int(gap * RATE)
            takes.append(Take(np.concatenate(parts), spans, limit))
    return takes


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return x / np.sqrt(np.mean(x**2))


def mix(take: Take, snr: float | None, rng: np.random.Generator) -> np.ndarray:
    speech = take.clean
    if snr is not None:
        active = np.concatenate([speech[a:b] for a, b in take.phrases])
        level = np.sqrt(np.mean(active**2))
        speech = speech + pink_noise(len(speech), rng) * level * 10 ** (-snr / 20)
    peak = np.max(np.abs(speech))
    scaled = speech * (0.7 / peak) * 10 ** (-6 / 20)  # -9 dBFS peak, never clips
    return np.round(scaled * 32767).astype(np.int16).reshape(-1, 1)


def truth_grid(take: Take, n_cells: int) -> np.ndarray:
    grid = np.zeros(n_cells, dtype=bool)
    for a, b in take.phrases:
        grid[a // GRID:-(-b // GRID)] = True
    return grid


def detect(factory: Callable[[], Any], pcm: np.ndarray) -> tuple[np.ndarray, float]:
    """Voice per 10 ms cell, and the CPU seconds the detector took."""
    detector = VoiceDetector(RATE, 1, factory())
    cells = np.zeros(-(-len(pcm) // GRID), dtype=bool)
    frame = round(detector.frame_seconds * RATE)
    start_cpu = time.process_time()
    decisions = []
    for i in range(0, len(pcm), BLOCK):
        decisions += detector.feed(pcm[i:i + BLOCK])
    cpu = time.process_time() - start_cpu
    for end, voice in decisions:
        if voice:
            cells[max(0, end - frame) // GRID:-(-end // GRID)] = True
    return cells, cpu


def gate_end(factory: Callable[[], Any], pcm: np.ndarray, limit: float) -> int | None:
    """Where micrec's gate ends the take (samples written), or None if it never did."""
    gate = VoiceGate(RATE, 1, until_silence=limit, engine=factory())
    written = 0
    for i in range(0, len(pcm), BLOCK):
        written += len(gate.process(pcm[i:i + BLOCK]))
        if gate.ended:
            return written
    return None


def score_take(score: Score, factory: Callable[[], Any], take: Take, pcm: np.ndarray) -> None:
    cells, cpu = detect(factory, pcm)
    truth = truth_grid(take, len(cells))
    score.tp += int(np.sum(cells & truth))
    score.fp += int(np.sum(cells & ~truth))
    score.fn += int(np.sum(~cells & truth))
    score.cpu += cpu
    score.audio += len(pcm) / RATE
    score.takes += 1
    for k, (a, b) in enumerate(take.phrases):
        next_start = take.phrases[k + 1][0] if k + 1 < len(take.phrases) else len(pcm)
        lo, hi = a // GRID, next_start // GRID - 5
        voiced = np.flatnonzero(cells[lo:hi]) + lo
        if len(voiced):
            score.onset.append((voiced[0] * GRID - a) / RATE)
            score.eos.append(((voiced[-1] + 1) * GRID - b) / RATE)
    last_word = take.phrases[-1][1]
    end = gate_end(factory, pcm, take.limit)
    if end is None:
        end = len(pcm)
    if end < last_word:
        score.false_stops += 1
    else:
        score.stop_excess.append((end - last_word) / RATE - take.limit)


def summarize(name: str, snr: float | None, s: Score) -> dict[str, Any]:
    def stat(values: list[float], q: float) -> float | None:
        return round(float(np.quantile(values, q)), 3) if values else None

    return {
        "engine": name, "snr_db": snr,
        "precision": round(s.tp / max(1, s.tp + s.fp), 3), "recall": round(s.tp / max(1, s.tp + s.fn), 3),
        "onset_median_s": stat(s.onset, 0.5), "onset_max_s": stat(s.onset, 1.0),
        "eos_median_s": stat(s.eos, 0.5), "eos_p90_s": stat(s.eos, 0.9), "eos_max_s": stat(s.eos, 1.0),
        "false_stops": s.false_stops, "takes": s.takes,
        "late_stops": sum(1 for x in s.stop_excess if x > 0.3),
        "stop_excess_median_s": stat(s.stop_excess, 0.5), "stop_excess_max_s": stat(s.stop_excess, 1.0),
        "cpu_ms_per_s": round(1000 * s.cpu / max(s.audio, 1e-9), 2),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| engine | SNR | precision | recall | onset lag median / max | end-of-speech latency "
            "median / p90 / max | false stops | late stops (> S+0.3 s) | end - (last word + S) median / max "
            "| CPU ms per s |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        snr = "clean" if r["snr_db"] is None else f"{r['snr_db']:g} dB"
        lines.append(
            f"| {r['engine']} | {snr} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['onset_median_s']} / {r['onset_max_s']} s | "
            f"{r['eos_median_s']} / {r['eos_p90_s']} / {r['eos_max_s']} s | "
            f"{r['false_stops']}/{r['takes']} | {r['late_stops']}/{r['takes']} | "
            f"{r['stop_excess_median_s']} / {r['stop_excess_max_s']} s | {r['cpu_ms_per_s']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--takes", type=int, default=8, help="takes per silence limit (default 8)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is needed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    takes = build_takes(args.takes, args.seed)
    rows = []
    for snr in SNRS:
        mixes = [mix(t, snr, np.random.default_rng(args.seed + i)) for i, t in enumerate(takes)]
        for name, factory in ENGINES.items():
            score = Score()
            for take, pcm in zip(takes, mixes, strict=True):
                score_take(score, factory, take, pcm)
            rows.append(summarize(name, snr, score))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    total = sum(len(t.clean) for t in takes) / RATE
    print(f"\n{len(takes)} takes, {total:.0f} s of audio per condition, limits S = {LIMITS} s\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
