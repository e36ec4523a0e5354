"""Faults that end a browser take: the client went away or broke the protocol or a limit.

Each is a :class:`micrec.DeviceError` (the browser is the capture device), so an
``on_state_changed`` handler sees them as ``e.error`` like any other device fault. Each
carries the WebSocket close code the server sends (:attr:`close_code`).
"""

from __future__ import annotations

from typing import Any

from ..errors import DeviceError, DeviceLostError

__all__ = ["ClientGoneError", "LimitExceededError", "ProtocolViolationError", "ServerShutdownError",
           "WebCaptureError"]

# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_LATER = 1013


class WebCaptureError(DeviceError):
    """Base class of the faults of a browser capture stream."""

    close_code = CLOSE_POLICY

    def __init__(self, message: str, *, value: Any = None, name: str | None = None) -> None:
        super().__init__(message, value=value, name=name)


class ClientGoneError(WebCaptureError, DeviceLostError):
    """The browser disconnected (or went silent) in the middle of a take."""

    close_code = CLOSE_GOING_AWAY


class ProtocolViolationError(WebCaptureError, ValueError):
    """A frame or message the protocol does not allow (malformed audio, unknown command)."""

    close_code = CLOSE_INVALID_DATA


class LimitExceededError(ProtocolViolationError):
    """A frame, rate, channel count, take length or data rate over the server's limits."""

    close_code = CLOSE_POLICY

    def __init__(self, message: str, *, value: Any = None, name: str | None = None,
                 close_code: int = CLOSE_POLICY) -> None:
        super().__init__(message, value=value, name=name)
        self.close_code = close_code


class ServerShutdownError(WebCaptureError):
    """The server is shutting down (SIGTERM, Ctrl-C): the take was ended and saved."""

    close_code = CLOSE_GOING_AWAY
