"""Format conversion between what a device delivers and what the encoder takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import require

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Block = npt.NDArray[np.int16]

__all__ = ["ChannelMixer", "Resampler", "build_converter"]


class ChannelMixer:
    """Mono to stereo (duplicate) or stereo/multichannel to mono (mean) or to stereo (first two)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        self.channels_in = channels_in
        self.channels_out = channels_out

    def process(self, block: Block) -> Block:
        import numpy as np

        if self.channels_out == 1:
            mixed = block.astype(np.int32).sum(axis=1) // self.channels_in
            return mixed.astype(np.int16).reshape(-1, 1)
        if self.channels_in == 1:
            return np.repeat(block, self.channels_out, axis=1)
        return np.ascontiguousarray(block[:, : self.channels_out])

    def flush(self) -> Block:
        import numpy as np

        return np.zeros((0, self.channels_out), dtype=np.int16)


class Resampler:
    """Streaming sample-rate conversion with libsoxr (VHQ), int16 in and out."""

    def __init__(self, rate_in: int, rate_out: int, channels: int) -> None:
        soxr: Any = require("soxr", extra="core", package="soxr")
        self.channels = channels
        self._stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="int16", quality="HQ")

    def process(self, block: Block) -> Block:
        out = self._stream.resample_chunk(block)
        return out.reshape(-1, self.channels)

    def flush(self) -> Block:
        import numpy as np

        out = self._stream.resample_chunk(np.zeros((0, self.channels), dtype=np.int16), last=True)
        return out.reshape(-1, self.channels)


def build_converter(rate_in: int, channels_in: int, rate_out: int, channels_out: int) -> list[Any]:
    """The stages that turn the device's format into the encoder's (none when they match)."""
    # Resample at the smaller channel count: less work, and duplicated channels stay identical.
    mixer = [ChannelMixer(channels_in, channels_out)] if channels_in != channels_out else []
    resampler = ([Resampler(rate_in, rate_out, min(channels_in, channels_out))]
                 if rate_in != rate_out else [])
    stages: list[Any] = mixer + resampler if channels_out < channels_in else resampler + mixer
    return stages
