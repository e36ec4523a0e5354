"""HE-AAC and AAC-ELD through the Fraunhofer FDK AAC library, muxed by PyAV.

FFmpeg's own AAC encoder makes AAC-LC only, and the FDK library is not in PyAV's wheels: it
is bound with ctypes (:mod:`._fdkaac`, Debian non-free ``libfdk-aac2``). Its raw access units
go into fragmented MP4 with the AudioSpecificConfig as the stream's extradata (explicit
signalling, so readers see HE-AAC or ELD from the header), or for HE-AAC also into ADTS (with
implicit signalling: ADTS can only name the AAC-LC core, decoders find the SBR data).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, ClassVar

from ..types import AudioEncoder
from ._av import UnitEncoder, av_module, av_unavailable_reason
from ._fdkaac import (
    AOT_ER_AAC_ELD,
    AOT_SBR,
    SIGNALING_EXPLICIT,
    SIGNALING_IMPLICIT,
    FdkAacEncoder,
    fdk_unavailable_reason,
)
from .aac import AAC_MUXERS

if TYPE_CHECKING:
    from .base import Block


class _FdkEncoder(UnitEncoder[FdkAacEncoder]):
    """An FDK AAC encoder for one audio object type (:attr:`aot`)."""

    aot: ClassVar[int]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return fdk_unavailable_reason() or av_unavailable_reason()

    def _open_codec(self) -> FdkAacEncoder:
        signaling = SIGNALING_IMPLICIT if self._muxer == "adts" else SIGNALING_EXPLICIT
        codec = FdkAacEncoder(self.aot, self.rate, self.channels, self.bit_rate, signaling)
        self._codec_delay = codec.delay
        self._extradata = codec.config
        return codec

    def _stream_template(self) -> tuple[Any, Any]:
        # An AAC stream that is never opened: it only lends its codec parameters.
        owner = av_module().open(io.BytesIO(), "w", format="mp4")
        layout = "stereo" if self.channels == 2 else "mono"
        return owner.add_stream("aac", rate=self.rate, layout=layout), owner

    def _encode_units(self, block: Block) -> list[bytes]:
        return self._state.encode(block)

    def _drain_units(self) -> list[bytes]:
        return self._state.drain()

    @property
    def _frame_size(self) -> int:
        return self._state.frame_length


class AacHeEncoder(_FdkEncoder):
    """HE-AAC (AAC-LC core + SBR) in fragmented MP4 (.m4a, .mp4) or ADTS (.aac)."""

    codec: ClassVar[AudioEncoder] = AudioEncoder.AACHE
    extensions: ClassVar[tuple[str, ...]] = (".m4a", ".mp4", ".aac")
    muxers: ClassVar[dict[str, str]] = AAC_MUXERS
    # SBR doubles a core of 8..24 kHz: the output must be 16..48 kHz.
    rates: ClassVar[tuple[int, ...]] = (16000, 22050, 24000, 32000, 44100, 48000)
    seek_granularity: ClassVar[str] = "2048-sample HE-AAC frame"
    aot: ClassVar[int] = AOT_SBR


class AacEldEncoder(_FdkEncoder):
    """AAC-ELD (low delay, 512-sample frames) in fragmented MP4 (.m4a, .mp4)."""

    codec: ClassVar[AudioEncoder] = AudioEncoder.AACELD
    extensions: ClassVar[tuple[str, ...]] = (".m4a", ".mp4")
    muxers: ClassVar[dict[str, str]] = {".m4a": "ipod", ".mp4": "mp4"}
    # FDK also makes ELD at 8..16 kHz, but FFmpeg (5.1 and 8.1) fails to decode those files.
    rates: ClassVar[tuple[int, ...]] = (22050, 24000, 32000, 44100, 48000)
    seek_granularity: ClassVar[str] = "512-sample AAC-ELD frame"
    aot: ClassVar[int] = AOT_ER_AAC_ELD
