"""The capture interface: what a backend gives the pipeline.

A backend lists devices and opens a :class:`CaptureStream` for a :class:`StreamSpec`. The
stream delivers blocks of interleaved int16 samples, shaped ``(frames, channels)``, to a
:class:`BlockSink` from its own thread or audio callback, each with the time its first frame
was captured where the backend knows it (``capture_time``, seconds on the
:func:`time.monotonic` clock, so that blocks of two streams can be paired). A backend does nothing else: no
resampling, no levels, no files. It may open the device at another rate or channel count
than asked (``stream.rate`` / ``stream.channels`` say which); the pipeline converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ..types import InputDevice

__all__ = ["BlockSink", "CaptureBackend", "CaptureStream", "ResizableStream", "StreamSpec"]


@dataclass(frozen=True)
class StreamSpec:
    """What the pipeline asks a backend to open.

    Attributes
    ----------
    device : str or None
        A device id from :meth:`CaptureBackend.list_devices`, or None for the default.
    rate, channels : int
        The wanted sample rate and channel count.
    block_frames : int
        The wanted block size in frames (a hint; backends may deliver other sizes).
    """

    device: str | None
    rate: int
    channels: int
    block_frames: int


class BlockSink(Protocol):
    """Where a stream delivers its blocks. Every method is cheap and never blocks (but see ``wait``)."""

    def push(self, block: npt.NDArray[np.int16], *, wait: bool = False,
             capture_time: float | None = None) -> None:
        """Hand over one block; the sink owns it afterwards (the caller must not reuse it).

        With ``wait=True`` (offline sources only) the call waits for room instead of counting
        an overflow. ``capture_time`` is when the block's first frame was captured, on the
        :func:`time.monotonic` clock (None: unknown). Consecutive blocks of a stream are placed
        end to end; a jump marks audio lost in between.
        """

    def overflow(self, frames: int = 0) -> None:
        """Report audio the device dropped before it reached the sink."""

    def fail(self, error: BaseException) -> None:
        """Report a fault that ends capture (device removed, server gone)."""


@runtime_checkable
class CaptureStream(Protocol):
    """An open capture stream. ``start`` begins delivery; ``close`` stops it and frees the device."""

    rate: int
    channels: int

    def start(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class ResizableStream(CaptureStream, Protocol):
    """A capture stream whose block size can change while it runs (optional for backends).

    The pipeline lengthens the blocks of a take that nobody reads levels or blocks from (fewer
    wake-ups) and shortens them again when someone does.
    """

    def set_block_frames(self, frames: int) -> None:
        """Deliver blocks of ``frames`` from the next one on (sooner, if that is shorter).

        Any thread; cheap; never blocks.
        """
        ...


@runtime_checkable
class CaptureBackend(Protocol):
    """A source of capture devices and streams (PulseAudio, PortAudio, the test backend, ...)."""

    name: str

    def list_devices(self) -> list[InputDevice]:
        """The capture devices present now, the default one marked."""
        ...

    def can_capture(self, device: str | None) -> bool:
        """Whether ``device`` (None: the default) can be opened now. Never raises."""
        ...

    def open(self, spec: StreamSpec, sink: BlockSink) -> CaptureStream:
        """Open a stream (not yet started). Raises DeviceNotFoundError for an unknown id."""
        ...
