"""Offline throughput: micrec's whole pipeline fed by the test backend as fast as it goes.

No device and no pacing: ``TestBackend(realtime=False, after_end="stop")`` hands the tone to
the session as fast as the worker takes it, so the figure is what the pipeline (queue,
conversion, DSP, level, encoder, file) costs per second of audio, as a multiple of real time.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from micrec import AudioRecorder, FeatureUnavailableError
from micrec.backends import TestBackend

from .tone import tone_period
from .tools import EXTENSION

_TIMEOUT_S = 120.0


def tone(seconds: int, rate: int, channels: int) -> np.ndarray:
    second = np.frombuffer(tone_period(rate, channels), dtype="<i2").reshape(-1, channels)
    return np.tile(second, (seconds, 1))


def times_real_time(encoder: str, signal: np.ndarray, rate: int, *, dsp: bool, runs: int) -> float | None:
    """Median x real time over ``runs``; None when the DSP stage is not available here."""
    results = []
    with tempfile.TemporaryDirectory(prefix="micrec-offline-") as tmp:
        for run in range(runs):
            out = Path(tmp) / f"offline-{run}{EXTENSION[encoder]}"
            try:
                elapsed = _one_take(encoder, signal, rate, out, dsp=dsp)
            except FeatureUnavailableError:
                return None
            results.append(len(signal) / rate / elapsed)
    return statistics.median(results)


def _one_take(encoder: str, signal: np.ndarray, rate: int, out: Path, *, dsp: bool) -> float:
    backend = TestBackend(signal, rate=rate, realtime=False, after_end="stop")
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=rate, channels_num=signal.shape[1],
                        auto_gain=dsp, suppress_noise=dsp, backend=backend)
    started = time.perf_counter()
    rec.start_recording(out)
    try:
        if not backend.wait_done(_TIMEOUT_S):
            raise TimeoutError(f"offline {encoder} take did not finish within {_TIMEOUT_S} s")
    finally:
        rec.stop_recording()
    return time.perf_counter() - started
