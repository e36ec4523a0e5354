"""One take written as a series of files of a set length: ``take-0001.wav``, ``take-0002.wav``, …

:class:`SegmentedEncoder` implements the :class:`~micrec.encoders.Encoder` interface over a
series of encoders of one class. A block that crosses a segment's end is split at the exact
frame, the full segment is finalized at once (a crash loses only the open segment's latest
flush interval) and the next one is opened, so no sample is lost or repeated at a join: the
lossless segments put end to end are the take. What a join costs the lossy codecs (priming and
padding of each file) is measured in docs/segments.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import InvalidConfigError, OutputError
from ..types import AudioEncoder
from .base import Encoder

if TYPE_CHECKING:
    from collections.abc import Callable

    from .base import Block

__all__ = ["SegmentedEncoder", "segment_path"]


def segment_path(path: str | os.PathLike[str], number: int) -> Path:
    """The file of segment ``number`` (from 1) of a take to ``path``: ``{stem}-{number:04d}{suffix}``."""
    p = Path(path)
    return p.with_name(f"{p.stem}-{number:04d}{p.suffix}")


class SegmentedEncoder(Encoder):
    """Writes a take as segments of ``segment_frames`` frames each (the last one shorter).

    Parameters
    ----------
    open_segment : callable
        ``open_segment(path)`` opens the encoder of one segment (all of one class, rate and
        channel count).
    path : path-like
        The take's path; the segments are named by :func:`segment_path`.
    rate, channels, bit_rate : int
        As for every encoder.
    segment_frames : int
        Frames per segment.

    Notes
    -----
    ``path`` is the open segment's file, ``segment_paths`` every segment's so far (a segment
    is opened when its first frame arrives, so an empty take has one empty segment), and
    ``frames_written`` counts the whole take. :meth:`seek` cuts within the open segment; a
    position before its start raises :class:`~micrec.InvalidConfigError` (the earlier segments
    are finalized files).
    """

    codec: ClassVar[AudioEncoder] = AudioEncoder.WAV  # set per instance from the first segment

    def __init__(self, open_segment: Callable[[Path], Encoder], path: str | os.PathLike[str], rate: int,
                 channels: int, bit_rate: int, segment_frames: int) -> None:
        if segment_frames <= 0:
            raise InvalidConfigError(f"segment length {segment_frames} frames must be positive",
                                     value=segment_frames, name="segment_seconds")
        super().__init__(path, rate, channels, bit_rate)
        self.take_path = Path(path)
        self.segment_frames = segment_frames
        self.segment_paths: list[Path] = []
        self._open_segment = open_segment
        self._segment_start = 0
        self._current = self._open_next()
        self.codec = self._current.codec  # type: ignore[misc]
        self.seek_granularity = self._current.seek_granularity  # type: ignore[misc]

    # -- the stream --------------------------------------------------------------------------
    def write(self, block: Block) -> None:
        while len(block):
            room = self._segment_start + self.segment_frames - self.frames_written
            if room == 0:
                self._start_next_segment()
                continue
            part = block[:room]
            self._current.write(part)
            self.frames_written += len(part)
            block = block[len(part):]

    def seek(self, frame: int) -> int:
        if frame < self._segment_start:
            raise InvalidConfigError(
                f"cannot seek to {frame * 1000 / self.rate:.0f} ms: the take is written in segments and "
                f"the open one ({self.path.name}) starts at {self._segment_start * 1000 / self.rate:.0f} ms; "
                "earlier segments are finished files", value=frame, name="position_milliseconds")
        kept = self._current.seek(frame - self._segment_start)
        self.frames_written = self._segment_start + kept
        return self.frames_written

    def flush(self) -> None:
        self._current.flush()

    def abort(self) -> None:
        """Close and delete every segment of the take."""
        self._current.abort()
        for path in self.segment_paths:
            path.unlink(missing_ok=True)

    def _finalize(self) -> None:
        self._current.close()

    # -- joins -------------------------------------------------------------------------------
    def _start_next_segment(self) -> None:
        self._current.close()
        self._segment_start = self.frames_written
        self._current = self._open_next()

    def _open_next(self) -> Encoder:
        path = segment_path(self.take_path, len(self.segment_paths) + 1)
        try:
            encoder = self._open_segment(path)
        except OSError as exc:
            raise OutputError(f"cannot create the segment {str(path)!r}: {exc}", path=path) from exc
        self.segment_paths.append(path)
        self.path = path
        return encoder
