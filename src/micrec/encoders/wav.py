"""WAV: PCM s16le in RIFF/WAVE, RF64 past 4 GiB, through libsndfile.

The file is opened as RF64 with libsndfile's auto-downgrade, so a take under 4 GiB is closed
as plain RIFF/WAVE and a longer one stays RF64. The header is brought up to date by
``flush()``, which the session calls every 0.5 s, so a killed process leaves a file whose header
covers the audio to within half a second of the kill (rewriting it after every block costs three
system calls a block).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..types import AudioEncoder
from ._sndfile import (
    SFC_RF64_AUTO_DOWNGRADE,
    SFC_UPDATE_HEADER_NOW,
    open_for_writing,
    sf_command,
    sndfile_unavailable_reason,
)
from .base import Encoder

if TYPE_CHECKING:
    from .base import Block


class WavEncoder(Encoder):
    codec: ClassVar[AudioEncoder] = AudioEncoder.WAV
    extensions: ClassVar[tuple[str, ...]] = (".wav", ".wave", ".rf64")

    def __init__(self, path: str, rate: int, channels: int, bit_rate: int) -> None:
        super().__init__(path, rate, channels, bit_rate)
        self._file = open_for_writing(path, rate, channels, "RF64")
        sf_command(self._file, SFC_RF64_AUTO_DOWNGRADE, 1)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return sndfile_unavailable_reason("RF64")

    def write(self, block: Block) -> None:
        try:
            self._file.write(block)
        except Exception as exc:
            raise self._wrap_write_error(exc) from exc
        self.frames_written += len(block)

    def flush(self) -> None:
        sf_command(self._file, SFC_UPDATE_HEADER_NOW, 0)

    def seek(self, frame: int) -> int:
        frame = max(0, min(frame, self.frames_written))
        self._file.seek(frame)
        self._file.truncate(frame)
        self.frames_written = frame
        return frame

    def _finalize(self) -> None:
        self._file.close()
