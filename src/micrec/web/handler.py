"""One WebSocket, one take: the connection that drives an AudioRecorder from a browser.

The handler reads the ``start`` message, opens an :class:`micrec.AudioRecorder` on a
:class:`~micrec.web.backend.SocketBackend`, then feeds it the client's frames and commands.
Outgoing messages (state events, levels, the summary) go through one queue and one sender
task, so sends never interleave. Whatever ends the take — ``stop``, a protocol violation, a
limit, a dropped connection — the recorder finalizes the file and its STOPPED event carries
the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import encoders
from ..errors import MicrecError
from ..recorder import AudioRecorder
from ..types import AudioEncoder, AudioRecorderState, AudioRecorderStateChangeEvent
from .backend import SocketBackend, SocketStream
from .errors import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_SERVER_ERROR,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    ClientGoneError,
    LimitExceededError,
    ProtocolViolationError,
    ServerShutdownError,
    WebCaptureError,
)
from .protocol import Limits, StartRequest, close_reason, parse_command, parse_start, short_repr, split_frame

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

__all__ = ["LEVEL_INTERVAL", "SEND_TIMEOUT", "TakeConnection"]

log = logging.getLogger("micrec.web")

#: Seconds between level messages while recording.
LEVEL_INTERVAL = 0.1
#: Seconds without audio after which the part of a block held back is handed over.
STALL_SECONDS = 0.25
_EVENTS_TIMEOUT = 10.0
#: Seconds one message (or the close frame) may wait for a client that stopped reading: then
#: the client counts as gone for sending, and the take goes on (and is saved) without it.
SEND_TIMEOUT = 10.0
_MAX_REFUSAL_CHARS = 200
Message = MutableMapping[str, Any]


class TakeConnection:
    """Runs one take over an accepted WebSocket (see :mod:`micrec.web.protocol`).

    Parameters
    ----------
    websocket : starlette.websockets.WebSocket
        Accepted already; the token and Origin were checked by the app.
    new_path : callable
        Gives the server-chosen output path for an encoder.
    limits : Limits
        The server's limits.
    defaults : dict
        Recorder settings used where the ``start`` message leaves one out.
    on_state_changed : callable, optional
        Also told every state change of the take (on micrec's event thread).
    admit : callable, optional
        Asked when a valid ``start`` arrives: None lets the take start (it then counts as
        :attr:`admitted`), a string refuses it with that reason (close 1013, try later).
    """

    def __init__(self, websocket: WebSocket, new_path: Callable[[AudioEncoder], Path], limits: Limits,
                 defaults: dict[str, Any],
                 on_state_changed: Callable[[AudioRecorderStateChangeEvent], Any] | None = None, *,
                 admit: Callable[[], str | None] | None = None) -> None:
        self.ws = websocket
        self._new_path = new_path
        self._limits = limits
        self._defaults = defaults
        self._listener = on_state_changed
        self._admit = admit
        self.admitted = False
        self._outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._connected = True
        self._last_audio = time.monotonic()
        self._receiver: asyncio.Task[BaseException | None] | None = None
        self._cut = False  # the server ended the take (watchdog, shutdown), not the client
        self._cut_error: BaseException | None = None
        self._shutdown: ServerShutdownError | None = None
        self._shutdown_requested = asyncio.Event()
        self._done = asyncio.Event()
        self.recorder: AudioRecorder | None = None
        self.stream: SocketStream | None = None
        self.path: Path | None = None

    @property
    def name(self) -> str:
        """The take's file name, for logs (``"(before start)"`` until it has one)."""
        return "(before start)" if self.path is None else self.path.name

    async def run(self) -> None:
        """Serve the take until it ends; never raises for anything the client does."""
        try:
            await self._serve()
        finally:
            self._done.set()

    async def end_for_shutdown(self, error: ServerShutdownError) -> None:
        """End the take now, saved, and tell the client ``error`` as the close reason.

        A connection still waiting for its ``start`` is refused with that reason. Returns once
        the file is finalized and the close sent.
        """
        self._shutdown = error
        self._shutdown_requested.set()
        self._cut_take(error)
        await self._done.wait()

    async def _serve(self) -> None:
        request = await self._receive_start()
        if request is None:
            return
        busy = None if self._admit is None else self._admit()
        if busy is not None:
            await self.refuse(CLOSE_TRY_LATER, busy)
            return
        self.admitted = True
        path = await self._start_recorder(request)
        if path is None:
            return
        self._last_audio = time.monotonic()
        receiver = self._receiver = asyncio.create_task(self._receive_loop())
        sender = asyncio.create_task(self._send_loop(receiver))
        if self._shutdown is not None:  # the shutdown came while the recorder was starting
            self._cut_take(self._shutdown)
        try:
            error = await receiver
        except asyncio.CancelledError:
            if not self._cut:  # this task itself is cancelled: still keep the take
                self._abandon(sender)
                raise
            error = self._cut_error  # None when the session ended by itself: _finish asks it why
        await self._finish(path, error, sender)

    def _cut_take(self, error: BaseException | None) -> None:
        """End the take from the server's side; ``error`` (None: the session's own) is reported."""
        receiver = self._receiver
        if self._cut or receiver is None or receiver.done():
            return
        self._cut, self._cut_error = True, error
        receiver.cancel()

    # -- start ------------------------------------------------------------------------------
    async def _receive_start(self) -> StartRequest | None:
        receive = asyncio.ensure_future(self.ws.receive())
        shutdown = asyncio.ensure_future(self._shutdown_requested.wait())
        try:
            done, _ = await asyncio.wait({receive, shutdown}, timeout=self._limits.start_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receive, shutdown):
                task.cancel()
        if self._shutdown is not None:
            await self.refuse(self._shutdown.close_code, str(self._shutdown))
            return None
        if receive not in done:
            await self.refuse(CLOSE_POLICY, f"no start message within {self._limits.start_timeout:g} s")
            return None
        message = receive.result()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        try:
            if text is None:
                raise ProtocolViolationError("the first message must be a text start message, not audio",
                                             name="type")
            return parse_start(text, self._limits)
        except ProtocolViolationError as exc:
            await self.refuse(exc.close_code, str(exc))
            return None

    async def _start_recorder(self, request: StartRequest) -> Path | None:
        settings = {**self._defaults, **request.settings}
        try:
            codec = AudioEncoder(settings["audio_encoder"])
        except (ValueError, TypeError):
            await self.refuse(CLOSE_POLICY, f"audio_encoder {short_repr(settings['audio_encoder'])} is not one of "
                                             f"{[e.value for e in AudioEncoder]}")
            return None
        backend = SocketBackend(request.rate, request.channels, self._limits)
        # Echo cancellation needs what the speakers play; only the browser knows that, so it is
        # the browser's (getUserMedia's echoCancellation). Noise suppression and AGC run here too.
        recorder = AudioRecorder(**{**settings, "audio_encoder": codec, "cancel_echo": False},
                                 backend=backend, on_state_changed=self._forwarder())
        path = self._new_path(codec)
        try:
            await asyncio.to_thread(recorder.start_recording, path)
        except MicrecError as exc:
            server_side = isinstance(exc, OSError) and not isinstance(exc, ValueError)
            await self.refuse(CLOSE_SERVER_ERROR if server_side else CLOSE_POLICY, str(exc))
            return None
        self.recorder, self.stream, self.path = recorder, backend.stream, path
        await self._send(_started(path, codec, recorder))
        return path

    def _forwarder(self) -> Callable[[AudioRecorderStateChangeEvent], None]:
        loop = asyncio.get_running_loop()
        outbox, listener = self._outbox, self._listener

        def forward(event: AudioRecorderStateChangeEvent) -> None:
            if listener is not None:
                listener(event)
            message = {"type": "state", "state": event.data,
                       "error": None if event.error is None else str(event.error)}
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
                loop.call_soon_threadsafe(outbox.put_nowait, message)

        return forward

    # -- the take ---------------------------------------------------------------------------
    async def _receive_loop(self) -> BaseException | None:
        """Feed frames and commands until ``stop`` (None) or a fault (returned)."""
        assert self.stream is not None
        stream, receive = self.stream, self.ws.receive
        while True:
            # No per-message timeout (a task per frame would cost more than the frame): the send
            # loop watches for silence instead (_watch).
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self._connected = False
                return _disconnected(message.get("code"))
            try:
                if await self._handle(message, stream):
                    return None
            except ProtocolViolationError as exc:
                return exc

    async def _handle(self, message: Message, stream: SocketStream) -> bool:
        """Apply one message; True when it was ``stop``."""
        payload = message.get("bytes")
        if payload is not None:
            stream.feed(payload, split_frame(payload, stream.channels, self._limits))
            self._last_audio = time.monotonic()
            return False
        command = parse_command(message.get("text") or "")
        recorder = self.recorder
        assert recorder is not None
        if command == "pause":
            stream.flush()
            stream.paused = True
            recorder.pause_recording()
        elif command == "resume":
            recorder.resume_recording()
            stream.paused = False
            self._last_audio = time.monotonic()
        return command == "stop"

    async def _send_loop(self, receiver: asyncio.Task[BaseException | None]) -> None:
        while True:
            try:
                message = await asyncio.wait_for(self._outbox.get(), LEVEL_INTERVAL)
            except TimeoutError:
                self._watch(receiver)
                message = self._level()
                if message is None:
                    continue
            if message is None:
                return
            await self._send(message)

    def _watch(self, receiver: asyncio.Task[BaseException | None]) -> None:
        """End the take when the client went silent or the session ended by a fault of its own."""
        stream, recorder, idle = self.stream, self.recorder, self._limits.idle_seconds
        if stream is None or recorder is None or receiver.done() or self._cut:
            return
        if not recorder.is_recording():  # encoder or disk fault: tell the client now, not at stop
            self._cut_take(None)
        elif not stream.paused and time.monotonic() - self._last_audio > idle:
            self._cut_take(ClientGoneError(f"no audio from the browser for {idle:g} s", value=idle,
                                           name="idle_seconds"))
        elif not stream.paused and time.monotonic() - self._last_audio > STALL_SECONDS:
            # The client went quiet: what waits to fill a block goes to the recorder now, so
            # that its next flush puts it in the file (a stalled tab, a network hiccup).
            stream.flush()

    def _level(self) -> Message | None:
        recorder, stream = self.recorder, self.stream
        if recorder is None or stream is None or stream.paused or not recorder.is_recording():
            return None
        amplitude = recorder.get_amplitude()
        return {"type": "level", "current": amplitude.current, "max": amplitude.max,
                "duration_ms": round(stream.recorded_ms)}

    # -- the end ----------------------------------------------------------------------------
    async def _finish(self, path: Path, error: BaseException | None, sender: asyncio.Task[None]) -> None:
        recorder, stream = self.recorder, self.stream
        assert recorder is not None and stream is not None
        overflows = recorder.overflows
        if error is None:
            stream.flush()
        else:
            stream.fail(error)
        await asyncio.to_thread(recorder.stop_recording)
        await asyncio.to_thread(recorder.wait_for_events, _EVENTS_TIMEOUT)
        await asyncio.sleep(0)  # let the forwarded STOPPED event reach the outbox first
        error = error or recorder.last_error
        if error is not None:
            log.info("micrec.web: take %s ended by: %s", path.name, error)
        summary = {"type": "stopped", "take": path.name, "duration_ms": round(stream.recorded_ms, 1),
                   "frames": stream.recorded_frames, "rate": stream.rate, "overflows": overflows,
                   "error": None if error is None else str(error)}
        self._outbox.put_nowait(summary)
        self._outbox.put_nowait(None)
        if not self._connected:
            sender.cancel()
            return
        with contextlib.suppress(Exception):  # the client may be gone by now, or not reading
            await asyncio.wait_for(sender, 2 * SEND_TIMEOUT)
        code = CLOSE_NORMAL if error is None else getattr(error, "close_code", CLOSE_SERVER_ERROR)
        await self._close(code, "take saved" if error is None else str(error))

    def _abandon(self, sender: asyncio.Task[None]) -> None:
        """Finalize the take right now (blocking): the server is cancelling this connection."""
        sender.cancel()
        if self.stream is not None and self.recorder is not None:
            self.stream.fail(ClientGoneError("the server shut down mid-take", name="connection"))
            self.recorder.stop_recording()

    async def refuse(self, code: int, reason: str) -> None:
        """Tell the client why (an ``error`` message, then the close reason) and close."""
        if len(reason) > _MAX_REFUSAL_CHARS:  # e.g. a setting's value echoed back by the recorder
            reason = reason[: _MAX_REFUSAL_CHARS - 3] + "..."
        await self._send({"type": "error", "code": code, "message": reason})
        await self._close(code, reason)

    async def _send(self, message: Message) -> None:
        if not self._connected:
            return
        try:
            await asyncio.wait_for(self.ws.send_json(message), SEND_TIMEOUT)
        except TimeoutError:
            log.info("micrec.web: %s: the client stopped reading; nothing more is sent to it", self.name)
            self._connected = False
        except Exception:  # noqa: BLE001 - a vanished client is reported by the receive loop
            self._connected = False

    async def _close(self, code: int, reason: str) -> None:
        if not self._connected:
            return
        self._connected = False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, close_reason(reason)), SEND_TIMEOUT)


