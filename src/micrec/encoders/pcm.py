"""PCM16BITS: raw interleaved s16le, no header, any extension (``.pcm`` suggested)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, ClassVar

from ..errors import OutputError
from ..types import AudioEncoder
from .base import Encoder

if TYPE_CHECKING:
    from .base import Block


class Pcm16Encoder(Encoder):
    codec: ClassVar[AudioEncoder] = AudioEncoder.PCM16BITS
    extensions: ClassVar[tuple[str, ...]] = (".pcm", ".raw")
    any_extension: ClassVar[bool] = True

    def __init__(self, path: str, rate: int, channels: int, bit_rate: int) -> None:
        super().__init__(path, rate, channels, bit_rate)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
        except OSError as exc:
            raise OutputError(f"cannot create {path}: {exc.strerror}", path=path) from exc
        self._frame_bytes = 2 * channels

    def write(self, block: Block) -> None:
        data = block if sys.byteorder == "little" else block.byteswap()
        view = memoryview(data.tobytes())
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            raise self._wrap_write_error(exc) from exc
        self.frames_written += len(block)

    def seek(self, frame: int) -> int:
        frame = max(0, min(frame, self.frames_written))
        offset = frame * self._frame_bytes
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)
        self.frames_written = frame
        return frame

    def _finalize(self) -> None:
        os.close(self._fd)
