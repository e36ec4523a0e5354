"""Who may record: per-page-load tokens and the Origin check.

Tokens are signed, not stored: itsdangerous' :class:`~itsdangerous.TimestampSigner` signs a
random nonce with the time it was issued (``nonce.timestamp.signature``, HMAC-SHA1 over a key
derived from the secret), so every worker of a multi-process server that shares the secret
accepts a token any of them issued. Each page load gets a fresh one; it expires after ``ttl``
seconds. The Host header is checked by Starlette's ``TrustedHostMiddleware`` (see
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

__all__ = ["DEFAULT_HOSTS", "TokenSigner", "origin_allowed"]

#: Host names a server bound to the loopback interface answers to.
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")
_SALT = "micrec.web.session-token"


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
        self._signer = _signer_class()(secret or secrets.token_bytes(32), salt=_SALT, clock=clock)

    def issue(self) -> str:
        """A new token for one page load."""
        return str(self._signer.sign(secrets.token_urlsafe(12)).decode())

    def check(self, token: str | None) -> str | None:
        """None when ``token`` is valid, else why not (for the close reason)."""
        from itsdangerous import BadSignature, SignatureExpired

        if not token:
            return "no session token: reload the page"
        try:
            self._signer.unsign(token, max_age=self.ttl)
        except SignatureExpired:
            return "session token expired: reload the page"
        except BadSignature:
            return "invalid session token: reload the page"
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
