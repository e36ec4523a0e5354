"""Pictures of a take: waveform, level, clipping and silences, as a PNG.

``micrec plot take.flac`` (or :func:`plot_take`) decodes the file (any format micrec writes),
computes the picture's numbers (:mod:`micrec.plot.analysis`) and draws them
(:mod:`micrec.plot.draw`). Drawing needs Pillow: ``pip install 'micrec[plot]'``.

Examples
--------
>>> from micrec.plot import plot_take
>>> plot_take("take.flac")                      # doctest: +SKIP
PosixPath('take.flac.png')
"""

from __future__ import annotations

import os
from pathlib import Path

from .analysis import Analysis, analyse, analyse_blocks
from .decode import DecodedTake, TakeReader, open_take, read_take

__all__ = ["Analysis", "DecodedTake", "TakeReader", "analyse", "analyse_take", "open_take", "plot_take",
           "read_take", "title_of"]

DEFAULT_SIZE = (1200, 600)


def analyse_take(take: DecodedTake | TakeReader, width: int = DEFAULT_SIZE[0],
                 height: int = DEFAULT_SIZE[1]) -> Analysis:
    """The numbers of a ``width`` x ``height`` picture of ``take`` (a reader is read block by block)."""
    from .draw import layout

    columns = layout(width, height, take.channels).columns
    if isinstance(take, DecodedTake):
        return analyse(take.samples, take.rate, columns)
    analysis = analyse_blocks(take.blocks(), take.rate, take.channels, take.frames, columns)
    if abs(analysis.frames - take.frames) * columns > take.frames:
        # The length was counted from packets and a codec's delay made it more than a column
        # off: decode again with the true length, so that the columns span the take exactly.
        analysis = analyse_blocks(take.blocks(), take.rate, take.channels, analysis.frames, columns)
    return analysis


def title_of(take: DecodedTake | TakeReader, analysis: Analysis) -> str:
    """The picture's title: file, format, rate, channels, duration, peak, clipped samples, silences."""
    channels = {1: "mono", 2: "stereo"}.get(take.channels, f"{take.channels} ch")
    peak_db = round(analysis.peak_db, 1) or 0.0  # no "-0.0"
    peak = "silent" if analysis.peak_db <= -120 else f"peak {peak_db:.1f} dBFS"
    parts = [take.path.name, take.format, f"{take.rate} Hz {channels}", f"{analysis.duration:.2f} s", peak,
             f"{analysis.clipped} clipped" if analysis.clipped else "no clipping"]
    if analysis.silences:
        parts.append(f"{len(analysis.silences)} silence{'s' if len(analysis.silences) > 1 else ''}")
    return "  ·  ".join(parts)


def plot_take(path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, *,
              width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1], rate: int | None = None,
              channels: int | None = None) -> Path:
    """Draw ``path`` to a PNG and return the PNG's path.

    Parameters
    ----------
    path : str or path-like
        A take in any format micrec writes (raw PCM needs ``rate`` and ``channels``).
    output : str or path-like, optional
        The PNG to write; default ``path`` with ``.png`` appended (``take.flac.png``).
    width, height : int
        Pixels (default 1200 x 600).
    rate, channels : int, optional
        Format of a raw PCM16 file.

    Raises
    ------
    InvalidConfigError
        The take cannot be read (see :func:`read_take`) or the size is too small.
    ImportError
        Pillow is missing (the message says ``pip install 'micrec[plot]'``).
    """
    from ..errors import InvalidConfigError, OutputError
    from .draw import render

    take = open_take(path, rate=rate, channels=channels)  # read block by block: any length fits in memory
    try:
        analysis = analyse_take(take, width, height)
    except ValueError as exc:
        raise InvalidConfigError(str(exc), value=(width, height), name="size") from exc
    image = render(analysis, title_of(take, analysis), width, height)
    target = Path(os.fspath(output)) if output is not None else take.path.with_name(take.path.name + ".png")
    try:
        image.save(target, format="PNG")
    except OSError as exc:
        raise OutputError(f"cannot write {str(target)!r}: {exc.strerror or exc}", path=target) from exc
    return target
