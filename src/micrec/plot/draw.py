"""Drawing an :class:`~micrec.plot.analysis.Analysis` as a PNG-ready Pillow image.

Layout, top to bottom: a title line (file, format, duration, peak, clipped samples), one
waveform lane per channel, the level lane (dBFS over time, grid at 0/-20/-40/-60), and a time
axis in seconds. Silences are shaded across the lanes; columns with clipped samples are drawn
red, with a red tick above the lane (per channel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._lazy import require

if TYPE_CHECKING:
    from .analysis import Analysis

__all__ = ["COLORS", "Box", "Layout", "layout", "render"]

COLORS = {
    "background": (255, 255, 255),
    "lane": (246, 247, 249),
    "silence": (222, 226, 232),
    "wave": (31, 111, 180),
    "clip": (214, 39, 40),
    "level": (44, 160, 44),
    "level_fill": (200, 232, 200),
    "grid": (205, 208, 214),
    "text": (30, 30, 30),
    "axis": (110, 110, 110),
}
LEVEL_RANGE_DB = 80.0  # the level lane spans -80..0 dBFS
TITLE_HEIGHT, AXIS_HEIGHT, LEFT, RIGHT, GAP = 34, 22, 58, 24, 8
MIN_WIDTH, MIN_HEIGHT = LEFT + RIGHT + 50, TITLE_HEIGHT + AXIS_HEIGHT + 60


@dataclass(frozen=True)
class Box:
    """A rectangle of the image: ``left <= x < right``, ``top <= y < bottom``."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def middle(self) -> float:
        """The row of amplitude zero in a waveform lane."""
        return self.top + (self.height - 1) / 2


@dataclass(frozen=True)
class Layout:
    """Where each part of the picture is."""

    width: int
    height: int
    lanes: list[Box]  # one waveform lane per channel
    level: Box

    @property
    def columns(self) -> int:
        """Pixel columns of the plot area: one envelope value each."""
        return self.level.width


