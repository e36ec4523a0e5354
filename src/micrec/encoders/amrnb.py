"""AMR-NB through OpenCORE's encoder (PyAV's libopencore_amrnb), in .amr or 3GP.

AMR-NB is 8 kHz mono; the pipeline records at that rate. The mode is the highest one whose
bit rate does not exceed ``bit_rate`` (12.2 kbit/s at the default 128000).
"""

from __future__ import annotations

from typing import ClassVar

from ..types import AudioEncoder
from ._av import AvCodecEncoder

#: Bit rates of the eight AMR-NB modes, mode 0 first.
MODES = (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)


def highest_mode(bit_rate: int, modes: tuple[int, ...]) -> int:
    """Index of the highest mode of ``modes`` not above ``bit_rate`` (the lowest if none is)."""
    fitting = [i for i, rate in enumerate(modes) if rate <= bit_rate]
    return fitting[-1] if fitting else 0


class AmrNbEncoder(AvCodecEncoder):
    """AMR-NB, 8 kHz mono, in the AMR storage format (.amr) or 3GP."""

    codec: ClassVar[AudioEncoder] = AudioEncoder.AMRNB
    extensions: ClassVar[tuple[str, ...]] = (".amr", ".3gp")
    muxers: ClassVar[dict[str, str]] = {".amr": "amr", ".3gp": "3gp"}
    rates: ClassVar[tuple[int, ...]] = (8000,)
    channel_counts: ClassVar[tuple[int, ...]] = (1,)
    seek_granularity: ClassVar[str] = "20 ms AMR frame"
    av_codec: ClassVar[str] = "libopencore_amrnb"

    def _codec_options(self) -> dict[str, str]:
        return {"dtx": "0"}

    def _codec_bit_rate(self) -> int:
        return MODES[highest_mode(self.bit_rate, MODES)]