def _disconnected(code: Any) -> WebCaptureError:
    """Why the connection went: browsers close with 1000/1001 (or vanish: 1006); the rest is the server's."""
    if code == CLOSE_SERVICE_RESTART:  # uvicorn shutting down under our app
        return ServerShutdownError("the web server closed the connection: it is shutting down; the take "
                                   "was saved", value=code, name="connection")
    if code == CLOSE_TOO_BIG:  # the WebSocket server refused a message over its size limit
        return LimitExceededError("the client sent a message over the web server's size limit (close 1009); "
                                  "the take was saved", value=code, name="connection", close_code=CLOSE_TOO_BIG)
    return ClientGoneError(f"the browser disconnected mid-take (code {code})", value=code, name="connection")


def _started(path: Path, codec: AudioEncoder, recorder: AudioRecorder) -> Message:
    cls = encoders.encoder_class(codec)
    rate = recorder.sample_rate if cls is None else cls.admitted_rate(int(recorder.sample_rate))
    channels = recorder.channels_num if cls is None else cls.admitted_channels(int(recorder.channels_num))
    server_dsp = [flag for flag in ("auto_gain", "suppress_noise") if getattr(recorder, flag)]
    return {"type": "started", "take": path.name, "audio_encoder": codec.value, "sample_rate": rate,
            "channels_num": channels, "server_dsp": server_dsp, "state": AudioRecorderState.RECORDING.value}
