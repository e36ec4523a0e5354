"""AMR-WB through VisualOn's encoder (ctypes, Debian ``libvo-amrwbenc0``), muxed by PyAV.

No PyAV wheel carries an AMR-WB encoder. Frames from :mod:`._vo_amrwbenc` are already in the
storage format, so FFmpeg's ``amr`` muxer writes ``#!AMR-WB\\n`` files (.amr, .awb) and its
3GP muxer fragmented 3GP. AMR-WB is 16 kHz mono; the mode is the highest one whose bit rate
does not exceed ``bit_rate`` (23.85 kbit/s at the default 128000).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, ClassVar

from ..types import AudioEncoder
from ._av import UnitEncoder, av_module, av_unavailable_reason
from ._vo_amrwbenc import FRAME_SAMPLES, MODES, AmrWbCodec, amrwb_unavailable_reason
from .amrnb import highest_mode

if TYPE_CHECKING:
    from .base import Block

_STORAGE_MAGIC = b"#!AMR-WB\n"


class AmrWbEncoder(UnitEncoder[AmrWbCodec]):
    """AMR-WB, 16 kHz mono, in the AMR-WB storage format (.amr, .awb) or 3GP."""

    codec: ClassVar[AudioEncoder] = AudioEncoder.AMRWB
    extensions: ClassVar[tuple[str, ...]] = (".amr", ".awb", ".3gp")
    muxers: ClassVar[dict[str, str]] = {".amr": "amr", ".awb": "amr", ".3gp": "3gp"}
    rates: ClassVar[tuple[int, ...]] = (16000,)
    channel_counts: ClassVar[tuple[int, ...]] = (1,)
    seek_granularity: ClassVar[str] = "20 ms AMR-WB frame"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return amrwb_unavailable_reason() or av_unavailable_reason()

    def _open_codec(self) -> AmrWbCodec:
        import numpy as np

        self._pending = np.zeros(0, dtype=np.int16)  # samples short of a whole frame
        return AmrWbCodec(highest_mode(self.bit_rate, MODES))

    def _stream_template(self) -> tuple[Any, Any]:
        # A one-frame AMR-WB file in memory: the demuxer fills in the codec parameters.
        import numpy as np

        probe = AmrWbCodec(0)
        try:
            frame = probe.encode_frame(np.zeros(FRAME_SAMPLES, dtype=np.int16))
        finally:
            probe.close()
        owner = av_module().open(io.BytesIO(_STORAGE_MAGIC + frame), "r", format="amr")
        return owner.streams.audio[0], owner

    def _encode_units(self, block: Block) -> list[bytes]:
        import numpy as np

        samples = block.reshape(-1)
        if len(self._pending):
            samples = np.concatenate([self._pending, samples])
        whole = len(samples) - len(samples) % FRAME_SAMPLES
        encode = self._state.encode_frame
        units = [encode(samples[i:i + FRAME_SAMPLES]) for i in range(0, whole, FRAME_SAMPLES)]
        self._pending = samples[whole:].copy()
        return units

    def _drain_units(self) -> list[bytes]:
        import numpy as np

        if not len(self._pending):
            return []
        # The last partial frame is padded with silence rather than lost.
        last = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        last[: len(self._pending)] = self._pending
        self._pending = last[:0]
        return [self._state.encode_frame(last)]

    @property
    def _frame_size(self) -> int:
        return FRAME_SAMPLES
