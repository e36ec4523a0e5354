"""Audio pushed from outside as a capture device: a remote client's PCM fed into a micrec session.

One backend for every front end whose microphone is somewhere else: the browser socket of
``micrec serve`` (:mod:`micrec.web.handler`) and the Flet client's stream
(:mod:`micrec.flet`). The front end owns the connection; it hands every chunk of PCM16 to
:meth:`PushedStream.feed`, and reports a broken connection with :meth:`PushedStream.fail`.
The stream re-blocks the client's small chunks into the pipeline's block size, so the
session's queue holds its usual seconds of audio however the client slices them, and it
enforces the take-length and real-time limits (:class:`PushLimits`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DeviceError, DeviceNotFoundError
from ..types import InputDevice

if TYPE_CHECKING:
    from .base import BlockSink, StreamSpec

__all__ = ["BLOCK_MS", "DEVICE_ID", "FloodPacer", "LimitError", "PushLimits", "PushedBackend", "PushedStream"]

#: The only device a pushed backend has (by default).
DEVICE_ID = "browser"
#: Block length handed to the pipeline. Longer than a local device's 20 ms because every block
#: wakes the take's worker thread: with many takes in one process, 50 ms blocks cost about 40 %
#: less server CPU than 20 ms ones (``python -m benchmarks web-load``), for a level meter that
#: is no slower than the page's 10 updates a second.
BLOCK_MS = 50

#: What a limit breach raises: ``error(message, value=..., name=...)``.
LimitError = Callable[..., BaseException]


@dataclass(frozen=True)
class PushLimits:
    """What a pushed take may use (front ends map their own limits onto it).

    Attributes
    ----------
    max_take_seconds : float
        Longest take (recorded time, pauses excluded); what fits is recorded, then the take ends.
    burst_seconds : float
        How far ahead of real time a client may get (network bunching); more is a flood.
    """

    max_take_seconds: float = 3600.0
    burst_seconds: float = 3.0


class FloodPacer:
    """The flood rule: a client may be at most ``burst_seconds`` ahead of the audio due.

    Audio is *due* while the take records with a connection: the clock stops while the take is
    paused or its connection is down. A client that reconnects owes its *backlog* (what it
    captured while the server was not receiving); :meth:`grant` allows exactly that many frames
    past the limit, no more. The client says how large its backlog is; :meth:`bounded_backlog`
    caps the claim at what real time allowed it to capture.

    Parameters
    ----------
    rate : int
        Sample frames per second the client sends.
    burst_seconds : float
        How far ahead of the audio due a client may get (network bunching).
    clock : callable
        Monotonic seconds.
    limit_error : callable
        What a flood raises (the front end's own error; default :class:`micrec.DeviceError`).
    """

    def __init__(self, rate: int, burst_seconds: float, clock: Callable[[], float] = time.monotonic,
                 limit_error: LimitError = DeviceError) -> None:
        self.rate = rate
        self.burst_seconds = burst_seconds
        self._clock = clock
        self._limit_error = limit_error
        self._due = 0.0
        self._since: float | None = None
        self._stopped_at: float | None = None
        self._started = False
        self.allowance = 0

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> None:
        """Audio is due from now (recording with a connection)."""
        if self._since is None:
            self._since = self._clock()
            self._started = True

    def stop(self) -> None:
        """No audio is due from now (paused, or the connection is down)."""
        if self._since is not None:
            now = self._clock()
            self._due += now - self._since
            self._since = None
            self._stopped_at = now

    def due_seconds(self) -> float:
        """Seconds of audio due so far."""
        return self._due + (0.0 if self._since is None else self._clock() - self._since)

    def ahead_seconds(self, received: int) -> float:
        """How far ``received`` frames, less the granted backlog, are ahead of the audio due."""
        return (received - self.allowance - round(self.due_seconds() * self.rate)) / self.rate

    def check(self, received: int) -> None:
        """Raise when ``received`` frames (the take's total) are a flood.

        Raises
        ------
        Exception
            The ``limit_error``: more than ``burst_seconds`` ahead of the audio due plus the granted backlog.
        """
        if not self._started:  # before the take started, nothing is due and nothing was sent
            return
        ahead = self.ahead_seconds(received)
        if ahead > self.burst_seconds:
            raise self._limit_error(
                f"client sends audio {ahead:.1f} s ahead of real time (limit {self.burst_seconds:g} s): "
                "a capture is paced by its clock", value=round(ahead, 1), name="rate")

    def bounded_backlog(self, received: int, sent: int, away_seconds: float) -> int:
        """The backlog a client may claim: ``sent - received``, capped by real time.

        ``away_seconds`` is how long no audio was due (the connection was down). The client
        cannot have captured more than that, plus what it was behind when it went.
        """
        behind = max(0.0, self.due_seconds() - (received - self.allowance) / self.rate)
        cap = int((away_seconds + behind + self.burst_seconds) * self.rate)
        return max(0, min(sent - received, cap))

    def grant(self, received: int, backlog: int) -> None:
        """Let a reconnecting client that owes ``backlog`` frames send them past the limit.

        From now on the client may send the backlog plus ``burst_seconds`` at once (it holds
        ``received`` frames already), and then what real time adds: exactly the backlog more
        than the rule allows a client that never dropped.
        """
        self.allowance = received + max(0, backlog) - round(self.due_seconds() * self.rate)

    def away_seconds(self) -> float:
        """Seconds since the clock last stopped (0 while it runs)."""
        return 0.0 if self._stopped_at is None or self._since is not None else self._clock() - self._stopped_at


class PushedBackend:
    """A capture backend whose one device is a remote client's microphone, pushed to us.

    Parameters
    ----------
    rate, channels : int
        The format the client sends (1 or 2 channels at its own rate). The recorder
        resamples and remixes to its own ``sample_rate``/``channels_num``.
    limits : PushLimits, optional
        Take length and real-time limits (default :class:`PushLimits()`).
    clock : callable, optional
        Monotonic seconds, for the real-time check (tests may pass their own).
    block_ms : int
        Length of the blocks handed to the pipeline (default :data:`BLOCK_MS`).
    limit_error : callable, optional
        The exception class (or factory) raised for a breached limit; the front end's own
        (``micrec serve`` closes its socket with the code the error carries). Default
        :class:`micrec.DeviceError`.
    device_id, label : str
        The one device's id and label.
    """

    name = "pushed"

    def __init__(self, rate: int, channels: int, limits: PushLimits | None = None, *,
                 clock: Callable[[], float] = time.monotonic, block_ms: int = BLOCK_MS,
                 limit_error: LimitError = DeviceError, device_id: str = DEVICE_ID,
                 label: str = "Browser microphone") -> None:
        self.rate = rate
        self.channels = channels
        self.limits = limits or PushLimits()
        self.clock = clock
        self.block_ms = block_ms
        self.limit_error = limit_error
        self.device_id = device_id
        self.label = label
        self.stream: PushedStream | None = None

    def list_devices(self) -> list[InputDevice]:
        return [InputDevice(self.device_id, self.label, True, self.name)]

    def can_capture(self, device: str | None) -> bool:
        return device in (None, self.device_id) and self.stream is None

    def open(self, spec: StreamSpec, sink: BlockSink) -> PushedStream:
        if spec.device not in (None, self.device_id):
            raise DeviceNotFoundError(f"no capture device {spec.device!r}; a pushed stream has only "
                                      f"{self.device_id!r}", value=spec.device, name="device")
        self.stream = PushedStream(self, sink)
        return self.stream


class PushedStream:
    """The open stream of a :class:`PushedBackend`; fed by the front end that owns the connection.

    Attributes
    ----------
    received_frames : int
        Sample frames received, paused ones included.
    recorded_frames : int
        Sample frames handed to the recorder (received while not paused).
    pacer : FloodPacer
        The flood rule (``limits.burst_seconds``); its clock runs from :meth:`start` while
        audio is due (a front end that knows when none is, paused or disconnected, stops it).
    """

    def __init__(self, backend: PushedBackend, sink: BlockSink) -> None:
        self.rate = backend.rate
        self.channels = backend.channels
        self._sink = sink
        self._limits = backend.limits
        self._limit_error = backend.limit_error
        self._block_bytes = max(1, self.rate * backend.block_ms // 1000) * 2 * self.channels
        self._max_frames = int(self._limits.max_take_seconds * self.rate)
        self.pacer = FloodPacer(self.rate, self._limits.burst_seconds, backend.clock, backend.limit_error)
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
        """Take one checked chunk of ``frames`` sample frames of interleaved PCM16.

        Raises
        ------
        Exception
            The backend's ``limit_error``:
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
            raise self._limit_error(
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
