"""How well ``mix_system_audio`` lines the microphone up with the output: a known-signal check.

The stack: the default output ``speaker`` (stereo), and a microphone that hears only the
output's *right* channel (``module-remap-source`` on ``speaker.monitor``), so that both reach
the server at the same instant. A stereo *click* is played on the output: a 5 ms noise burst
``A`` on the left channel and a different one, ``B``, on the right, at the same sample.

In a stereo take of the mix, the left channel holds ``A`` from the output and ``B`` from the
microphone (the mono microphone is heard on both channels). ``B`` should sit exactly where ``A``
is; the distance between them is the mix's alignment offset (positive: the microphone's copy is
late). Each click gives one reading, found by cross-correlation to the sample.

Run on a private server (10 minutes, one click a second; figures in docs/system-audio.md)::

    .venv/bin/python -m benchmarks mixing --seconds 600
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 48000
CLICK_S = 0.005
CLICK_AMPLITUDE = 6500  # -14 dBFS: A + B stay far under the mixer's knee
#: A mix further off than this is not found (and counts as a miss).
SEARCH_S = 0.2
MIC_SOURCE = "speaker_right"

Samples = npt.NDArray[np.int16]


def clicks(seed_left: int = 1, seed_right: int = 2) -> tuple[Samples, Samples]:
    """The left (A) and right (B) bursts of one click."""
    n = int(CLICK_S * RATE)
    left = np.random.default_rng(seed_left).integers(-CLICK_AMPLITUDE, CLICK_AMPLITUDE, n)
    right = np.random.default_rng(seed_right).integers(-CLICK_AMPLITUDE, CLICK_AMPLITUDE, n)
    return left.astype(np.int16), right.astype(np.int16)


def click_track(seconds: float, period_s: float = 1.0, lead_s: float = 0.5) -> Samples:
    """A stereo track to play: a click every ``period_s``, the first after ``lead_s``.

    One continuous stream: a player that starts for each click would make the server rewind
    the output to mix it in at once, and a null sink's monitor may then lose or repeat part of
    what it had already captured.
    """
    left, right = clicks()
    out = np.zeros((int(seconds * RATE), 2), dtype=np.int16)
    for start in np.arange(lead_s, seconds - CLICK_S, period_s):
        i = int(start * RATE)
        out[i:i + len(left), 0] = left
        out[i:i + len(right), 1] = right
    return out


def _correlate(x: npt.NDArray[np.float64], pattern: Samples) -> npt.NDArray[np.float64]:
    p = pattern.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(x) + len(p))))
    return np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(p, n)), n)[:len(x)]


def offsets_ms(left_channel: npt.ArrayLike, min_gap_s: float = 0.5) -> list[float]:
    """One offset (ms, microphone minus output) per click found in the take's left channel."""
    x = np.asarray(left_channel, dtype=np.float64).ravel()
    a, b = clicks()
    corr_a, corr_b = _correlate(x, a), _correlate(x, b)
    threshold = 0.5 * float(np.sum(a.astype(np.float64) ** 2))
    found: list[float] = []
    gap, search = int(min_gap_s * RATE), int(SEARCH_S * RATE)
    position = 0
    while True:
        above = np.flatnonzero(corr_a[position:] > threshold)
        if not len(above):
            return found
        start = position + int(above[0])
        peak_a = start + int(np.argmax(corr_a[start:start + int(CLICK_S * RATE)]))
        low, high = max(0, peak_a - search), min(len(x), peak_a + search)
        peak_b = low + int(np.argmax(corr_b[low:high]))
        if corr_b[peak_b] > threshold:
            found.append((peak_b - peak_a) * 1000 / RATE)
        position = peak_a + gap


@contextmanager
def right_channel_microphone(pactl: Any) -> Iterator[str]:
    """A source that hears the default output's right channel, at the output's own instant."""
    module = pactl("load-module", "module-remap-source", "master=speaker.monitor",
                   f"source_name={MIC_SOURCE}", "master_channel_map=front-right", "channel_map=mono",
                   "channels=1").strip()
    try:
        yield MIC_SOURCE
    finally:
        pactl("unload-module", module)


@contextmanager
def paced_output(env: dict[str, str]) -> Iterator[None]:
    """A silent player on the default output at 20 ms latency, so that the null sink renders in
    20 ms steps, as an output does while a call or a player is on.

    Paced only by capture streams, a PulseAudio null sink renders in bursts of up to their
    latency, and the server's timing of its monitor and of a remap source on it then disagree
    by 17 to 69 ms (measured), though both carry the same audio at the same instant.
    """
    player = subprocess.Popen(
        ["nice", "-n", "-10", "pacat", "-p", "--latency-msec=20", "--raw", "--format=s16le", f"--rate={RATE}",
         "--channels=2", "-d", "speaker", "/dev/zero"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        player.terminate()
        player.wait(timeout=5)


def summary(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return {"clicks": 0}
    return {"clicks": len(v), "median_ms": round(float(np.median(v)), 3), "min_ms": round(float(v.min()), 3),
            "max_ms": round(float(v.max()), 3), "p99_abs_ms": round(float(np.percentile(np.abs(v), 99)), 3)}


def run(seconds: float, out_dir: Path, server: str = "pulseaudio") -> dict[str, Any]:
    """A take of ``seconds`` with a click every second on a private ``server``; the offsets."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from micrec import AudioRecorder
    from micrec.vmic import MicSpec, VirtualMicrophone, write_wav

    with VirtualMicrophone(mics=(MicSpec("vmic_a", RATE, 1, "Virtual mic A"),), speaker=True, server=server) as vm, \
            vm.activated(), right_channel_microphone(vm.pactl) as mic, paced_output(vm.env):
        write_wav(out_dir / "clicks.wav", click_track(seconds), RATE)
        rec = AudioRecorder(sample_rate=RATE, channels_num=2, mix_system_audio=True, device=mic,
                            backend="pulse")
        path = out_dir / "mix.wav"
        time.sleep(2.5)  # a fresh server delivers new streams' first audio late for ~2 s
        rec.start_recording(path)
        subprocess.run(["paplay", "--latency-msec=250", "-d", "speaker", str(out_dir / "clicks.wav")],
                       env=vm.env, timeout=seconds * 2 + 60, check=True)
        time.sleep(0.5)
        rec.stop_recording()
        import soundfile as sf

        data, _ = sf.read(path, dtype="int16")
        values = offsets_ms(data[:, 0])
        minutes = [summary(values[i:i + 60]) for i in range(0, len(values), 60)] if values else []
        played = len(np.arange(0.5, seconds - CLICK_S, 1.0))
        return {"seconds": seconds, "played": played, "overflows": rec.overflows, **summary(values),
                "per_minute": minutes}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--server", choices=("pulseaudio", "pipewire"), default="pulseaudio")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="micrec-align-") as tmp:
        result = run(args.seconds, Path(tmp), args.server)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
