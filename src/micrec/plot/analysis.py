"""What a picture of a take shows, computed from its samples (no drawing here).

* the **envelope**: the lowest and highest sample of each pixel column, per channel, so that
  no peak is lost however many samples a column covers;
* the **level**: RMS in dBFS of the loudest channel over fixed windows (50 ms);
* **clipped samples**: at 16-bit full scale (``|x| >= 32767/32768``), and the columns they are in;
* **silences**: stretches of at least ``min_silence`` seconds with the level below
  ``silence_db``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Analysis", "analyse", "analyse_blocks", "clipped_mask", "envelope", "find_silences", "level_dbfs"]

FLOOR_DB = -120.0
CLIP_LEVEL = 32767 / 32768
LEVEL_WINDOW = 0.05
SILENCE_DB = -50.0
MIN_SILENCE = 0.3


@dataclass(frozen=True)
class Analysis:
    """The numbers behind a picture of a take (see the module docstring).

    Attributes
    ----------
    rate, frames, channels : int
    low, high : numpy.ndarray
        ``(columns, channels)``: the envelope.
    level_db : numpy.ndarray
        ``(windows,)``: RMS level in dBFS of each ``window`` seconds, the loudest channel's.
    window : float
        Seconds per level value.
    peak_db : float
        The take's highest sample in dBFS (-120 for digital silence).
    clipped : int
        Samples at full scale (all channels).
    clipped_columns : numpy.ndarray
        ``(columns, channels)`` bool: where a column of a channel has a clipped sample.
    silences : list of (float, float)
        Start and end, in seconds.
    """

    rate: int
    frames: int
    channels: int
    low: npt.NDArray[np.float32]
    high: npt.NDArray[np.float32]
    level_db: npt.NDArray[np.float64]
    window: float
    peak_db: float
    clipped: int
    clipped_columns: npt.NDArray[np.bool_]
    silences: list[tuple[float, float]]

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.rate if self.rate else 0.0


def analyse(samples: npt.NDArray[np.float32], rate: int, columns: int, *, window: float = LEVEL_WINDOW,
            silence_db: float = SILENCE_DB, min_silence: float = MIN_SILENCE) -> Analysis:
    """Envelope, level, peak, clipping and silences of ``samples`` (float, ``(frames, channels)``)."""
    import numpy as np

    samples = _two_d(np.asarray(samples, dtype=np.float32))
    return analyse_blocks([samples], rate, samples.shape[1], len(samples), columns, window=window,
                          silence_db=silence_db, min_silence=min_silence)


def analyse_blocks(blocks: Iterable[npt.NDArray[np.float32]], rate: int, channels: int, frames: int,
                   columns: int, *, window: float = LEVEL_WINDOW, silence_db: float = SILENCE_DB,
                   min_silence: float = MIN_SILENCE) -> Analysis:
    """:func:`analyse` over consecutive blocks, in memory bounded by ``columns`` and the level windows.

    ``frames`` is the take's length, which places the column edges; samples past it (a length
    that was an estimate) count in the last column and level window.
    """
    acc = _Accumulator(rate, channels, frames, columns, window)
    for block in blocks:
        acc.add(block)
    return acc.result(silence_db, min_silence)


def envelope(samples: npt.NDArray[np.float32], columns: int) -> tuple[npt.NDArray[np.float32],
                                                                       npt.NDArray[np.float32]]:
    """Lowest and highest sample of each of ``columns`` equal slices, per channel.

    Column ``c`` covers samples ``[c*n//columns, (c+1)*n//columns)``; when there are fewer
    samples than columns, a column covers the one sample under it. Returns two arrays shaped
    ``(columns, channels)``; zeros for an empty take.
    """
    import numpy as np

    if columns < 1:
        raise ValueError(f"columns={columns!r} must be at least 1")
    samples = _two_d(np.asarray(samples, dtype=np.float32))
    acc = _Accumulator(1, samples.shape[1], len(samples), columns, 1.0)
    acc.add(samples)
    return acc.envelope()


def level_dbfs(samples: npt.NDArray[np.float32], rate: int, window: float = LEVEL_WINDOW) -> npt.NDArray[np.float64]:
    """RMS level in dBFS of each ``window`` seconds (the last one may be shorter), loudest channel.

    A full-scale sine reads -3.01 dBFS, one of amplitude 0.5 reads -9.03; digital silence
    reads -120.
    """
    import numpy as np

    samples = _two_d(np.asarray(samples, dtype=np.float32))
    acc = _Accumulator(rate, samples.shape[1], len(samples), 1, window)
    acc.add(samples)
    return acc.levels()


class _Accumulator:
    """Gathers everything :class:`Analysis` holds, block by block."""

    def __init__(self, rate: int, channels: int, frames: int, columns: int, window: float) -> None:
        import numpy as np

        if columns < 1:
            raise ValueError(f"columns={columns!r} must be at least 1")
        self.rate, self.channels, self.frames, self.columns, self.window = rate, channels, frames, columns, window
        self.starts = _column_starts(max(frames, 1), columns)
        self.low = np.full((columns, channels), np.inf, dtype=np.float32)
        self.high = np.full((columns, channels), -np.inf, dtype=np.float32)
        self.clipped_columns = np.zeros((columns, channels), dtype=bool)
        self.window_frames = max(1, round(window * rate))
        windows = max(1, -(-frames // self.window_frames))
        self.sums = np.zeros((windows, channels))
        self.counts = np.zeros(windows, dtype=np.int64)
        self.peak = 0.0
        self.clipped = 0
        self.position = 0

    def add(self, block: npt.NDArray[np.float32]) -> None:
        import numpy as np

        block = _two_d(np.asarray(block, dtype=np.float32))
        n = len(block)
        if not n:
            return
        index = np.arange(self.position, self.position + n)
        self.position += n
        # Consecutive samples fall in consecutive columns and windows: reduce each run at once.
        column = np.searchsorted(self.starts, index, side="right") - 1
        runs, cols = _runs(column)
        # Each run's column is distinct within a block, so plain indexing updates it.
        self.low[cols] = np.minimum(self.low[cols], np.minimum.reduceat(block, runs, axis=0))
        self.high[cols] = np.maximum(self.high[cols], np.maximum.reduceat(block, runs, axis=0))
        clipped = np.abs(block) >= CLIP_LEVEL
        self.clipped += int(clipped.sum())
        self.clipped_columns[cols] |= np.logical_or.reduceat(clipped, runs, axis=0)
        self.peak = max(self.peak, float(np.abs(block).max()))
        windows = np.minimum(index // self.window_frames, len(self.counts) - 1)
        runs, wins = _runs(windows)
        self.sums[wins] += np.add.reduceat(block.astype(np.float64) ** 2, runs, axis=0)
        self.counts[wins] += np.diff(np.append(runs, n))

    def envelope(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        import numpy as np

        low, high = self.low.copy(), self.high.copy()
        empty = ~np.isfinite(low[:, 0])
        if self.position == 0:
            low[:], high[:] = 0, 0
        elif empty.any():
            # Fewer samples than columns: a column shows the sample under it, which the next
            # filled column holds (trailing columns, past an estimated length, show nothing).
            filled = np.flatnonzero(~empty)
            source = filled[np.minimum(np.searchsorted(filled, np.flatnonzero(empty)), len(filled) - 1)]
            past_end = self.starts[np.flatnonzero(empty)] >= self.position
            low[empty], high[empty] = low[source], high[source]
            low[np.flatnonzero(empty)[past_end]] = 0
            high[np.flatnonzero(empty)[past_end]] = 0
        return low, high

    def levels(self) -> npt.NDArray[np.float64]:
        import numpy as np

        used = self.counts > 0
        if self.position == 0:
            return np.zeros(0)
        rms = np.sqrt(self.sums[used] / self.counts[used].reshape(-1, 1)).max(axis=1)
        with np.errstate(divide="ignore"):
            return np.maximum(20 * np.log10(rms), FLOOR_DB)

    def result(self, silence_db: float, min_silence: float) -> Analysis:
        low, high = self.envelope()
        levels = self.levels()
        duration = self.position / self.rate if self.rate else 0.0
        return Analysis(
            rate=self.rate, frames=self.position, channels=self.channels, low=low, high=high, level_db=levels,
            window=self.window, peak_db=_dbfs(self.peak), clipped=self.clipped,
            clipped_columns=self.clipped_columns.copy(),
            silences=[(start, min(end, duration))
                      for start, end in find_silences(levels, self.window, silence_db, min_silence)])


def clipped_mask(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """True where a sample is at 16-bit full scale (or beyond, after a lossy decoder)."""
    import numpy as np

    return np.asarray(np.abs(samples) >= CLIP_LEVEL)


def find_silences(level_db: npt.NDArray[np.float64], window: float, silence_db: float = SILENCE_DB,
                  min_silence: float = MIN_SILENCE) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of every run of windows quieter than ``silence_db`` lasting ``min_silence``."""
    import numpy as np

    quiet = np.concatenate([[False], np.asarray(level_db) < silence_db, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    runs = edges.reshape(-1, 2)
    need = max(1, round(min_silence / window))
    return [(float(a * window), float(b * window)) for a, b in runs if b - a >= need]


def _column_starts(frames: int, columns: int) -> npt.NDArray[np.intp]:
    import numpy as np

    return (np.arange(columns, dtype=np.int64) * frames // columns).astype(np.intp)


def _runs(labels: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Where each run of equal (non-decreasing) labels starts, and its label."""
    import numpy as np

    starts = np.flatnonzero(np.concatenate([[True], labels[1:] != labels[:-1]]))
    return starts, labels[starts]


def _two_d(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return samples.reshape(-1, 1) if samples.ndim == 1 else samples


def _dbfs(value: float) -> float:
    import math

    return FLOOR_DB if value <= 0 else max(FLOOR_DB, 20 * math.log10(value))
