"""FLAC through libsndfile, streamed: every full FLAC frame is on disk as soon as it is encoded.

While recording, the STREAMINFO's total-samples field is brought up to date about once a
second, so that a killed process leaves a file that libsndfile (which trusts that field) and
ffmpeg both read to within a FLAC frame of the last update.
"""

from __future__ import annotations

import os
import struct
from typing import ClassVar

from ..types import AudioEncoder
from ._sndfile import SndfileEncoder, open_for_writing, soundfile_module

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
        super().__init__(path, rate, channels, bit_rate)
        self._blocksize = 0
        self._reported_total = 0

    def flush(self) -> None:
        if self._blocksize == 0:
            self._blocksize = self._read_blocksize()
            if self._blocksize == 0:
                return
        on_disk = self.frames_written // self._blocksize * self._blocksize
        if on_disk != self._reported_total:
            self._patch_total_samples(on_disk)
            self._reported_total = on_disk

    def seek(self, frame: int) -> int:
        # libsndfile cannot rewind a FLAC writer: the prefix is decoded and written afresh,
        # which keeps the cut sample-exact and the samples bit-exact.
        sf = soundfile_module()
        frame = max(0, min(frame, self.frames_written))
        self._file.close()
        scratch = self.path.with_name(self.path.name + ".micrec-seek")
        fresh = open_for_writing(scratch, self.rate, self.channels, "FLAC")
        try:
            with sf.SoundFile(os.fspath(self.path)) as old:
                for chunk in old.blocks(blocksize=1 << 16, frames=frame, dtype="int16", always_2d=True):
                    fresh.write(chunk)
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
