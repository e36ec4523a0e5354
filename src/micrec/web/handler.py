"""One WebSocket, one take: the connection that drives an AudioRecorder from a browser.

The handler reads the ``start`` message, opens an :class:`micrec.AudioRecorder` on a
:class:`~micrec.web.backend.SocketBackend`, then feeds it the client's frames and commands.
Outgoing messages (state events, levels, the summary) go through one queue and one sender
task, so sends never interleave. Whatever ends the take — ``stop``, a protocol violation, a
limit, a dropped connection — the recorder finalizes the file and its STOPPED event carries
the fault. A dropped connection first waits ``Limits.drop_seconds`` for the browser to
reconnect and go on with the take (:mod:`micrec.web.resume`): a ``reconnect`` message on a new
socket hands that socket to the waiting take.
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
    CLOSE_GOING_AWAY,
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
from .protocol import (
    Limits,
    ReconnectRequest,
    StartRequest,
    close_reason,
    parse_command,
    parse_opening,
    short_repr,
    split_frame,
)
from .resume import NewPath, TakeRegistry, Ticket, TicketSigner, free_part, resumable

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
#: A socket handed over by a reconnecting client: the socket, its request, and the event the
#: take sets when it lets go of the socket (the take ended, or the socket dropped too).
Return = tuple["WebSocket", ReconnectRequest, asyncio.Event]


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
    takes : TakeRegistry, optional
        The takes of this process, where a reconnecting client's socket finds its take.
    tickets : TicketSigner, optional
        Signs the take's ticket for the client. Without ``takes`` and ``tickets`` a dropped
        connection ends the take at once.
    """

    def __init__(self, websocket: WebSocket, new_path: NewPath, limits: Limits,
                 defaults: dict[str, Any],
                 on_state_changed: Callable[[AudioRecorderStateChangeEvent], Any] | None = None, *,
                 admit: Callable[[], str | None] | None = None, takes: TakeRegistry | None = None,
                 tickets: TicketSigner | None = None) -> None:
        self.ws = websocket
        self._new_path = new_path
        self._limits = limits
        self._defaults = defaults
        self._listener = on_state_changed
        self._admit = admit
        self.admitted = False
        #: Set by the app on a socket that said it reconnects (``?reconnect=1``) from a visitor at
        #: the count quota: the refusal a plain ``start`` on it gets.
        self.fresh_refusal: tuple[int, str] | None = None
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
        # Resuming: the registry and ticket signer, the take's first file and part number, the
        # take's frame count where this part begins, and the state of a dropped connection.
        self._takes, self._tickets = takes, tickets
        self._continues: Ticket | None = None  # the take this connection continues as a new part
        self._reconnect: ReconnectRequest | None = None
        self.first: str | None = None
        self.part = 1
        self._base_frames = 0
        self._back: Return | None = None  # a reconnecting client's socket, waiting to be taken
        self._came_back = asyncio.Event()
        self._released: asyncio.Event | None = None  # set when this take lets go of a lent socket
        self._dropped: ClientGoneError | None = None  # the server counts the connection as gone
        self._ending = False
        self._lent = False  # this connection's socket serves a take it reconnected to
        self._closing: asyncio.Task[None] | None = None

    @property
    def pending(self) -> bool:
        """Connected but not recording: no ``start`` yet, nor lent to a take it reconnected to."""
        return not self.admitted and not self._lent

    @property
    def name(self) -> str:
        """The take's file name, for logs (``"(before start)"`` until it has one)."""
        return "(before start)" if self.path is None else self.path.name

    async def run(self) -> None:
        """Serve the take until it ends; never raises for anything the client does."""
        try:
            await self._serve()
        finally:
            if self._released is not None:
                self._released.set()
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
        if isinstance(request, ReconnectRequest):
            if await self._hand_over(request):
                return
            request = request.start  # the take is not held here: it goes on as a new part
        elif self.fresh_refusal is not None:
            await self.refuse(*self.fresh_refusal)
            return
        busy = None if self._admit is None else self._admit()
        if busy is not None:
            await self.refuse(CLOSE_TRY_LATER, busy)
            return
        self.admitted = True
        path = await self._start_recorder(request)
        if path is None:
            return
        if self._takes is not None:
            self._takes.add(path.name, self)
        try:
            error, sender = await self._connections()
        finally:
            self._ending = True
            if self._takes is not None:
                self._takes.remove(path.name, self)
        await self._finish(path, error, sender)

    async def _connections(self) -> tuple[BaseException | None, asyncio.Task[None]]:
        """Serve the take over its socket and every socket it is resumed on; why it ended."""
        while True:
            self._last_audio = time.monotonic()
            receiver = self._receiver = asyncio.create_task(self._receive_loop())
            sender = asyncio.create_task(self._send_loop(receiver))
            if self._shutdown is not None:  # the shutdown came while the recorder was starting
                self._cut_take(self._shutdown)
            try:
                error = await receiver
            except asyncio.CancelledError:
                if self._dropped is not None and receiver.cancelled() and not self._cut:
                    error = self._dropped  # the server counts the connection as gone
                elif not self._cut:  # this task itself is cancelled: still keep the take
                    self._abandon(sender)
                    raise
                else:
                    return self._cut_error, sender  # None: the session ended by itself; _finish asks why
            if not self._waits_for_return(error):
                return error, sender
            sender.cancel()
            try:
                back = await self._detached(error)
            except asyncio.CancelledError:
                self._abandon(sender)
                raise
            if back is None:
                return (self._cut_error if self._cut else self._gone_for_good(error)), sender
            await self._reattach(*back)

    def _cut_take(self, error: BaseException | None) -> None:
        """End the take from the server's side; ``error`` (None: the session's own) is reported."""
        receiver = self._receiver
        if self._cut or receiver is None:
            return
        if receiver.done():  # between connections: wake the wait for the browser's return
            if self._ending:
                return
            self._cut, self._cut_error = True, error
            self._came_back.set()
            return
        self._cut, self._cut_error = True, error
        receiver.cancel()

    # -- a dropped connection, and the return of its browser --------------------------------
    def _waits_for_return(self, error: BaseException | None) -> bool:
        """Whether the take waits for its browser to reconnect after ``error`` ended a connection."""
        if self._tickets is None or self._limits.drop_seconds <= 0 or self._cut:
            return False
        return isinstance(error, ClientGoneError) and error.name == "connection" and resumable(error.value)

    async def _detached(self, error: BaseException | None) -> Return | None:
        """Keep the take open without a connection until its browser is back (None: it is not)."""
        stream = self.stream
        assert stream is not None
        stream.flush()  # what arrived reaches the file now, in case nobody comes back
        stream.pacer.stop()
        self._connected, self._dropped = False, None
        if self._released is not None:
            self._released.set()  # the socket a reconnect lent us is dead too
            self._released = None
        log.info("micrec.web: take %s lost its connection (%s); waiting %g s for the browser", self.name,
                 error, self._limits.drop_seconds)
        if self._back is None:
            self._came_back.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._came_back.wait(), self._limits.drop_seconds)
        back, self._back = self._back, None
        return None if self._cut else back

    def _gone_for_good(self, error: BaseException | None) -> ClientGoneError:
        limit = self._limits.drop_seconds
        return ClientGoneError(f"{error}; the browser did not reconnect within the drop limit of {limit:g} s, "
                               "so the take was saved with what arrived", value=limit, name="drop_seconds")

    def attach(self, websocket: WebSocket, request: ReconnectRequest) -> asyncio.Event | None:
        """Hand a reconnecting client's socket to this take.

        Returns the event set when the take lets go of the socket (ended, or dropped again),
        or None when the take is ending and cannot go on here. A connection the server still
        thinks alive (it has not noticed the drop) is replaced by the new one.
        """
        receiver, stream = self._receiver, self.stream
        if self._ending or self._cut or receiver is None or stream is None:
            return None
        if (request.start.rate, request.start.channels) != (stream.rate, stream.channels):
            return None  # another audio format cannot go into this file: a new part takes it
        released = asyncio.Event()
        if self._back is not None:  # two reconnects of one take: the newer one wins
            self._back[2].set()
        self._back = (websocket, request, released)
        self._came_back.set()
        if not receiver.done():
            self._dropped = ClientGoneError("the browser reconnected on a new connection", value=None,
                                            name="connection")
            receiver.cancel()
        return released

    async def _reattach(self, websocket: WebSocket, request: ReconnectRequest, released: asyncio.Event) -> None:
        """Go on with the take over a reconnected client's socket; tell it where to resume."""
        stream = self.stream
        assert stream is not None and self.path is not None
        old = self.ws
        self.ws, self._connected, self._released = websocket, True, released
        if old is not websocket:
            # Not awaited: a half-open socket may take SEND_TIMEOUT to give up, the client waits now.
            self._closing = asyncio.create_task(_close_quietly(old))
        received = stream.received_frames
        backlog = stream.pacer.bounded_backlog(received, request.sent - self._base_frames,
                                               stream.pacer.away_seconds())
        stream.pacer.grant(received, backlog)  # the resumed burst may pass the flood limit by exactly this
        if not stream.paused:
            stream.pacer.start()
        log.info("micrec.web: take %s resumed at frame %d (backlog %d frames)", self.name,
                 self._base_frames + received, backlog)
        await self._send(self._reconnected(self._base_frames + received, stream.paused))

    def _reconnected(self, frames: int, paused: bool) -> Message:
        assert self.path is not None and self._tickets is not None
        first = self.first or self.path.name
        return {"type": "reconnected", "take": self.path.name, "first": first, "part": self.part,
                "frames": frames, "paused": paused, "ticket": self._tickets.issue(self.path.name, first, self.part)}

    async def _hand_over(self, request: ReconnectRequest) -> bool:
        """Give this socket to the take it reconnects to, if this process holds it; False: it does not."""
        assert self._tickets is not None
        try:
            ticket = self._tickets.read(request.ticket)
        except ProtocolViolationError as exc:
            await self.refuse(exc.close_code, str(exc))
            return True
        take = None if self._takes is None else self._takes.get(ticket.name)
        released = None if take is None else take.attach(self.ws, request)
        if released is None:
            self._continues = ticket
            self._reconnect = request
            return False
        self._connected, self._lent = False, True  # the socket is the take's now; this connection only waits
        await released.wait()
        return True

    # -- start ------------------------------------------------------------------------------
    async def _receive_start(self) -> StartRequest | ReconnectRequest | None:
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
            request = parse_opening(text, self._limits)
            if isinstance(request, ReconnectRequest) and self._tickets is None:
                raise ProtocolViolationError("this server does not resume takes: start a new one", name="type")
            return request
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
        path = self._path_for(codec)
        try:
            await asyncio.to_thread(recorder.start_recording, path)
        except MicrecError as exc:
            server_side = isinstance(exc, OSError) and not isinstance(exc, ValueError)
            await self.refuse(CLOSE_SERVER_ERROR if server_side else CLOSE_POLICY, str(exc))
            return None
        self.recorder, self.stream, self.path = recorder, backend.stream, path
        started = _started(path, codec, recorder)
        if self._tickets is not None:
            started["ticket"] = self._tickets.issue(path.name, self.first or path.name, self.part)
        if self._continues is not None:
            started.update(self._reconnected(self._base_frames, False))  # the client resends from here
            self._grant_new_part_backlog(self.stream)
        await self._send(started)
        return path

    def _path_for(self, codec: AudioEncoder) -> Path:
        """A new take's path; for a take continued from another process, its next part's."""
        ticket, request = self._continues, self._reconnect
        if ticket is None or request is None:
            return self._new_path(codec)
        path, self.part = free_part(self._new_path, codec, ticket.first, ticket.part + 1)
        self.first, self._base_frames = ticket.first, request.acked
        log.info("micrec.web: take %s goes on here as part %d (%s), from frame %d", ticket.name, self.part,
                 path.name, request.acked)
        return path

    def _grant_new_part_backlog(self, stream: SocketStream | None) -> None:
        """The backlog of a take continued here: what the client holds, capped by the ticket's age."""
        assert self._tickets is not None and self._continues is not None and self._reconnect is not None
        assert stream is not None
        cap = (self._tickets.age(self._continues) + self._limits.burst_seconds) * stream.rate
        stream.pacer.grant(0, int(min(self._reconnect.sent - self._reconnect.acked, cap)))

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
            stream.pacer.stop()  # no audio is due while paused
            recorder.pause_recording()
        elif command == "resume":
            recorder.resume_recording()
            stream.paused = False
            stream.pacer.start()
            self._last_audio = time.monotonic()
        return command == "stop"

    async def _send_loop(self, receiver: asyncio.Task[BaseException | None]) -> None:
        while True:
            try:
                # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that comes as the
                # queue hands over an item, and a send loop cancelled at a reconnect lived on
                # beside the new one (taking the end-of-take marker: a close 20 s late).
                async with asyncio.timeout(LEVEL_INTERVAL):
                    message = await self._outbox.get()
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
        # frames: what the server holds of the take, for the page to let go of its copy.
        return {"type": "level", "current": amplitude.current, "max": amplitude.max,
                "duration_ms": round(stream.recorded_ms), "frames": self._base_frames + stream.received_frames}

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


async def _close_quietly(websocket: WebSocket) -> None:
    """Close a connection the take no longer uses (replaced by a reconnect)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(CLOSE_GOING_AWAY, "replaced by a new connection"), SEND_TIMEOUT)


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
