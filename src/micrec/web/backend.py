"""A WebSocket as a capture device: the browser's PCM frames pushed into a micrec session.

The connection handler (:mod:`micrec.web.handler`) owns the socket; it hands every binary
frame to :meth:`SocketStream.feed`, and reports a broken connection with
:meth:`SocketStream.fail`. The stream re-blocks the client's small frames into the pipeline's
block size, so the session's queue holds its usual seconds of audio however the client slices
its frames, and it enforces the take-length and real-time limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DeviceNotFoundError
from ..types import InputDevice
from .errors import LimitExceededError
from .protocol import Limits
from .resume import FloodPacer

if TYPE_CHECKING:
    from ..backends.base import BlockSink, StreamSpec

__all__ = ["BLOCK_MS", "DEVICE_ID", "SocketBackend", "SocketStream"]

#: The only device a socket backend has.
DEVICE_ID = "browser"
#: Block length handed to the pipeline. Longer than a local device's 20 ms because every block
#: wakes the take's worker thread: with many takes in one process, 50 ms blocks cost about 40 %
#: less server CPU than 20 ms ones (benchmarks/web_load.py), for a level meter that is no
#: slower than the page's 10 updates a second.
BLOCK_MS = 50


class SocketBackend:
    """A capture backend whose one device is a browser's microphone on a WebSocket.

    Parameters
    ----------
    rate, channels : int
        The format the client sends (its AudioContext rate, 1 or 2 channels). The recorder
        resamples and remixes to its own ``sample_rate``/``channels_num``.
    limits : Limits, optional
        Take length and real-time limits (default :class:`Limits()`).
    clock : callable, optional
        Monotonic seconds, for the real-time check (tests may pass their own).
    block_ms : int
        Length of the blocks handed to the pipeline (default :data:`BLOCK_MS`).
    """

    name = "web"

    def __init__(self, rate: int, channels: int, limits: Limits | None = None, *,
                 clock: Callable[[], float] = time.monotonic, block_ms: int = BLOCK_MS) -> None:
        self.rate = rate
        self.channels = channels
        self.limits = limits or Limits()
        self.clock = clock
        self.block_ms = block_ms
        self.stream: SocketStream | None = None

    def list_devices(self) -> list[InputDevice]:
        return [InputDevice(DEVICE_ID, "Browser microphone", True, self.name)]

    def can_capture(self, device: str | None) -> bool:
        return device in (None, DEVICE_ID) and self.stream is None

    def open(self, spec: StreamSpec, sink: BlockSink) -> SocketStream:
        if spec.device not in (None, DEVICE_ID):
            raise DeviceNotFoundError(f"no capture device {spec.device!r}; a browser socket has only "
                                      f"{DEVICE_ID!r}", value=spec.device, name="device")
        self.stream = SocketStream(self, sink)
        return self.stream


class SocketStream:
    """The open stream of a :class:`SocketBackend`; fed by the connection handler.

    Attributes
    ----------
    received_frames : int
        Sample frames received, paused ones included.
    recorded_frames : int
        Sample frames handed to the recorder (received while not paused).
    pacer : FloodPacer
        The flood rule (``limits.burst_seconds``); its clock runs from :meth:`start` while
        audio is due (the handler stops it while paused or disconnected).
    """

    def __init__(self, backend: SocketBackend, sink: BlockSink) -> None:
        self.rate = backend.rate
        self.channels = backend.channels
        self._sink = sink
        self._limits = backend.limits
        self.pacer = FloodPacer(self.rate, self._limits.burst_seconds, backend.clock)
        self._block_bytes = max(1, self.rate * backend.block_ms // 1000) * 2 * self.channels
        self._max_frames = int(self._limits.max_take_seconds * self.rate)
        self._pending = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        self.paused = False
        self.received_frames = 0
        self.recorded_frames = 0

    def start(self) -> None:
        self.pacer.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._pending.clear()

    @property
    def recorded_ms(self) -> float:
        """Milliseconds of audio handed to the recorder."""
        return self.recorded_frames * 1000 / self.rate

    def feed(self, payload: bytes, frames: int) -> None:
        """Take one checked frame of ``frames`` sample frames (see ``protocol.split_frame``).

        Raises
        ------
        LimitExceededError
            The client is further ahead of real time than ``limits.burst_seconds``, or the take
            reached ``limits.max_take_seconds`` (what fits is recorded first).
        """
        self.received_frames += frames
        self.pacer.check(self.received_frames)
        if self.paused:
            return
        room = self._max_frames - self.recorded_frames
        if frames > room:
            self._record(payload[: room * 2 * self.channels], room)
            self.flush()
            raise LimitExceededError(
                f"take reached the limit of {self._limits.max_take_seconds:g} s; it was saved",
                value=self._limits.max_take_seconds, name="max_take_seconds")
        self._record(payload, frames)

    def flush(self) -> None:
        """Hand over the frames held back to fill a block (before a pause or stop)."""
        with self._lock:
            if self._closed or not self._pending:
                return
            block = self._to_block(self._pending)
            self._pending = bytearray()
        self._sink.push(block)

    def fail(self, error: BaseException) -> None:
        """End the take with ``error``: the session finalizes the file and reports it."""
        self.flush()
        self._sink.fail(error)

    def _record(self, payload: bytes, frames: int) -> None:
        self.recorded_frames += frames
        with self._lock:
            if self._closed:
                return
            self._pending += payload
            size = len(self._pending) - len(self._pending) % self._block_bytes
            if not size:
                return
            block = self._to_block(self._pending[:size])
            del self._pending[:size]
        self._sink.push(block)

    def _to_block(self, data: bytearray) -> Any:
        import numpy as np

        # A bytearray copy keeps the block writable for the pipeline's in-place stages.
        return np.frombuffer(bytearray(data), dtype="<i2").astype(np.int16, copy=False).reshape(
            -1, self.channels)
