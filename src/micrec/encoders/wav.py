"""WAV: PCM s16le in RIFF/WAVE, RF64 past 4 GiB, through libsndfile.

The file is opened as RF64 with libsndfile's auto-downgrade, so a take under 4 GiB is closed
as plain RIFF/WAVE and a longer one stays RF64. The header is written at once (an empty
RIFF/WAVE file: libsndfile's first header is RF64 with the sizes unset, -1, which readers
refuse) and brought up to date by ``flush()``, which the session calls every 0.25 s of audio or
of wall time, so a killed process leaves a file whose header covers the audio to within half a
second of the kill (rewriting it after every block costs three system calls a block).
"""

from __future__ import annotations

from typing import ClassVar

from ..types import AudioEncoder
from ._sndfile import SFC_RF64_AUTO_DOWNGRADE, SFC_UPDATE_HEADER_NOW, SndfileEncoder, sf_command


class WavEncoder(SndfileEncoder):
    codec: ClassVar[AudioEncoder] = AudioEncoder.WAV
    extensions: ClassVar[tuple[str, ...]] = (".wav", ".wave", ".rf64")

    format_name: ClassVar[str] = "RF64"

    def __init__(self, path: str, rate: int, channels: int, bit_rate: int) -> None:
        super().__init__(path, rate, channels, bit_rate)
        sf_command(self._file, SFC_RF64_AUTO_DOWNGRADE, 1)
        self._header_frames = -1
        self.flush()

    def flush(self) -> None:
        if self._header_frames != self.frames_written:
            self._command(SFC_UPDATE_HEADER_NOW, 0, "update the header of")
            self._header_frames = self.frames_written

    def seek(self, frame: int) -> int:
        frame = max(0, min(frame, self.frames_written))
        self._file.seek(frame)
        self._file.truncate(frame)
        self.frames_written = frame
        return frame
