"""Who may record: per-page-load tokens and the Origin check.

Tokens are signed, not stored (``nonce.issued.signature``, HMAC-SHA256), so every worker of a
multi-process server that shares the secret accepts a token any of them issued. Each page load
gets a fresh one; it expires after ``ttl`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

__all__ = ["DEFAULT_HOSTS", "TokenSigner", "origin_allowed"]

#: Host names a server bound to the loopback interface answers to.
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")


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
    """

    def __init__(self, secret: bytes | None = None, *, ttl: float = 12 * 3600,
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl = ttl
        self._clock = clock

    def issue(self) -> str:
        """A new token for one page load."""
        body = f"{secrets.token_urlsafe(12)}.{int(self._clock())}"
        return f"{body}.{self._sign(body)}"

    def check(self, token: str | None) -> str | None:
        """None when ``token`` is valid, else why not (for the close reason)."""
        if not token:
            return "no session token: reload the page"
        body, _, signature = token.rpartition(".")
        issued = body.rpartition(".")[2]
        if not body or not issued.isdigit() or not hmac.compare_digest(signature, self._sign(body)):
            return "invalid session token: reload the page"
        if self._clock() - int(issued) > self.ttl:
            return "session token expired: reload the page"
        return None

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()


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
