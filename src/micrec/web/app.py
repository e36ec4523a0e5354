"""The ASGI app: the recorder page, its scripts, the takes, and the recording WebSocket.

Routes
------
``GET /``                 the recorder page, with a fresh session token and the visitor cookie
``GET /static/...``       the JavaScript module, the AudioWorklet, the style sheet
``GET /api/takes``        the visitor's takes as JSON (``?token=``, or the cookie alone)
``GET /takes/{name}``     one of the visitor's takes, to play or (``?download=1``) to save
``WS  /ws``               one take per connection (``?token=``; see :mod:`micrec.web.protocol`)

Takes are private: each belongs to the visitor who recorded it (see :mod:`micrec.web.security`),
and the routes answer with the asking visitor's takes only; another visitor's take is a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import encoders
from .._lazy import require
from ..types import AudioEncoder, AudioRecorderStateChangeEvent
from .errors import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_LATER, LimitExceededError, ServerShutdownError
from .protocol import Limits
from .resume import TakeRegistry, TicketSigner
from .security import COOKIE_NAME, DEFAULT_HOSTS, TokenSigner, VisitorCookie, new_visitor, origin_allowed
from .takes import StoredTake, TakeStore, open_store

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

    from .handler import TakeConnection
    from .takes import Usage

__all__ = ["ENV_PREFIX", "SHUTDOWN_REASON", "WebConfig", "app_from_env", "create_app"]

log = logging.getLogger("micrec.web")

STATIC = Path(__file__).with_name("static")
#: Environment variables :func:`app_from_env` reads (``MICREC_WEB_DIR`` etc.).
ENV_PREFIX = "MICREC_WEB_"
_CONFIG_SLOT = "__MICREC_CONFIG__"
_BASE_SLOT = "__MICREC_BASE__"
_CSP = ("default-src 'self'; connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
StateHandler = Callable[[AudioRecorderStateChangeEvent], Any]
#: What every open take's browser is told when the server shuts down.
SHUTDOWN_REASON = "the server is shutting down; the take was saved"
#: Seconds one take may need to be finalized at shutdown before the server stops waiting for it.
_SHUTDOWN_WAIT = 30.0
#: Seconds between two looks at an open take's size against the byte quotas.
QUOTA_CHECK_SECONDS = 0.5
DEFAULT_SETTINGS: dict[str, Any] = {"audio_encoder": "wav", "sample_rate": 48000, "channels_num": 1,
                                    "bit_rate": 128000, "auto_gain": False, "suppress_noise": False,
                                    "cancel_echo": False}


@dataclass
class WebConfig:
    """Everything :func:`create_app` is told.

    Attributes
    ----------
    directory : path
        Where takes are written (created if missing); with an S3 ``store``, where they are
        spooled while they are recorded.
    limits : Limits
        Frame size, rates, channels, take length and concurrency limits.
    allowed_hosts : tuple of str
        Host names the server answers to (Host header); ``"*"`` allows any.
    allowed_origins : tuple of str
        Page origins allowed to open the WebSocket besides the server's own.
    secret : bytes, optional
        Key that signs tokens and visitor cookies, shared by all workers and hosts; random per
        process by default (then visitors lose their takes at every restart).
    defaults : dict
        Recorder settings for a ``start`` message that leaves them out, and the page's defaults.
    on_state_changed : callable, optional
        Called with every take's :class:`~micrec.AudioRecorderStateChangeEvent` (``e.path``
        names the take, ``e.error`` the fault that ended it), on a micrec thread.
    handle_signals : bool
        On SIGTERM/SIGINT, first end and save every open take (each browser gets the close
        reason :data:`SHUTDOWN_REASON`), then pass the signal on to the server's own handler.
        ASGI servers close WebSockets without a reason when they shut down; this comes first.
        Needs the ASGI lifespan and a server whose event loop runs in the main thread
        (uvicorn's does); ``micrec serve`` turns it on. Default off.
    store : TakeStore or str, optional
        Where takes are kept: None (``directory``), ``"s3://BUCKET/PREFIX"`` (credentials and
        endpoint from the ``AWS_*`` environment; see :mod:`micrec.web.s3store`), or any
        :class:`~micrec.web.takes.TakeStore`.
    """

    directory: Path
    limits: Limits = field(default_factory=Limits)
    allowed_hosts: tuple[str, ...] = DEFAULT_HOSTS
    allowed_origins: tuple[str, ...] = ()
    secret: bytes | None = None
    defaults: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    on_state_changed: StateHandler | None = None
    handle_signals: bool = False
    store: TakeStore | str | None = None


def create_app(directory: str | os.PathLike[str] = "recordings", *, limits: Limits | None = None,
               allowed_hosts: tuple[str, ...] = DEFAULT_HOSTS, allowed_origins: tuple[str, ...] = (),
               secret: bytes | None = None, defaults: dict[str, Any] | None = None,
               on_state_changed: StateHandler | None = None, handle_signals: bool = False,
               store: TakeStore | str | None = None) -> Starlette:
    """The micrec.web ASGI application (Starlette).

    Parameters are those of :class:`WebConfig`. Mount it into FastAPI or any ASGI app, or run
    it with uvicorn (``micrec serve`` does).

    Raises
    ------
    ImportError
        Starlette is missing (``pip install 'micrec[web]'``), or boto3 for an S3 store
        (``pip install 'micrec[s3]'``).
    OutputError
        ``directory`` cannot be created, or the bucket cannot be reached.
    InvalidConfigError
        ``store`` is neither a directory, an ``s3://`` URL nor a TakeStore.
    """
    config = WebConfig(Path(directory), limits or Limits(), tuple(allowed_hosts), tuple(allowed_origins),
                       secret, {**DEFAULT_SETTINGS, **(defaults or {})}, on_state_changed, handle_signals,
                       store)
    return _Server(config).app()


def app_from_env() -> Starlette:
    """The app configured from ``MICREC_WEB_*`` variables, for ``uvicorn --factory`` workers.

    ``MICREC_WEB_DIR`` (recordings directory), ``MICREC_WEB_STORE`` (``s3://BUCKET/PREFIX``),
    ``MICREC_WEB_SECRET`` (hex key shared by all workers and hosts: required for more than one,
    and for visitors to keep their takes across restarts), ``MICREC_WEB_HOSTS`` and
    ``MICREC_WEB_ORIGINS`` (comma-separated), ``MICREC_WEB_DEFAULTS`` (JSON recorder settings),
    ``MICREC_WEB_LIMITS`` (JSON :class:`Limits` fields), ``MICREC_WEB_HANDLE_SIGNALS`` (``1``:
    see ``handle_signals``), ``MICREC_WEB_DROP_LIMIT`` (seconds: ``Limits.drop_seconds``).
    """
    env = os.environ
    secret = env.get(ENV_PREFIX + "SECRET")
    hosts = _split(env.get(ENV_PREFIX + "HOSTS")) or DEFAULT_HOSTS
    fields = json.loads(env.get(ENV_PREFIX + "LIMITS") or "{}")
    drop = env.get(ENV_PREFIX + "DROP_LIMIT")
    if drop is not None:
        fields["drop_seconds"] = float(drop)
    return create_app(env.get(ENV_PREFIX + "DIR", "recordings"), limits=Limits(**fields), allowed_hosts=hosts,
                      allowed_origins=_split(env.get(ENV_PREFIX + "ORIGINS")),
                      secret=bytes.fromhex(secret) if secret else None,
                      defaults=json.loads(env.get(ENV_PREFIX + "DEFAULTS") or "{}"),
                      handle_signals=env.get(ENV_PREFIX + "HANDLE_SIGNALS") == "1",
                      store=env.get(ENV_PREFIX + "STORE") or None)


class _Server:
    """The state shared by the routes of one app: takes, tokens, and the open-take count."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.store: TakeStore = open_store(config.store, config.directory)
        self.tokens = TokenSigner(config.secret)
        self.cookies = VisitorCookie(self.tokens.secret)
        # Takes survive a dropped connection: this process's open takes, and tickets any
        # process sharing the secret can read (micrec.web.resume).
        self.takes = TakeRegistry()
        self.tickets = TicketSigner(self.tokens.secret)
        self.connections: set[TakeConnection] = set()
        self.closing: str | None = None
        self._page = (STATIC / "index.html").read_text(encoding="utf-8")

    async def end_takes(self, reason: str = SHUTDOWN_REASON) -> int:
        """End and save every open take; returns how many connections were ended.

        Each browser gets the ``stopped`` summary and a close frame (1001) with ``reason``;
        connections still waiting for ``start`` are refused with it, and so is every new one.
        """
        self.closing = reason
        takes = list(self.connections)
        results = await asyncio.gather(*(self._end_one(take, reason) for take in takes), return_exceptions=True)
        for take, result in zip(takes, results, strict=True):
            if isinstance(result, BaseException):
                log.error("micrec.web: ending take %s at shutdown failed: %r", take.name, result)
        return len(takes)

    async def _end_one(self, take: TakeConnection, reason: str) -> None:
        error = ServerShutdownError(reason, name="shutdown")
        try:
            await asyncio.wait_for(take.end_for_shutdown(error), _SHUTDOWN_WAIT)
        except TimeoutError:
            log.error("micrec.web: take %s was not finalized within %g s of the shutdown", take.name,
                      _SHUTDOWN_WAIT)

    def app(self) -> Starlette:
        require("starlette", extra="web")
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        from starlette.routing import Mount, Route, WebSocketRoute
        from starlette.staticfiles import StaticFiles

        hosts = [h if h == "*" or ":" not in h else f"[{h}]" for h in self.config.allowed_hosts]
        routes = [
            Route("/", self.page),
            Route("/api/takes", self.list_takes),
            Route("/takes/{name}", self.take_file),
            WebSocketRoute("/ws", self.websocket),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
        app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
                        lifespan=self.lifespan)
        app.state.micrec = self  # for tests and debugging: the open connections, end_takes()
        return app

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        hook = _SaveTakesFirst(self) if self.config.handle_signals else None
        if hook is not None:
            hook.install()
        try:
            yield
        finally:
            if hook is not None:
                hook.restore()
            self.store.close()

    # -- pages and files --------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        visitor = self.cookies.visitor(request.cookies.get(COOKIE_NAME)) or new_visitor()
        limits = self.config.limits
        page_config = {"token": self.tokens.issue(visitor), "defaults": self.config.defaults,
                       "encoders": _encoder_support(), "limits": {"max_take_seconds": limits.max_take_seconds,
                                                                  "drop_seconds": limits.drop_seconds}}
        blob = json.dumps(page_config).replace("<", "\\u003c")
        # The page's URLs are relative to its base, so the app works mounted under a prefix.
        root = request.scope.get("root_path", "").rstrip("/") + "/"
        base = html.escape(root)
        response = HTMLResponse(self._page.replace(_CONFIG_SLOT, blob).replace(_BASE_SLOT, base),
                                headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP,
                                         "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})
        # Issued afresh at every page load: a visitor who comes back within 30 days stays the same.
        response.set_cookie(COOKIE_NAME, self.cookies.value(visitor), max_age=int(self.cookies.ttl), path=root,
                            httponly=True, samesite="lax", secure=request.url.scheme == "https")
        return response

    async def list_takes(self, request: Request) -> Response:
        from starlette.responses import JSONResponse, PlainTextResponse

        visitor, reason = self._visitor(request)
        if visitor is None:
            return PlainTextResponse(reason, status_code=403)
        listed = await asyncio.to_thread(self.store.list, visitor)
        takes = [{"name": t.name, "size": t.size, "mtime": t.mtime} for t in listed]
        return JSONResponse(takes, headers={"Cache-Control": "no-store"})

    async def take_file(self, request: Request) -> Response:
        from starlette.responses import FileResponse, PlainTextResponse

        visitor, reason = self._visitor(request)
        if visitor is None:
            return PlainTextResponse(reason, status_code=403)
        take = await asyncio.to_thread(self.store.open, request.path_params["name"], visitor)
        if take is None:
            return PlainTextResponse("no such take", status_code=404)
        download = request.query_params.get("download") == "1"
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if take.path is None:
            return _streamed(request, take, download, headers)
        return FileResponse(take.path, filename=take.name if download else None, headers=headers)

    def _visitor(self, request: Request) -> tuple[str, None] | tuple[None, str]:
        """Who asks: the visitor the ``?token=`` names, else the one the cookie names."""
        token = request.query_params.get("token")
        if token is None:
            visitor = self.cookies.visitor(request.cookies.get(COOKIE_NAME))
            if visitor is not None:
                return visitor, None
        return self.tokens.visitor(token)

    # -- the recording socket ---------------------------------------------------------------
    async def websocket(self, websocket: WebSocket) -> None:
        from .handler import TakeConnection

        await websocket.accept()
        config = self.config
        visitor, _ = self.tokens.visitor(websocket.query_params.get("token"))
        paths: list[Path] = []

        def new_path(codec: AudioEncoder, name: str | None = None) -> Path:
            assert visitor is not None  # refused below otherwise
            paths.append(self.store.new_take(codec, visitor, name))
            return paths[-1]

        take = TakeConnection(websocket, new_path, config.limits, config.defaults, self._on_state_changed,
                              admit=self._busy, takes=self.takes, tickets=self.tickets)
        refusal = self._refusal(websocket)
        if refusal is not None or visitor is None:
            await take.refuse(*(refusal or (CLOSE_POLICY, "no session token: reload the page")))
            return
        self.connections.add(take)  # from now on a shutdown tells it why
        watcher = None
        try:
            usage = await asyncio.to_thread(self.store.usage, visitor)
            # A shutdown that came meanwhile is told by run() (it waits for this take to end).
            refusal = None if self.closing is not None else self._over_quota(usage)
            if refusal is not None and websocket.query_params.get("reconnect") == "1" \
                    and self._over_quota(usage, count_takes=False) is None:
                # A dropped take coming back is no new take: the count quota does not hold it
                # back (the take it continues may be the one that reached it). The socket must
                # then go on with a take (handler: a plain start is refused with this reason).
                take.fresh_refusal, refusal = refusal, None
            if refusal is not None:
                self.connections.discard(take)
                await take.refuse(*refusal)
                return
            watcher = asyncio.ensure_future(self._watch_quota(take, paths, usage))
            await take.run()
        finally:
            if watcher is not None:
                watcher.cancel()
            self.connections.discard(take)
            for path in paths:
                await asyncio.to_thread(self.store.finish, path)

    def _on_state_changed(self, event: AudioRecorderStateChangeEvent) -> None:
        """Tell the store a take's file exists (it tags the owner), then the app's own listener."""
        if event.data == "recording" and event.path:
            self.store.opened(Path(event.path))
        if self.config.on_state_changed is not None:
            self.config.on_state_changed(event)

    def _over_quota(self, usage: Usage, growing: int = 0, *, count_takes: bool = True) -> tuple[int, str] | None:
        """(close code, reason) when a visitor with ``usage`` (plus ``growing`` bytes of an open
        take) may record no more, else None; ``count_takes=False`` leaves the count of takes out."""
        limits = self.config.limits
        if limits.max_visitor_takes is not None and count_takes and not growing \
                and usage.takes >= limits.max_visitor_takes:
            return CLOSE_POLICY, (f"quota: you have {usage.takes} takes, the most one visitor may keep "
                                  f"(limit {limits.max_visitor_takes}); ask the operator to remove some")
        if limits.max_visitor_bytes is not None and usage.bytes + growing >= limits.max_visitor_bytes:
            return CLOSE_POLICY, (f"quota: your takes hold {_size(usage.bytes + growing)}, the most one "
                                  f"visitor may keep (limit {_size(limits.max_visitor_bytes)})")
        if limits.max_store_bytes is not None and usage.store_bytes + growing >= limits.max_store_bytes:
            return CLOSE_POLICY, (f"quota: the server's store is full ({_size(usage.store_bytes + growing)}, "
                                  f"limit {_size(limits.max_store_bytes)}); try again when the operator has "
                                  "made room")
        return None

    async def _watch_quota(self, take: TakeConnection, paths: list[Path], usage: Usage) -> None:
        """End the take, saved, once its file would take the visitor or the store over a byte quota."""
        limits = self.config.limits
        if limits.max_visitor_bytes is None and limits.max_store_bytes is None:
            return
        while True:
            await asyncio.sleep(QUOTA_CHECK_SECONDS)
            stream = take.stream
            if stream is None or not paths:
                continue
            try:
                growing = sum(path.stat().st_size for path in paths)
            except FileNotFoundError:  # finished and uploaded meanwhile
                return
            over = self._over_quota(usage, growing)
            if over is not None:
                stream.fail(LimitExceededError(over[1] + "; the take was saved", value=growing, name="quota"))
                return

    @property
    def recording(self) -> int:
        """Connections whose take is admitted (recording, or being finalized)."""
        return sum(1 for take in self.connections if take.admitted)

    def _busy(self) -> str | None:
        """Why a new take cannot start now (all take places used), else None."""
        recording, limit = self.recording, self.config.limits.max_takes
        if recording >= limit:
            return f"server busy: {recording} takes recording (limit {limit}); try again later"
        return None

    def _refusal(self, websocket: WebSocket) -> tuple[int, str] | None:
        """(close code, reason) when this connection may not record, else None."""
        if self.closing is not None:
            return CLOSE_GOING_AWAY, self.closing
        origin = websocket.headers.get("origin")
        if not origin_allowed(origin, websocket.headers.get("host"), self.config.allowed_origins):
            return CLOSE_POLICY, f"origin {origin!r} is not allowed to record here"
        _, reason = self.tokens.visitor(websocket.query_params.get("token"))
        if reason is not None:
            return CLOSE_POLICY, reason
        waiting, limit = sum(1 for take in self.connections if take.pending), self.config.limits.max_pending
        if waiting >= limit:
            return CLOSE_TRY_LATER, (f"server busy: {waiting} connections waiting to start (limit {limit}); "
                                     "try again later")
        busy = self._busy()
        return None if busy is None else (CLOSE_TRY_LATER, busy)



class _SaveTakesFirst:
    """SIGTERM/SIGINT handlers that save every open take, then hand the signal to the server.

    Installed over the server's own handlers (uvicorn's set ``should_exit``) once the server
    runs. A second signal while the takes are being saved is ignored: stopping then could
    leave half-written files.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}
        self._saving = False
        self._task: asyncio.Task[None] | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("micrec.web: handle_signals needs the server's event loop in the main thread; "
                        "open takes are not saved before a signal stops the server")
            return
        self._loop = asyncio.get_running_loop()
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        # This runs between two bytecodes of whatever the loop's thread was doing: only set a
        # flag and hand the work to the loop the thread-safe way.
        if self._saving:
            return
        self._saving = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_saving, signum)

    def _start_saving(self, signum: int) -> None:
        takes = len(self._server.connections)
        if takes:
            log.warning("micrec.web: %s: saving %d open take(s) before shutting down (further signals "
                        "are ignored until they are saved)", signal.Signals(signum).name, takes)
        self._task = asyncio.ensure_future(self._save_then_pass_on(signum))

    async def _save_then_pass_on(self, signum: int) -> None:
        try:
            await self._server.end_takes(SHUTDOWN_REASON)
        finally:
            previous = self._previous.get(signum, signal.SIG_DFL)
            if callable(previous):
                # The server's own handler shuts it down; this one stays installed and keeps
                # ignoring further signals (to uvicorn a second Ctrl-C would mean "cancel
                # everything now", with a traceback) until the server has stopped.
                previous(signum, None)
            else:
                self.restore()
                if previous == signal.SIG_DFL:
                    signal.raise_signal(signum)


def _streamed(request: Request, take: StoredTake, download: bool, headers: dict[str, str]) -> Response:
    """A take read from the store, whole or (one ``Range: bytes=``) in part."""
    import mimetypes

    from starlette.responses import PlainTextResponse, StreamingResponse

    headers = {**headers, "Accept-Ranges": "bytes"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{take.name}"'
    media_type = mimetypes.guess_type(take.name)[0] or "application/octet-stream"
    span = _byte_range(request.headers.get("range"), take.size)
    if span is None:
        return StreamingResponse(take.read(), media_type=media_type,
                                 headers={**headers, "Content-Length": str(take.size)})
    start, end = span
    if start > end:
        return PlainTextResponse("range not satisfiable", status_code=416,
                                 headers={"Content-Range": f"bytes */{take.size}"})
    return StreamingResponse(take.read(start, end), status_code=206, media_type=media_type,
                             headers={**headers, "Content-Length": str(end - start + 1),
                                      "Content-Range": f"bytes {start}-{end}/{take.size}"})


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` of a single ``bytes=`` range (start > end: unsatisfiable), else None (whole)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if not first:  # the last N bytes
            return max(0, size - int(last)), size - 1
        return int(first), min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None


def _size(count: int) -> str:
    """Bytes for people: 1.5 MiB."""
    if count < 1024:
        return f"{count} bytes"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _encoder_support() -> list[dict[str, Any]]:
    return [{"value": codec.value, "supported": encoders.unavailable_reason(codec) is None}
            for codec in AudioEncoder]


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())
