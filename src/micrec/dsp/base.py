"""The block-processor interface of the DSP stage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Processor"]


class Processor(Protocol):
    """Transforms int16 blocks shaped (frames, channels); may return fewer or more frames."""

    def process(self, block: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]: ...

    def flush(self) -> npt.NDArray[np.int16]:
        """Whatever is still held back at the end of the stream (may be empty)."""
        ...


# A processor may also define ``start()`` (called on the session's opening thread just before
# capture starts, e.g. to open an echo reference stream) and ``close()`` (called on the worker
# after the last block, also after a fault). Both are optional.
