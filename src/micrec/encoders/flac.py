"""FLAC through libsndfile, streamed: every full FLAC frame is on disk as soon as it is encoded.

The header (``fLaC``, STREAMINFO, a VORBIS_COMMENT) is written at once, so the file is a
valid, empty FLAC file from the start (libsndfile writes it only with the first samples).
At every flush (0.25 s of audio or of wall time) the samples libFLAC still holds (less than a
4096-sample block) are appended as one provisional verbatim frame (:mod:`._flacframe`), and
STREAMINFO's total-samples field is brought up to date, so that a killed process leaves a file
that libsndfile (which trusts that field) and ffmpeg both read, bit-exact, up to the last
flush. Before libFLAC writes on, the provisional frame is cut off again (its frames replace it).
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, ClassVar

from ..types import AudioEncoder
from ._flacframe import verbatim_frame
from ._sndfile import SFC_UPDATE_HEADER_NOW, SndfileEncoder, open_for_writing, sf_command, soundfile_module

if TYPE_CHECKING:
    from .base import Block

# STREAMINFO follows the 4-byte "fLaC" marker and a 4-byte block header. Its bytes 10..17
# hold rate (20 bits), channels-1 (3), bits-1 (5) and total samples (36).
_BLOCKSIZE_OFFSET = 8
_TOTAL_WORD_OFFSET = 18
_TOTAL_MASK = (1 << 36) - 1


class FlacEncoder(SndfileEncoder):
    codec: ClassVar[AudioEncoder] = AudioEncoder.FLAC
    extensions: ClassVar[tuple[str, ...]] = (".flac",)
    rates: ClassVar[tuple[int, ...]] = ()

    format_name: ClassVar[str] = "FLAC"

    def __init__(self, path: str, rate: int, channels: int, bit_rate: int) -> None:
        import numpy as np

        super().__init__(path, rate, channels, bit_rate)
        sf_command(self._file, SFC_UPDATE_HEADER_NOW, 0)
        self._blocksize = self._read_blocksize()
        self._reported_total = 0
        self._on_disk = 0  # samples in libFLAC's frames in the file
        self._recent: Block = np.zeros((0, channels), dtype=np.int16)  # the samples libFLAC may hold
        self._tail_at: int | None = None  # where the provisional frame starts, while there is one

    def write(self, block: Block) -> None:
        if self._tail_at is not None:
            self._drop_tail()
        super().write(block)
        self._recent = _last(self._recent, block, self._blocksize)

    def flush(self) -> None:
        """Bring STREAMINFO's length up to date, with the samples libFLAC holds as a last frame."""
        if self._blocksize == 0:
            return
        # libFLAC encodes a frame once it holds one sample more than the frame (it looks ahead).
        self._on_disk = max(0, self.frames_written - 1) // self._blocksize * self._blocksize
        held = self.frames_written - self._on_disk
        try:
            if held and self._tail_at is None:
                self._write_tail(held)
            elif not held:
                self._report_total(self._on_disk)
        except OSError as exc:
            raise self._wrap_write_error(exc, "update the header of") from exc

    def _write_tail(self, held: int) -> None:
        # libsndfile appends: its next frame starts at the file's end, where the tail goes.
        frame = verbatim_frame(self._recent[-held:], self._on_disk // self._blocksize, self.rate)
        fd = os.open(self.path, os.O_RDWR)
        try:
            at = os.fstat(fd).st_size
            os.pwrite(fd, frame, at)
        finally:
            os.close(fd)
        self._tail_at = at
        self._report_total(self.frames_written)

    def _drop_tail(self) -> None:
        """Remove the provisional frame before libFLAC writes (its own frames replace it)."""
        assert self._tail_at is not None
        try:
            self._report_total(self._on_disk)
            os.truncate(self.path, self._tail_at)
        except OSError as exc:
            raise self._wrap_write_error(exc) from exc
        self._tail_at = None

    def _report_total(self, total: int) -> None:
        if total != self._reported_total:
            self._patch_total_samples(total)
            self._reported_total = total

    def _finalize(self) -> None:
        if self._tail_at is not None:
            self._drop_tail()
        super()._finalize()

    def seek(self, frame: int) -> int:
        # libsndfile cannot rewind a FLAC writer: the prefix is decoded and written afresh,
        # which keeps the cut sample-exact and the samples bit-exact.
        sf = soundfile_module()
        frame = max(0, min(frame, self.frames_written))
        if self._tail_at is not None:
            self._drop_tail()
        self._file.close()
        self._recent = self._recent[:0]
        scratch = self.path.with_name(self.path.name + ".micrec-seek")
        fresh = open_for_writing(scratch, self.rate, self.channels, "FLAC")
        sf_command(fresh, SFC_UPDATE_HEADER_NOW, 0)
        try:
            with sf.SoundFile(os.fspath(self.path)) as old:
                for chunk in old.blocks(blocksize=1 << 16, frames=frame, dtype="int16", always_2d=True):
                    fresh.write(chunk)
                    self._recent = _last(self._recent, chunk, self._blocksize)
            os.replace(scratch, self.path)
        except BaseException:
            fresh.close()
            scratch.unlink(missing_ok=True)
            raise
        self._file = fresh
        self.frames_written = frame
        self._reported_total = 0
        return frame

    def _read_blocksize(self) -> int:
        with open(self.path, "rb") as f:
            head = f.read(_BLOCKSIZE_OFFSET + 4)
        if len(head) < _BLOCKSIZE_OFFSET + 4 or head[:4] != b"fLaC":
            return 0
        return int(struct.unpack(">H", head[_BLOCKSIZE_OFFSET:_BLOCKSIZE_OFFSET + 2])[0])

    def _patch_total_samples(self, total: int) -> None:
        fd = os.open(self.path, os.O_RDWR)
        try:
            word = struct.unpack(">Q", os.pread(fd, 8, _TOTAL_WORD_OFFSET))[0]
            word = (word & ~_TOTAL_MASK) | (total & _TOTAL_MASK)
            os.pwrite(fd, struct.pack(">Q", word), _TOTAL_WORD_OFFSET)
        finally:
            os.close(fd)


def _last(recent: Block, block: Block, count: int) -> Block:
    """The last ``count`` frames of ``recent`` followed by ``block``."""
    import numpy as np

    if len(block) >= count:
        return block[len(block) - count:].copy()
    return np.concatenate((recent[len(recent) + len(block) - count:] if len(recent) + len(block) > count
                           else recent, block))
