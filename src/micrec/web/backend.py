"""The browser socket's capture backend: :mod:`micrec.backends.pushed` with the web's limits.

Kept so that ``micrec.web.backend.SocketBackend`` (and ``SocketStream``) go on working; the
code that re-blocks and checks pushed audio lives in :mod:`micrec.backends.pushed`, shared with
:mod:`micrec.flet`'s web path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..backends.pushed import BLOCK_MS, DEVICE_ID, PushedStream, PushLimits
from ..backends.pushed import PushedBackend as _PushedBackend
from .errors import LimitExceededError
from .protocol import Limits

__all__ = ["BLOCK_MS", "DEVICE_ID", "SocketBackend", "SocketStream"]

#: The open stream of a :class:`SocketBackend`; fed by the connection handler.
SocketStream = PushedStream


class SocketBackend(_PushedBackend):
    """A capture backend whose one device is a browser's microphone on a WebSocket.

    Parameters
    ----------
    rate, channels : int
        The format the client sends (its AudioContext rate, 1 or 2 channels).
    limits : Limits, optional
        The server's limits (default :class:`Limits()`); a breach raises
        :class:`~micrec.web.errors.LimitExceededError`.
    clock : callable, optional
        Monotonic seconds, for the real-time check (tests may pass their own).
    block_ms : int
        Length of the blocks handed to the pipeline (default :data:`BLOCK_MS`).
    """

    name = "web"

    def __init__(self, rate: int, channels: int, limits: Limits | None = None, *,
                 clock: Callable[[], float] = time.monotonic, block_ms: int = BLOCK_MS) -> None:
        web_limits = limits or Limits()
        super().__init__(rate, channels, PushLimits(web_limits.max_take_seconds, web_limits.burst_seconds),
                         clock=clock, block_ms=block_ms, limit_error=LimitExceededError)
        self.web_limits = web_limits
