"""micrec for asyncio programs: :class:`AsyncAudioRecorder`, awaitable and never blocking the loop.

The same recorder as :class:`micrec.AudioRecorder`, with the shape httpx gives its
``AsyncClient``: the same constructor and settings, the same method names, but each method that
may wait for a device or a file is a coroutine. The blocking work runs on a thread of the
recorder's own, one call at a time in the order the calls were made, so the event loop goes
on serving requests, bot messages or a UI while a file is finalized.

State changes are delivered **on the loop**: ``on_state_changed`` may be a plain function or a
coroutine function; it is called on the loop that made the latest call, one event at a time,
in order (a coroutine handler is awaited before the next event's handler runs).

Live blocks come through :meth:`AsyncAudioRecorder.aiter_blocks`, an async iterator with a
bounded queue: a consumer slower than the microphone loses the **oldest** blocks (counted in
:attr:`BlockStream.dropped`), the capture and the file never wait for it, and memory stays
bounded.

Examples
--------
>>> import asyncio
>>> from micrec.aio import AsyncAudioRecorder
>>> async def main() -> None:                                        # doctest: +SKIP
...     async with AsyncAudioRecorder(sample_rate=16000, channels_num=1) as rec:
...         await rec.start_recording("take.wav")
...         async for block in rec.aiter_blocks():                  # int16 (frames, channels)
...             await transcriber.feed(block)
>>> asyncio.run(main())                                              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .recorder import AudioRecorder
from .types import Amplitude, AudioEncoder, AudioRecorderState, AudioRecorderStateChangeEvent

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .backends import CaptureBackend
    from .session import Session

log = logging.getLogger("micrec")

__all__ = ["AsyncAudioRecorder", "BlockStream", "CallThread", "LoopDelivery"]

T = TypeVar("T")
StateHandler = Callable[[AudioRecorderStateChangeEvent], Any]

#: Blocks a :class:`BlockStream` keeps for a slow consumer by default (~5 s of 50 ms blocks).
DEFAULT_MAX_BLOCKS = 100
_EVENT_WAIT = 10.0  # s: how long a method's thread waits for the core to hand over its events


def _setting(name: str) -> property:
    def get(self: AsyncAudioRecorder) -> Any:
        return getattr(self.recorder, name)

    def set_(self: AsyncAudioRecorder, value: Any) -> None:
        setattr(self.recorder, name, value)

    return property(get, set_, doc=f"The recorder's ``{name}`` (see :class:`micrec.AudioRecorder`).")


class CallThread:
    """One thread that runs blocking calls one at a time, in the order they were made.

    :meth:`run` awaits a call from a coroutine without blocking the loop; :meth:`call` waits
    for one from a plain thread. ``after`` runs on the thread after every call, whatever its
    outcome (the recorders use it to hand their events over before the caller resumes). The
    thread starts on the first call.
    """

    def __init__(self, name: str, after: Callable[[], Any] | None = None) -> None:
        self._name = name
        self._after = after
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)``; TimeoutError after ``timeout`` s (the call still finishes)."""
        future = asyncio.get_running_loop().run_in_executor(self._thread(), self._invoke, fn, args, kwargs)
        return await asyncio.wait_for(future, timeout) if timeout else await future

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        """Wait for ``fn(*args, **kwargs)`` from a plain thread; TimeoutError after ``timeout`` s."""
        return self._thread().submit(self._invoke, fn, args, kwargs).result(timeout)

    def _invoke(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            if self._after is not None:
                self._after()

    def _thread(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
            return self._executor


class LoopDelivery:
    """Calls handlers on an event loop, in the order events were posted, from any thread.

    A plain function is called in a loop callback; a coroutine function (or any handler that
    returns an awaitable) is awaited in a task, and the next event waits for it, so that
    handlers see the events one at a time and in order. A handler that raises is logged.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tail: asyncio.Future[None] | None = None  # the latest awaited handler, on the loop
        self._pending = 0  # events posted and not yet handled (read on the loop)
        self._idle: asyncio.Event | None = None

    def bind(self) -> None:
        """Deliver to the running loop of the caller from now on."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            self.loop, self._tail, self._pending, self._idle = loop, None, 0, None

    def post(self, handler: Callable[[Any], Any], event: Any) -> None:
        """Hand ``event`` to ``handler`` on the bound loop (thread-safe, never waits)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            log.warning("micrec.aio: no open event loop to deliver %r to; dropped", event)
            return
        try:
            loop.call_soon_threadsafe(self._deliver, handler, event)
        except RuntimeError:  # the loop closed in between
            log.warning("micrec.aio: the event loop closed before %r could be delivered", event)

    async def wait_idle(self) -> None:
        """Wait until every event posted so far has been handled (call on the bound loop)."""
        while self._pending:
            if self._idle is None:
                self._idle = asyncio.Event()
            self._idle.clear()
            await self._idle.wait()

    def _deliver(self, handler: Callable[[Any], Any], event: Any) -> None:
        self._pending += 1
        previous = self._tail
        if previous is not None and not previous.done():
            self._tail = asyncio.ensure_future(self._after(previous, handler, event))
            return
        result = self._call(handler, event)
        if inspect.isawaitable(result):
            self._tail = asyncio.ensure_future(self._await(result))
        else:
            self._handled()

    async def _after(self, previous: asyncio.Future[None], handler: Callable[[Any], Any], event: Any) -> None:
        await asyncio.wait([previous])  # its outcome is its own (logged there)
        result = self._call(handler, event)
        if inspect.isawaitable(result):
            await self._await(result)
        else:
            self._handled()

    async def _await(self, result: Any) -> None:
        try:
            await result
        except Exception:
            log.exception("micrec.aio: an event handler raised")
        finally:
            self._handled()

    @staticmethod
    def _call(handler: Callable[[Any], Any], event: Any) -> Any:
        try:
            return handler(event)
        except Exception:
            log.exception("micrec.aio: an event handler raised")
            return None

    def _handled(self) -> None:
        self._pending -= 1
        if not self._pending and self._idle is not None:
            self._idle.set()


class BlockStream:
    """An async iterator over the blocks of one take, with a bounded queue.

    Made by :meth:`AsyncAudioRecorder.aiter_blocks`. Each item is an int16 numpy array shaped
    ``(frames, channels)`` at the file's rate (a copy: keep it). The iteration ends when the
    take stops, is cancelled or ends by a fault, after the blocks still queued.

    Notes
    -----
    Policy when the consumer is slow: the queue holds at most ``max_blocks`` blocks; a new
    block that finds it full pushes out the **oldest** one, and :attr:`dropped` counts it (a
    warning is logged at the first drop). Dropping the oldest keeps what a live consumer
    (a transcriber, a level display) gets close to now; the capture, the file and other
    consumers never wait and lose nothing. Memory stays bounded by ``max_blocks``.
    """

    def __init__(self, session: Session | None, loop: asyncio.AbstractEventLoop, max_blocks: int) -> None:
        if max_blocks < 1:
            raise ValueError(f"max_blocks={max_blocks!r} must be at least 1")
        self.max_blocks = max_blocks
        self.dropped = 0
        self._session = session
        self._loop = loop
        self._blocks: collections.deque[npt.NDArray[np.int16]] = collections.deque()
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None  # set while the consumer waits
        self._wake_pending = False  # at most one wake-up callback queued on the loop
        self._closed = session is None or session.ended
        self._ending = False
        if session is not None and not self._closed:
            session.block_listeners.append(self._collect)

    @property
    def queued(self) -> int:
        """Blocks received and not yet taken by the consumer."""
        return len(self._blocks)

    def __aiter__(self) -> BlockStream:
        return self

    async def __anext__(self) -> npt.NDArray[np.int16]:
        while True:
            with self._lock:
                if self._blocks:
                    return self._blocks.popleft()
                if self._closed or self._session is None or self._session.ended:
                    self._closed = True
                    self._detach()
                    raise StopAsyncIteration
                waiter = self._waiter = self._loop.create_future()
                # Blocks and the end of the take wake us; the timeout is a safety net, short
                # once the take is ending (its worker thread may still be finishing the file).
                timeout = 0.05 if self._ending else 1.0
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                pass
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        """Stop receiving blocks (the take goes on); pending blocks are discarded."""
        with self._lock:
            self._closed = True
            self._blocks.clear()
            self._detach()

    async def __aenter__(self) -> BlockStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- any thread --------------------------------------------------------------------------
    def _collect(self, block: npt.NDArray[np.int16]) -> None:
        # On micrec's worker thread: O(1), never waits for the consumer.
        item = block.copy()
        with self._lock:
            if self._closed:
                return
            if len(self._blocks) >= self.max_blocks:
                self._blocks.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("micrec.aio: a block consumer is slower than the microphone; dropping "
                                "the oldest blocks (max_blocks=%d)", self.max_blocks)
            self._blocks.append(item)
        self._wake()

    def _ended(self) -> None:
        """The take is over (called from the recorder's event thread)."""
        self._ending = True
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            if self._waiter is None or self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake_on_loop)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self._wake_pending = False

    def _wake_on_loop(self) -> None:
        with self._lock:
            self._wake_pending = False
            waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _detach(self) -> None:
        session = self._session
        if session is not None:
            with contextlib.suppress(ValueError):
                session.block_listeners.remove(self._collect)


class AsyncAudioRecorder:
    """Records a microphone to a file, with coroutine methods for asyncio programs.

    Parameters
    ----------
    audio_encoder, sample_rate, channels_num, bit_rate, auto_gain, suppress_noise, cancel_echo, device
        As :class:`micrec.AudioRecorder` (and read/write attributes of the same names).
    on_state_changed : callable or coroutine function, optional
        Called with an :class:`~micrec.AudioRecorderStateChangeEvent` at every transition,
        **on the event loop**, one event at a time, in order.
    backend : str or CaptureBackend, optional
        As :class:`micrec.AudioRecorder`.
    on_audio : callable, optional
        As :class:`micrec.AudioRecorder`: called on micrec's worker thread, not the loop. On
        the loop, use :meth:`aiter_blocks`.
    system_audio, mix_system_audio, until_silence, wait_for_voice, segment_seconds, blocksize
        As :class:`micrec.AudioRecorder`. The constructor takes every parameter of
        :class:`micrec.AudioRecorder`'s, with the same kinds and defaults (a test compares
        the two signatures).

    Notes
    -----
    The coroutines (:meth:`start_recording`, :meth:`stop_recording`, :meth:`pause_recording`,
    :meth:`resume_recording`, :meth:`seek`, :meth:`cancel_recording`, and the device queries)
    run the blocking work on one thread of the recorder's own, in call order. When one returns,
    the plain-function handlers of the events it caused have run (coroutine handlers have been
    started; :meth:`wait_for_events` waits for them). Cancelling the awaiting task does not
    undo the call: the recorder finishes it. The readings (:meth:`is_recording`,
    :meth:`get_amplitude`, :attr:`state`, :attr:`duration_ms`, ...) never wait and stay plain
    methods. The wrapped :class:`micrec.AudioRecorder` is :attr:`recorder`.

    ``async with AsyncAudioRecorder(...) as rec:`` stops and finalizes an open take on leaving.

    Examples
    --------
    >>> async def record() -> str | None:                                 # doctest: +SKIP
    ...     async with AsyncAudioRecorder(audio_encoder="flac", channels_num=1) as rec:
    ...         await rec.start_recording("take.flac")
    ...         await asyncio.sleep(5)
    ...         return await rec.stop_recording()
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder | str = AudioEncoder.WAV,
        sample_rate: int = 44100,
        channels_num: int = 2,
        bit_rate: int = 128000,
        auto_gain: bool = False,
        suppress_noise: bool = False,
        cancel_echo: bool = False,
        device: str | None = None,
        on_state_changed: StateHandler | None = None,
        *,
        backend: str | CaptureBackend | None = None,
        on_audio: Callable[[Any], Any] | None = None,
        system_audio: bool | str = False,
        mix_system_audio: bool = False,
        until_silence: float | None = None,
        wait_for_voice: bool = False,
        segment_seconds: float | None = None,
        blocksize: int | None = None,
    ) -> None:
        self.on_state_changed = on_state_changed
        self.recorder = AudioRecorder(audio_encoder, sample_rate, channels_num, bit_rate, auto_gain,
                                      suppress_noise, cancel_echo, device, self._on_core_state,
                                      backend=backend, on_audio=on_audio, system_audio=system_audio,
                                      mix_system_audio=mix_system_audio, until_silence=until_silence,
                                      wait_for_voice=wait_for_voice, segment_seconds=segment_seconds,
                                      blocksize=blocksize)
        self._delivery = LoopDelivery()
        self._streams: list[BlockStream] = []
        self._streams_lock = threading.Lock()
        # The core's events are posted to the loop before a call's result is, so the plain
        # handlers have run when the awaiting coroutine resumes.
        self._calls = CallThread("micrec-aio", after=lambda: self.recorder.wait_for_events(_EVENT_WAIT))

    audio_encoder = _setting("audio_encoder")
    sample_rate = _setting("sample_rate")
    channels_num = _setting("channels_num")
    bit_rate = _setting("bit_rate")
    auto_gain = _setting("auto_gain")
    suppress_noise = _setting("suppress_noise")
    cancel_echo = _setting("cancel_echo")
    device = _setting("device")
    backend = _setting("backend")
    on_audio = _setting("on_audio")
    system_audio = _setting("system_audio")
    mix_system_audio = _setting("mix_system_audio")

    def __repr__(self) -> str:
        return f"AsyncAudioRecorder(audio_encoder={self.audio_encoder!r}, state={self.state.value!r})"

    # -- the take ----------------------------------------------------------------------------
    async def start_recording(self, output_path: str | os.PathLike[str], *, duration: float | None = None) -> bool:
        """Start recording to ``output_path``; returns True.

        See :meth:`micrec.AudioRecorder.start_recording` for the parameters and the errors,
        which are raised here.
        """
        return await self._run(self.recorder.start_recording, output_path, duration=duration)

    async def stop_recording(self) -> str | None:
        """Stop, finalize the file and return its path; None when no take is open."""
        return await self._run(self.recorder.stop_recording)

    async def cancel_recording(self) -> None:
        """Stop and delete the file."""
        await self._run(self.recorder.cancel_recording)

    async def pause_recording(self) -> None:
        """Pause; the paused time is left out of the file. No effect unless recording."""
        await self._run(self.recorder.pause_recording)

    async def resume_recording(self) -> None:
        """Resume after :meth:`pause_recording`. No effect unless paused."""
        await self._run(self.recorder.resume_recording)

    pause = pause_recording
    resume = resume_recording

    async def seek(self, position_milliseconds: float) -> None:
        """While paused, cut the take at ``position_milliseconds`` (see :meth:`micrec.AudioRecorder.seek`)."""
        await self._run(self.recorder.seek, position_milliseconds)

    def aiter_blocks(self, max_blocks: int = DEFAULT_MAX_BLOCKS) -> BlockStream:
        """An async iterator over the blocks written from now on, until the take ends.

        Parameters
        ----------
        max_blocks : int
            How many blocks to keep for a consumer that falls behind (default 100, about 5 s);
            past that the oldest are dropped and counted in :attr:`BlockStream.dropped`.

        Returns
        -------
        BlockStream
            Iterate it with ``async for``; with no take open it yields nothing. Use it as
            ``async with rec.aiter_blocks() as blocks:`` to stop receiving on leaving.
        """
        stream = BlockStream(self.recorder._session, asyncio.get_running_loop(), max_blocks)
        with self._streams_lock:
            self._streams = [s for s in self._streams if not s._closed]
            self._streams.append(stream)
        return stream

    # -- readings (never wait) ---------------------------------------------------------------
    def is_recording(self) -> bool:
        """True while a take is open, paused included."""
        return self.recorder.is_recording()

    def is_paused(self) -> bool:
        """True while paused."""
        return self.recorder.is_paused()

    @property
    def state(self) -> AudioRecorderState:
        return self.recorder.state

    @property
    def last_error(self) -> BaseException | None:
        """The fault that ended the latest take, or None."""
        return self.recorder.last_error

    @property
    def overflows(self) -> int:
        """Blocks the recorder dropped in the current (or latest) take because it fell behind."""
        return self.recorder.overflows

    @property
    def duration_ms(self) -> float:
        """Length of the take written so far, in milliseconds (0 when idle)."""
        return self.recorder.duration_ms

    def get_amplitude(self) -> Amplitude:
        """Peak levels in dBFS: the latest ~50 ms and the take's highest; -160 when idle."""
        return self.recorder.get_amplitude()

    # -- devices (may wait for the sound server) --------------------------------------------
    async def get_input_devices(self) -> dict[str, str]:
        """``{device_id: label}`` of the capture devices present now."""
        return await self._run(self.recorder.get_input_devices)

    async def get_output_devices(self) -> dict[str, str]:
        """``{output_id: label}`` of the outputs whose sound ``system_audio`` can record."""
        return await self._run(self.recorder.get_output_devices)

    async def has_permission(self) -> bool:
        """Whether a capture device (``device``, or the default) can be opened now."""
        return await self._run(self.recorder.has_permission)

    async def is_supported_encoder(self, encoder: AudioEncoder | str) -> bool:
        """True exactly when :meth:`start_recording` with ``encoder`` would work here now."""
        return await self._run(self.recorder.is_supported_encoder, encoder)

    async def wait_for_events(self) -> None:
        """Wait until every state change so far has been handled on the loop (coroutine handlers too)."""
        await self._run(self.recorder.wait_for_events, _EVENT_WAIT)
        await self._delivery.wait_idle()

    # -- async context manager ---------------------------------------------------------------
    async def __aenter__(self) -> AsyncAudioRecorder:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop_recording()

    # -- internals ---------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call of the core on the recorder's thread."""
        self._delivery.bind()
        return await self._calls.run(fn, *args, **kwargs)

    def _on_core_state(self, event: AudioRecorderStateChangeEvent) -> None:
        # On the core's event thread.
        if event.state is AudioRecorderState.STOPPED:
            with self._streams_lock:
                streams = list(self._streams)
            for stream in streams:
                stream._ended()
        handler = self.on_state_changed
        if handler is not None:
            self._delivery.post(handler, event)
