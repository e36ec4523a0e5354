"""Who may record and whose takes are whose: visitors, per-page-load tokens, the Origin check.

A *visitor* is a browser profile: a random id kept in a signed, HttpOnly, SameSite=Lax cookie
(:class:`VisitorCookie`, valid 30 days from the last page load). Each page load gets a token
that names the visitor (``visitor.timestamp.signature``); the WebSocket and the takes routes
are told who is asking by it (or, for the takes routes, by the cookie alone).

Both are signed, not stored: itsdangerous' :class:`~itsdangerous.TimestampSigner` signs the
visitor id with the time it was issued (HMAC-SHA1 over a key derived from the secret, one salt
for tokens and another for cookies), so every worker and every host that shares the secret
accepts what any of them issued. A token expires after ``ttl`` seconds. The Host header is
checked by Starlette's ``TrustedHostMiddleware`` (see
:mod:`micrec.web.app`); the Origin of a WebSocket, which no Starlette middleware checks, here.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from .._lazy import require

__all__ = ["COOKIE_NAME", "DEFAULT_HOSTS", "TokenSigner", "VisitorCookie", "new_visitor", "origin_allowed"]

#: Host names a server bound to the loopback interface answers to.
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")
_SALT = "micrec.web.session-token"
_COOKIE_SALT = "micrec.web.visitor"
#: The visitor cookie's name.
COOKIE_NAME = "micrec_visitor"
#: Seconds a visitor cookie stays valid after the page last issued it (30 days).
VISITOR_TTL = 30 * 24 * 3600


def new_visitor() -> str:
    """A fresh visitor id: 16 random URL-safe characters (no dot, so it signs unambiguously)."""
    return secrets.token_urlsafe(12)


class TokenSigner:
    """Issues and checks session tokens.

    Parameters
    ----------
    secret : bytes, optional
        The signing key; all workers of one server must share it. Default: random per process.
    ttl : float
        Seconds a token stays valid (default 12 hours).
    clock : callable
        Wall-clock seconds (tokens outlive a process, so not monotonic).

    Raises
    ------
    ImportError
        itsdangerous is missing (``pip install 'micrec[web]'``).
    """

    def __init__(self, secret: bytes | None = None, *, ttl: float = 12 * 3600,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.secret = secret or secrets.token_bytes(32)
        self._signer = _signer_class()(self.secret, salt=_SALT, clock=clock)

    def issue(self, visitor: str | None = None) -> str:
        """A new token for one page load of ``visitor`` (default: a new visitor)."""
        return str(self._signer.sign(visitor or new_visitor()).decode())

    def check(self, token: str | None) -> str | None:
        """None when ``token`` is valid, else why not (for the close reason)."""
        return self.visitor(token)[1]

    def visitor(self, token: str | None) -> tuple[str, None] | tuple[None, str]:
        """``(visitor, None)`` for a valid token, else ``(None, why not)``."""
        from itsdangerous import BadSignature, SignatureExpired

        if not token:
            return None, "no session token: reload the page"
        try:
            return self._signer.unsign(token, max_age=self.ttl).decode(), None
        except SignatureExpired:
            return None, "session token expired: reload the page"
        except BadSignature:
            return None, "invalid session token: reload the page"


class VisitorCookie:
    """Issues and reads the visitor cookie (same secret as :class:`TokenSigner`).

    Parameters
    ----------
    secret : bytes
        The signing key shared by every worker and host.
    ttl : float
        Seconds the cookie stays valid after it was last issued (default 30 days).
    clock : callable
        Wall-clock seconds.
    """

    def __init__(self, secret: bytes, *, ttl: float = VISITOR_TTL, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self._signer = _signer_class()(secret, salt=_COOKIE_SALT, clock=clock)

    def value(self, visitor: str) -> str:
        """The cookie's value for ``visitor``, signed now."""
        return str(self._signer.sign(visitor).decode())

    def visitor(self, value: str | None) -> str | None:
        """The visitor a cookie value names, or None (missing, forged or older than ``ttl``)."""
        from itsdangerous import BadSignature

        if not value:
            return None
        try:
            return str(self._signer.unsign(value, max_age=self.ttl).decode())
        except BadSignature:  # SignatureExpired is one
            return None


@functools.cache
def _signer_class() -> Any:
    itsdangerous = require("itsdangerous", extra="web")

    class ClockedSigner(itsdangerous.TimestampSigner):  # type: ignore[name-defined]
        """A TimestampSigner on an injectable clock (its documented ``get_timestamp`` hook)."""

        def __init__(self, secret: bytes, *, salt: str, clock: Callable[[], float]) -> None:
            super().__init__(secret, salt=salt)
            self._clock = clock

        def get_timestamp(self) -> int:
            return int(self._clock())

    return ClockedSigner


def origin_allowed(origin: str | None, host_header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a WebSocket from page ``origin`` may connect to this server.

    Allowed: an origin listed in ``allowed`` (``scheme://host[:port]``), or the server's own
    origin (the origin's host and port equal the request's Host header). Browsers always send
    Origin on a WebSocket; a request without one is refused. The Host header itself is checked
    against the server's host names by the app (against DNS rebinding).
    """
    if not origin:
        return False
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host_header) and parts.netloc == host_header