def layout(width: int, height: int, channels: int) -> Layout:
    """The boxes of a ``width`` x ``height`` picture of a take with ``channels`` channels."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"a picture needs at least {MIN_WIDTH}x{MIN_HEIGHT} pixels (got {width}x{height})")
    left, right = LEFT, width - RIGHT
    top, bottom = TITLE_HEIGHT, height - AXIS_HEIGHT
    usable = bottom - top - GAP * channels
    level_height = max(20, usable // 4)
    lane_height = (usable - level_height) // channels
    lanes = [Box(left, top + i * (lane_height + GAP), right, top + i * (lane_height + GAP) + lane_height)
             for i in range(channels)]
    level_top = lanes[-1].bottom + GAP
    return Layout(width, height, lanes, Box(left, level_top, right, bottom))


def render(analysis: Analysis, title: str, width: int = 1200, height: int = 600) -> Any:
    """The picture, as a ``PIL.Image.Image`` (RGB); ``analysis`` must have ``layout().columns`` columns."""
    import numpy as np

    image_mod = require("PIL.Image", extra="plot", package="pillow")
    draw_mod = require("PIL.ImageDraw", extra="plot", package="pillow")
    box = layout(width, height, analysis.channels)
    if len(analysis.high) != box.columns:
        raise ValueError(f"the analysis has {len(analysis.high)} columns; this layout needs {box.columns}")
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = COLORS["background"]
    silent = _silent_columns(analysis, box.columns)
    for channel, lane in enumerate(box.lanes):
        _paint_lane(pixels, lane, silent)
        _paint_wave(pixels, lane, analysis.low[:, channel], analysis.high[:, channel],
                    analysis.clipped_columns[:, channel])
    _paint_lane(pixels, box.level, silent)
    _paint_level(pixels, box.level, _level_columns(analysis, box.columns))
    image = image_mod.fromarray(pixels, "RGB")
    draw = draw_mod.Draw(image)
    _draw_level_grid(draw, box.level)
    _draw_clip_ticks(draw, box, analysis.clipped_columns)
    _draw_channel_labels(draw, box.lanes)
    _draw_time_axis(draw, box, analysis.duration)
    draw.text((LEFT, 9), title, fill=COLORS["text"], font=_font(14))
    return image


def _paint_lane(pixels: Any, lane: Box, silent: Any) -> None:
    pixels[lane.top:lane.bottom, lane.left:lane.right] = COLORS["lane"]
    region = pixels[lane.top:lane.bottom, lane.left:lane.right]
    region[:, silent] = COLORS["silence"]


def _paint_wave(pixels: Any, lane: Box, low: Any, high: Any, clipped: Any) -> None:
    import numpy as np

    half = (lane.height - 1) / 2
    # Amplitude +1 is the lane's top row, -1 its bottom row; every column shows at least its zero row.
    top = np.clip(np.floor(lane.middle - np.clip(high, -1, 1) * half), lane.top, lane.bottom - 1)
    bottom = np.clip(np.ceil(lane.middle - np.clip(low, -1, 1) * half), lane.top, lane.bottom - 1)
    rows = np.arange(lane.top, lane.bottom).reshape(-1, 1)
    inside = (rows >= top.reshape(1, -1)) & (rows <= bottom.reshape(1, -1))
    region = pixels[lane.top:lane.bottom, lane.left:lane.right]
    region[inside & ~clipped.reshape(1, -1)] = COLORS["wave"]
    region[inside & clipped.reshape(1, -1)] = COLORS["clip"]


def _paint_level(pixels: Any, lane: Box, level: Any) -> None:
    import numpy as np

    height = lane.height - 1
    y = lane.top + np.round((-np.clip(level, -LEVEL_RANGE_DB, 0) / LEVEL_RANGE_DB) * height)
    rows = np.arange(lane.top, lane.bottom).reshape(-1, 1)
    region = pixels[lane.top:lane.bottom, lane.left:lane.right]
    audible = (level > -LEVEL_RANGE_DB).reshape(1, -1)
    region[(rows > y.reshape(1, -1)) & audible] = COLORS["level_fill"]
    region[(rows == y.reshape(1, -1)) & audible] = COLORS["level"]


def _silent_columns(analysis: Analysis, columns: int) -> Any:
    import numpy as np

    silent = np.zeros(columns, dtype=bool)
    if analysis.duration <= 0:
        return silent
    for start, end in analysis.silences:
        a = math.floor(start / analysis.duration * columns)
        b = math.ceil(end / analysis.duration * columns)
        silent[max(0, a):min(columns, b)] = True
    return silent


def _level_columns(analysis: Analysis, columns: int) -> Any:
    """The level under each pixel column (the loudest window it covers)."""
    import numpy as np

    levels = analysis.level_db
    if not len(levels):
        return np.full(columns, -LEVEL_RANGE_DB - 1)
    starts = (np.arange(columns) * len(levels)) // columns
    return np.maximum.reduceat(levels, starts)


def _draw_level_grid(draw: Any, lane: Box) -> None:
    font = _font(11)
    for db in (0, -20, -40, -60):
        y = lane.top + round(-db / LEVEL_RANGE_DB * (lane.height - 1))
        draw.line([(lane.left, y), (lane.right - 1, y)], fill=COLORS["grid"])
        draw.text((lane.left - 6, y), f"{db} dB", fill=COLORS["axis"], font=font, anchor="rm")


def _draw_clip_ticks(draw: Any, box: Layout, clipped: Any) -> None:
    import numpy as np

    for lane, columns in zip(box.lanes, clipped.T, strict=True):
        for column in np.flatnonzero(columns):
            x = lane.left + int(column)
            draw.polygon([(x - 3, lane.top - 6), (x + 3, lane.top - 6), (x, lane.top - 1)], fill=COLORS["clip"])


def _draw_channel_labels(draw: Any, lanes: list[Box]) -> None:
    font = _font(11)
    names = ["mono"] if len(lanes) == 1 else ["left", "right"] if len(lanes) == 2 else [
        f"ch {i + 1}" for i in range(len(lanes))]
    for lane, name in zip(lanes, names, strict=True):
        draw.text((lane.left - 6, lane.middle), name, fill=COLORS["axis"], font=font, anchor="rm")


def _draw_time_axis(draw: Any, box: Layout, duration: float) -> None:
    lane = box.level
    font = _font(11)
    draw.line([(lane.left, lane.bottom), (lane.right - 1, lane.bottom)], fill=COLORS["axis"])
    if duration <= 0:
        return
    step = _tick_step(duration, lane.width)
    tick = 0.0
    while tick <= duration + 1e-9:
        x = lane.left + round(tick / duration * (lane.width - 1))
        draw.line([(x, lane.bottom), (x, lane.bottom + 4)], fill=COLORS["axis"])
        draw.text((x, lane.bottom + 5), _seconds_label(tick, step), fill=COLORS["axis"], font=font, anchor="mt")
        tick += step


def _tick_step(duration: float, pixels: int) -> float:
    """A 1-2-5 step giving ticks at least 70 px apart."""
    most = max(1, pixels // 70)
    raw = duration / most
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _seconds_label(seconds: float, step: float) -> str:
    if seconds >= 60 and step >= 1:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    decimals = 0 if step >= 1 else 1 if step >= 0.1 else 2
    return f"{seconds:.{decimals}f} s"


def _font(size: int) -> Any:
    font_mod = require("PIL.ImageFont", extra="plot", package="pillow")
    try:
        return font_mod.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return font_mod.load_default()
