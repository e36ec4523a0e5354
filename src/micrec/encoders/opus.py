"""Opus through libopus (PyAV), in Ogg (.ogg/.opus) or WebM.

Opus runs at 8, 12, 16, 24 or 48 kHz only; the pipeline records at the nearest of them.
Constrained VBR keeps the bit rate close to ``bit_rate`` whatever the signal. Complexity 6
(of 0-10) halves libopus's CPU time against its default of 10 (0.0056 against 0.0116 CPU
seconds per second at 48 kHz stereo, 128 kbit/s, measured here), at a small cost in quality.

FFmpeg reads neither an Ogg nor a WebM file whose headers no audio follows yet, so until the
muxer writes its first page or cluster the file ends with one that holds no audio (see
``_emptystream``): the file is readable, and empty, from the start.
"""

from __future__ import annotations

import os
from typing import ClassVar

from ..types import AudioEncoder
from ._av import AvCodecEncoder
from ._emptystream import close_empty_matroska, matroska_empty_cluster, ogg_opus_empty_page

#: libopus's range of bit rates per channel, bits/s.
_MIN_BIT_RATE, _MAX_BIT_RATE_PER_CHANNEL = 6000, 256000


class OpusEncoder(AvCodecEncoder):
    """Opus in Ogg (.ogg, .opus) or WebM; see :class:`~micrec.encoders.Encoder`."""

    codec: ClassVar[AudioEncoder] = AudioEncoder.OPUS
    extensions: ClassVar[tuple[str, ...]] = (".ogg", ".opus", ".webm")
    muxers: ClassVar[dict[str, str]] = {".ogg": "ogg", ".opus": "opus", ".webm": "webm"}
    rates: ClassVar[tuple[int, ...]] = (8000, 12000, 16000, 24000, 48000)
    seek_granularity: ClassVar[str] = "20 ms Opus frame"
    av_codec: ClassVar[str] = "libopus"

    def _codec_options(self) -> dict[str, str]:
        return {"vbr": "constrained", "application": "audio", "compression_level": "6"}

    def _codec_bit_rate(self) -> int:
        return max(_MIN_BIT_RATE, min(self.bit_rate, _MAX_BIT_RATE_PER_CHANNEL * self.channels))

    def _placeholder(self, header: bytes) -> bytes:
        return matroska_empty_cluster() if self._muxer == "webm" else ogg_opus_empty_page(header)

    def _close_empty(self, path: os.PathLike[str]) -> None:
        if self._muxer == "webm":
            close_empty_matroska(path)
