"""The ASGI app: the recorder page, its scripts, the takes, and the recording WebSocket.

Routes
------
``GET /``                 the recorder page, with a fresh session token
``GET /static/...``       the JavaScript module, the AudioWorklet, the style sheet
``GET /api/takes``        the takes as JSON (``?token=``)
``GET /takes/{name}``     one take, to play or (``?download=1``) to save (``?token=``)
``WS  /ws``               one take per connection (``?token=``; see :mod:`micrec.web.protocol`)
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import encoders
from .._lazy import require
from ..types import AudioEncoder, AudioRecorderStateChangeEvent
from .errors import CLOSE_POLICY, CLOSE_TRY_LATER
from .protocol import Limits
from .security import DEFAULT_HOSTS, TokenSigner, origin_allowed
from .takes import TakeStore

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

__all__ = ["ENV_PREFIX", "WebConfig", "app_from_env", "create_app"]

STATIC = Path(__file__).with_name("static")
#: Environment variables :func:`app_from_env` reads (``MICREC_WEB_DIR`` etc.).
ENV_PREFIX = "MICREC_WEB_"
_CONFIG_SLOT = "__MICREC_CONFIG__"
_BASE_SLOT = "__MICREC_BASE__"
_CSP = ("default-src 'self'; connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
StateHandler = Callable[[AudioRecorderStateChangeEvent], Any]
DEFAULT_SETTINGS: dict[str, Any] = {"audio_encoder": "wav", "sample_rate": 48000, "channels_num": 1,
                                    "bit_rate": 128000, "auto_gain": False, "suppress_noise": False,
                                    "cancel_echo": False}


@dataclass
class WebConfig:
    """Everything :func:`create_app` is told.

    Attributes
    ----------
    directory : path
        Where takes are written (created if missing).
    limits : Limits
        Frame size, rates, channels, take length and concurrency limits.
    allowed_hosts : tuple of str
        Host names the server answers to (Host header); ``"*"`` allows any.
    allowed_origins : tuple of str
        Page origins allowed to open the WebSocket besides the server's own.
    secret : bytes, optional
        Token signing key shared by all workers; random per process by default.
    defaults : dict
        Recorder settings for a ``start`` message that leaves them out, and the page's defaults.
    on_state_changed : callable, optional
        Called with every take's :class:`~micrec.AudioRecorderStateChangeEvent` (``e.path``
        names the take, ``e.error`` the fault that ended it), on a micrec thread.
    """

    directory: Path
    limits: Limits = field(default_factory=Limits)
    allowed_hosts: tuple[str, ...] = DEFAULT_HOSTS
    allowed_origins: tuple[str, ...] = ()
    secret: bytes | None = None
    defaults: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    on_state_changed: StateHandler | None = None


def create_app(directory: str | os.PathLike[str] = "recordings", *, limits: Limits | None = None,
               allowed_hosts: tuple[str, ...] = DEFAULT_HOSTS, allowed_origins: tuple[str, ...] = (),
               secret: bytes | None = None, defaults: dict[str, Any] | None = None,
               on_state_changed: StateHandler | None = None) -> Starlette:
    """The micrec.web ASGI application (Starlette).

    Parameters are those of :class:`WebConfig`. Mount it into FastAPI or any ASGI app, or run
    it with uvicorn (``micrec serve`` does).

    Raises
    ------
    ImportError
        Starlette is missing (``pip install 'micrec[web]'``).
    OutputError
        ``directory`` cannot be created.
    """
    config = WebConfig(Path(directory), limits or Limits(), tuple(allowed_hosts), tuple(allowed_origins),
                       secret, {**DEFAULT_SETTINGS, **(defaults or {})}, on_state_changed)
    return _Server(config).app()


def app_from_env() -> Starlette:
    """The app configured from ``MICREC_WEB_*`` variables, for ``uvicorn --factory`` workers.

    ``MICREC_WEB_DIR`` (recordings directory), ``MICREC_WEB_SECRET`` (hex key shared by all
    workers: required for more than one), ``MICREC_WEB_HOSTS`` and ``MICREC_WEB_ORIGINS``
    (comma-separated), ``MICREC_WEB_DEFAULTS`` (JSON recorder settings).
    """
    env = os.environ
    secret = env.get(ENV_PREFIX + "SECRET")
    hosts = _split(env.get(ENV_PREFIX + "HOSTS")) or DEFAULT_HOSTS
    return create_app(env.get(ENV_PREFIX + "DIR", "recordings"), allowed_hosts=hosts,
                      allowed_origins=_split(env.get(ENV_PREFIX + "ORIGINS")),
                      secret=bytes.fromhex(secret) if secret else None,
                      defaults=json.loads(env.get(ENV_PREFIX + "DEFAULTS") or "{}"))


class _Server:
    """The state shared by the routes of one app: takes, tokens, and the open-take count."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.store = TakeStore(config.directory)
        self.tokens = TokenSigner(config.secret)
        self.active_takes = 0
        self._page = (STATIC / "index.html").read_text(encoding="utf-8")

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
        return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])

    # -- pages and files --------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        page_config = {"token": self.tokens.issue(), "defaults": self.config.defaults,
                       "encoders": _encoder_support(), "limits": {"max_take_seconds":
                                                                  self.config.limits.max_take_seconds}}
        blob = json.dumps(page_config).replace("<", "\\u003c")
        # The page's URLs are relative to its base, so the app works mounted under a prefix.
        base = html.escape(request.scope.get("root_path", "").rstrip("/") + "/")
        return HTMLResponse(self._page.replace(_CONFIG_SLOT, blob).replace(_BASE_SLOT, base),
                            headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP,
                                     "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    async def list_takes(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        denied = self._token_denied(request)
        if denied is not None:
            return denied
        takes = [{"name": t.name, "size": t.size, "mtime": t.mtime} for t in self.store.list()]
        return JSONResponse(takes, headers={"Cache-Control": "no-store"})

    async def take_file(self, request: Request) -> Response:
        from starlette.responses import FileResponse, PlainTextResponse

        denied = self._token_denied(request)
        if denied is not None:
            return denied
        path = self.store.find(request.path_params["name"])
        if path is None:
            return PlainTextResponse("no such take", status_code=404)
        download = request.query_params.get("download") == "1"
        return FileResponse(path, filename=path.name if download else None,
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    def _token_denied(self, request: Request) -> Response | None:
        from starlette.responses import PlainTextResponse

        reason = self.tokens.check(request.query_params.get("token"))
        return None if reason is None else PlainTextResponse(reason, status_code=403)

    # -- the recording socket ---------------------------------------------------------------
    async def websocket(self, websocket: WebSocket) -> None:
        from .handler import TakeConnection

        await websocket.accept()
        config = self.config
        take = TakeConnection(websocket, self.store.new_path, config.limits, config.defaults,
                              config.on_state_changed)
        refusal = self._refusal(websocket)
        if refusal is not None:
            await take.refuse(*refusal)
            return
        self.active_takes += 1
        try:
            await take.run()
        finally:
            self.active_takes -= 1

    def _refusal(self, websocket: WebSocket) -> tuple[int, str] | None:
        """(close code, reason) when this connection may not record, else None."""
        origin = websocket.headers.get("origin")
        if not origin_allowed(origin, websocket.headers.get("host"), self.config.allowed_origins):
            return CLOSE_POLICY, f"origin {origin!r} is not allowed to record here"
        reason = self.tokens.check(websocket.query_params.get("token"))
        if reason is not None:
            return CLOSE_POLICY, reason
        if self.active_takes >= self.config.limits.max_takes:
            return CLOSE_TRY_LATER, (f"server busy: {self.active_takes} takes recording (limit "
                                     f"{self.config.limits.max_takes}); try again later")
        return None


def _encoder_support() -> list[dict[str, Any]]:
    return [{"value": codec.value, "supported": encoders.unavailable_reason(codec) is None}
            for codec in AudioEncoder]


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())
