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
    ClientGoneError,
    ProtocolViolationError,
)
from .protocol import Limits, StartRequest, close_reason, parse_command, parse_start, split_frame

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

__all__ = ["LEVEL_INTERVAL", "TakeConnection"]

log = logging.getLogger("micrec.web")

#: Seconds between level messages while recording.
LEVEL_INTERVAL = 0.1
_EVENTS_TIMEOUT = 10.0
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
    """

    def __init__(self, websocket: WebSocket, new_path: Callable[[AudioEncoder], Path], limits: Limits,
                 defaults: dict[str, Any],
                 on_state_changed: Callable[[AudioRecorderStateChangeEvent], Any] | None = None) -> None:
        self.ws = websocket
        self._new_path = new_path
        self._limits = limits
        self._defaults = defaults
        self._listener = on_state_changed
        self._outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._connected = True
        self._last_audio = time.monotonic()
        self._idle_error: ClientGoneError | None = None
        self._watchdog_fired = False
        self.recorder: AudioRecorder | None = None
        self.stream: SocketStream | None = None

    async def run(self) -> None:
        """Serve the take until it ends; never raises for anything the client does."""
        request = await self._receive_start()
        if request is None:
            return
        path = await self._start_recorder(request)
        if path is None:
            return
        self._last_audio = time.monotonic()
        receiver = asyncio.create_task(self._receive_loop())
        sender = asyncio.create_task(self._send_loop(receiver))
        try:
            error = await receiver
        except asyncio.CancelledError:
            if not self._watchdog_fired:  # the server is shutting down: still keep the take
                self._abandon(sender)
                raise
            error = self._idle_error  # None when the session ended by itself: _finish asks it why
        await self._finish(path, error, sender)

    # -- start ------------------------------------------------------------------------------
    async def _receive_start(self) -> StartRequest | None:
        try:
            message = await asyncio.wait_for(self.ws.receive(), self._limits.start_timeout)
        except TimeoutError:
            await self.refuse(CLOSE_POLICY, f"no start message within {self._limits.start_timeout:g} s")
            return None
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
            await self.refuse(CLOSE_POLICY, f"audio_encoder {settings['audio_encoder']!r} is not one of "
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
        self.recorder, self.stream = recorder, backend.stream
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
                return ClientGoneError(f"the browser disconnected mid-take (code {message.get('code')})",
                                       value=message.get("code"), name="connection")
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
        if stream is None or recorder is None or receiver.done() or self._watchdog_fired:
            return
        if not recorder.is_recording():  # encoder or disk fault: tell the client now, not at stop
            self._watchdog_fired = True
        elif not stream.paused and time.monotonic() - self._last_audio > idle:
            self._idle_error = ClientGoneError(f"no audio from the browser for {idle:g} s", value=idle,
                                               name="idle_seconds")
            self._watchdog_fired = True
        if self._watchdog_fired:
            receiver.cancel()

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
        with contextlib.suppress(Exception):  # the client may be gone by now
            await sender
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
        await self._send({"type": "error", "code": code, "message": reason})
        await self._close(code, reason)

    async def _send(self, message: Message) -> None:
        if not self._connected:
            return
        try:
            await self.ws.send_json(message)
        except Exception:  # noqa: BLE001 - a vanished client is reported by the receive loop
            self._connected = False

    async def _close(self, code: int, reason: str) -> None:
        if not self._connected:
            return
        self._connected = False
        with contextlib.suppress(Exception):
            await self.ws.close(code, close_reason(reason))


def _started(path: Path, codec: AudioEncoder, recorder: AudioRecorder) -> Message:
    cls = encoders.encoder_class(codec)
    rate = recorder.sample_rate if cls is None else cls.admitted_rate(int(recorder.sample_rate))
    channels = recorder.channels_num if cls is None else cls.admitted_channels(int(recorder.channels_num))
    server_dsp = [flag for flag in ("auto_gain", "suppress_noise") if getattr(recorder, flag)]
    return {"type": "started", "take": path.name, "audio_encoder": codec.value, "sample_rate": rate,
            "channels_num": channels, "server_dsp": server_dsp, "state": AudioRecorderState.RECORDING.value}
