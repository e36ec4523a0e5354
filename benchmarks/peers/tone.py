"""The benchmark's known signal, and what a recording of it says about the recorder.

The virtual microphone hears one continuous sine of :data:`TONE_HZ` for the whole run, with a
quiet white noise under it (:func:`feed_period`). A recorder that drops or repeats audio breaks
that sine's phase (or its envelope), so dropouts show up without any reference timing:
demodulate at the tone's frequency in 10 ms windows and look for windows whose amplitude or
phase step is off. The noise never repeats within :data:`FEED_PERIOD_S`, so a piece of a
recording can be found in an independent capture of the microphone by cross-correlation
(``reference.py``): that is how the end of a take is placed in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: 1 kHz: a whole number of periods in 10 ms at every rate used (8k..48k, 44.1k).
TONE_HZ = 1000.0
#: -6 dBFS peak.
TONE_AMPLITUDE = 0.5
#: The noise under the tone: -30 dBFS RMS, 24 dB under the tone's power, loud enough that the
#: lossy encoders at 128 kb/s keep it between 2 and 12 kHz (where the tail is located).
NOISE_RMS = 10 ** (-30 / 20)
#: The feed's loop: 7 s, longer than twice any search window for a take's end.
FEED_PERIOD_S = 7
_WINDOW_S = 0.010
#: Edges are left out: codec priming and the last partial frame are not dropouts.
_EDGE_S = 0.060
_AMPLITUDE_TOLERANCE = 0.25
_PHASE_TOLERANCE = 0.35


def tone_period(rate: int, channels: int) -> bytes:
    """One second of the tone as raw s16le: a whole number of periods, so it loops seamlessly."""
    t = np.arange(rate) / rate
    mono = np.round(TONE_AMPLITUDE * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")
    return np.repeat(mono.reshape(-1, 1), channels, axis=1).tobytes()


def feed_period(rate: int, channels: int, seconds: int = FEED_PERIOD_S) -> bytes:
    """``seconds`` of the tone plus seeded noise as raw s16le, looping seamlessly in the tone."""
    tone = np.frombuffer(tone_period(rate, 1), dtype="<i2").astype(np.float64)
    noise = np.random.default_rng(19).normal(0.0, NOISE_RMS * 32767, rate * seconds)
    mono = np.clip(np.round(np.tile(tone, seconds) + noise), -32768, 32767).astype("<i2")
    return np.repeat(mono.reshape(-1, 1), channels, axis=1).tobytes()


@dataclass(frozen=True)
class SignalReport:
    """What the decoded audio holds."""

    seconds: float
    frequency: float
    peak_dbfs: float
    dropouts: int


def analyse(samples: npt.NDArray[np.int16], rate: int) -> SignalReport:
    """Length, dominant frequency, peak level and number of dropouts of a recording of the tone."""
    mono = samples.astype(np.float64).reshape(len(samples), -1).mean(axis=1)
    seconds = len(mono) / rate
    if len(mono) < rate * 4 * _EDGE_S:
        return SignalReport(seconds, 0.0, _dbfs(np.abs(mono).max(initial=0.0)), 0)
    return SignalReport(seconds, _dominant(mono, rate), _dbfs(np.abs(mono).max()), count_dropouts(mono, rate))


def count_dropouts(mono: npt.NDArray[np.float64], rate: int) -> int:
    """Runs of 10 ms windows where the tone's amplitude or phase jumps."""
    window = round(rate * _WINDOW_S)
    edge = round(rate * _EDGE_S)
    body = mono[edge:len(mono) - edge]
    count = len(body) // window
    if count < 3:
        return 0
    n = np.arange(count * window)
    carrier = np.exp(-2j * np.pi * TONE_HZ * n / rate)
    z = (body[: count * window] * carrier).reshape(count, window).mean(axis=1)
    amplitude = np.abs(z)
    step = np.angle(z[1:] * np.conj(z[:-1]))
    # A clock mismatch between feed and capture turns the phase at a steady rate: remove it.
    step = np.angle(np.exp(1j * (step - np.median(step))))
    bad = np.abs(amplitude - np.median(amplitude)) > _AMPLITUDE_TOLERANCE * np.median(amplitude)
    bad[1:] |= np.abs(step) > _PHASE_TOLERANCE
    starts = bad & ~np.concatenate([[False], bad[:-1]])
    return int(starts.sum())


def _dominant(mono: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft((mono - mono.mean()) * np.hanning(len(mono))))
    return float(np.fft.rfftfreq(len(mono), 1 / rate)[int(np.argmax(spectrum))])


def _dbfs(peak: float) -> float:
    return -160.0 if peak <= 0 else round(float(20 * np.log10(peak / 32768)), 2)
