"""The wire protocol between the recorder page and the server, and the server's limits.

One WebSocket carries one take (or, after a dropped connection, the rest of one)::

    client → server  text    {"type": "start", "rate": 48000, "channels": 1,
                              "audio_encoder": "wav", "sample_rate": 48000, "channels_num": 1,
                              "bit_rate": 128000, "auto_gain": false, "suppress_noise": false,
                              "cancel_echo": false, "until_silence": null}
    server → client  text    {"type": "started", "take": "take-....wav", ...}
    client → server  binary  int16 little-endian PCM, interleaved, ``channels`` wide, at ``rate``
    client → server  text    {"type": "pause"} | {"type": "resume"} | {"type": "stop"}
    server → client  text    {"type": "state", "state": "paused", "error": null}
                             {"type": "level", "current": -6.0, "max": -6.0, "duration_ms": 1234,
                              "frames": 59232}
                             {"type": "stopped", "take": "...", "duration_ms": ..., "error": null}

A client whose connection dropped opens a new one and sends, instead of ``start``::

    client → server  text    {"type": "reconnect", "ticket": "...", "sent": 96000, "acked": 91200,
                              "paused": false, ...the fields of its start...}
    server → client  text    {"type": "reconnected", "take": "...", "part": 1, "frames": 91680,
                              "paused": false, "ticket": "...", ...}

then sends its audio again from frame ``frames`` of the take (see :mod:`micrec.web.resume`).

``rate``/``channels`` describe the audio the client sends (its AudioContext); the other
fields are :class:`micrec.AudioRecorder` settings for the file. Everything here is pure:
parsing and checking, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import CLOSE_TOO_BIG, LimitExceededError, ProtocolViolationError

__all__ = ["COMMANDS", "Limits", "ReconnectRequest", "StartRequest", "close_reason", "parse_command",
           "parse_opening", "parse_start", "short_repr", "split_frame"]

#: Commands a client may send after ``start``.
COMMANDS = ("pause", "resume", "stop")
#: A WebSocket close reason is at most 123 bytes of UTF-8 (RFC 6455 section 5.5).
_MAX_REASON_BYTES = 123
#: The recorder settings a ``start`` may carry: the JSON types each may have, and how to say so.
_SETTINGS: dict[str, tuple[tuple[type, ...], str]] = {
    "audio_encoder": ((str,), "a string"),
    "sample_rate": ((int,), "a whole number"),
    "channels_num": ((int,), "a whole number"),
    "bit_rate": ((int,), "a whole number"),
    "auto_gain": ((bool,), "true or false"),
    "suppress_noise": ((bool,), "true or false"),
    "cancel_echo": ((bool,), "true or false"),
    "until_silence": ((int, float, type(None)), "a number of seconds or null"),
}
#: Longest rendering of a client's value in an error message.
_MAX_VALUE_CHARS = 40
#: Longest resume ticket a client may send (the server's are about 100 characters).
_MAX_TICKET_CHARS = 400


@dataclass(frozen=True)
class Limits:
    """What one take may use; anything beyond is refused with a WebSocket close reason.

    Attributes
    ----------
    max_frame_bytes : int
        Largest binary frame (default 32 KiB: 170 ms of 48 kHz stereo).
    min_rate, max_rate : int
        Range of the client's capture rate in Hz.
    max_channels : int
        Most channels a client may send.
    max_take_seconds : float
        Longest take (recorded time, pauses excluded); the take is saved and ended there.
    max_takes : int
        Takes one process records at once; more are told to retry later.
    max_pending : int
        Connections that have not sent ``start`` yet, at once; more are told to retry later
        (they do not hold a take's place while they wait).
    burst_seconds : float
        How far ahead of real time a client may get (network bunching); more is a flood.
    start_timeout : float
        Seconds a new connection has to send ``start``.
    idle_seconds : float
        Seconds of no audio while recording after which the client counts as gone.
    drop_seconds : float
        Seconds a take whose connection dropped waits for its browser to reconnect and resume
        it (``micrec serve --drop-limit``); then it is finalized with what arrived. 0 finalizes
        it at once.
    max_visitor_takes, max_visitor_bytes : int, optional
        Quotas of one visitor: takes and bytes kept in the store (None: no limit). A visitor
        at a quota cannot start a take; a take that reaches the byte quota is ended and saved.
    max_store_bytes : int, optional
        Quota of the whole store, all visitors' takes together (None: no limit).
    """

    max_frame_bytes: int = 32768
    min_rate: int = 8000
    max_rate: int = 96000
    max_channels: int = 2
    max_take_seconds: float = 3600.0
    max_takes: int = 64
    max_pending: int = 256
    burst_seconds: float = 3.0
    start_timeout: float = 10.0
    idle_seconds: float = 30.0
    drop_seconds: float = 60.0
    max_visitor_takes: int | None = None
    max_visitor_bytes: int | None = None
    max_store_bytes: int | None = None


@dataclass(frozen=True)
class StartRequest:
    """A parsed ``start`` message: the client's audio format and the recorder settings."""

    rate: int
    channels: int
    settings: dict[str, Any]


@dataclass(frozen=True)
class ReconnectRequest:
    """A parsed ``reconnect`` message: a client whose connection dropped goes on with its take.

    Attributes
    ----------
    start : StartRequest
        The take's format and settings, as its ``start`` said (for a take continued as a new
        part by a server that does not hold it).
    ticket : str
        The ``ticket`` of the take's last ``started``/``reconnected`` message.
    sent : int
        Sample frames the client has captured for the take so far (its send position).
    acked : int
        The highest ``frames`` count a ``level``/``reconnected`` message acknowledged.
    paused : bool
        Whether the client is paused now.
    """

    start: StartRequest
    ticket: str
    sent: int
    acked: int
    paused: bool


def parse_message(text: str) -> dict[str, Any]:
    """Decode one text message into a dict with a string ``type``."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[[[[...", nested deeper than Python's stack
        raise ProtocolViolationError(f"text message is not JSON: {short_repr(text)}", value=text[:_MAX_VALUE_CHARS],
                                     name="message") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolViolationError(f"text message has no \"type\": {short_repr(text)}",
                                     value=text[:_MAX_VALUE_CHARS], name="message")
    return message


def parse_start(text: str, limits: Limits) -> StartRequest:
    """Check a ``start`` message against ``limits``.

    Raises
    ------
    ProtocolViolationError
        Not a ``start`` message, ``rate``/``channels`` are not whole numbers, or a recorder
        setting has the wrong JSON type.
    LimitExceededError
        ``rate`` or ``channels`` outside the limits.
    """
    message = parse_message(text)
    if message["type"] != "start":
        raise ProtocolViolationError(f"the first message must be start, not {short_repr(message['type'])}",
                                     value=message["type"][:_MAX_VALUE_CHARS], name="type")
    return _parse_settings(message, limits)


def _parse_settings(message: dict[str, Any], limits: Limits) -> StartRequest:
    rate = _whole(message, "rate")
    channels = _whole(message, "channels")
    if not limits.min_rate <= rate <= limits.max_rate:
        raise LimitExceededError(f"rate {rate} Hz is outside {limits.min_rate}..{limits.max_rate} Hz",
                                 value=rate, name="rate")
    if not 1 <= channels <= limits.max_channels:
        raise LimitExceededError(f"channels {channels} is outside 1..{limits.max_channels}",
                                 value=channels, name="channels")
    settings = {key: _typed(message, key, *kinds) for key, kinds in _SETTINGS.items() if key in message}
    return StartRequest(rate, channels, settings)


def parse_opening(text: str, limits: Limits) -> StartRequest | ReconnectRequest:
    """The first message of a connection: ``start`` a take, or ``reconnect`` to one.

    Raises
    ------
    ProtocolViolationError, LimitExceededError
        As :func:`parse_start`; for ``reconnect`` also a missing ``ticket`` or ``sent``/``acked``
        that are not whole numbers with ``0 <= acked <= sent``.
    """
    message = parse_message(text)
    if message["type"] != "reconnect":
        return parse_start(text, limits)
    start = _parse_settings(message, limits)
    ticket = message.get("ticket")
    if not isinstance(ticket, str) or not ticket or len(ticket) > _MAX_TICKET_CHARS:
        raise ProtocolViolationError(f"reconnect needs the take's ticket string, got {short_repr(ticket)}",
                                     value=short_repr(ticket), name="ticket")
    sent, acked = _whole(message, "sent"), _whole(message, "acked")
    if not 0 <= acked <= sent:
        raise ProtocolViolationError(f"reconnect needs 0 <= acked <= sent, got acked={acked}, sent={sent}",
                                     value=(acked, sent), name="acked")
    paused = _typed(message, "paused", (bool,), "true or false") if "paused" in message else False
    return ReconnectRequest(start, ticket, sent, acked, paused)


def parse_command(text: str) -> str:
    """The command of a text message sent during a take (one of :data:`COMMANDS`)."""
    message = parse_message(text)
    command = message["type"]
    if command not in COMMANDS:
        raise ProtocolViolationError(f"unknown command {command[:20]!r}; send one of {COMMANDS}",
                                     value=command[:20], name="type")
    return command


def split_frame(payload: bytes, channels: int, limits: Limits) -> int:
    """Check one binary audio frame; returns its length in sample frames.

    Raises
    ------
    LimitExceededError
        The frame is larger than ``limits.max_frame_bytes`` (close code 1009).
    ProtocolViolationError
        Empty, or not a whole number of int16 frames of ``channels`` channels.
    """
    size = len(payload)
    if size > limits.max_frame_bytes:
        raise LimitExceededError(f"frame of {size} bytes is over the limit of {limits.max_frame_bytes}",
                                 value=size, name="frame", close_code=CLOSE_TOO_BIG)
    width = 2 * channels
    if size == 0 or size % width:
        raise ProtocolViolationError(
            f"malformed frame: {size} bytes is not a whole number of {channels}-channel int16 frames",
            value=size, name="frame")
    return size // width


def close_reason(message: str) -> str:
    """``message`` cut to what fits in a WebSocket close frame."""
    data = message.encode()
    if len(data) <= _MAX_REASON_BYTES:
        return message
    return data[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


def _whole(message: dict[str, Any], key: str) -> int:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolViolationError(f"start needs a whole number {key!r}, got {short_repr(value)}",
                                     value=value, name=key)
    return value


def _typed(message: dict[str, Any], key: str, kinds: tuple[type, ...], label: str) -> Any:
    """``message[key]`` if it has one of the JSON types ``kinds`` (a bool is not a number here)."""
    value = message[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ProtocolViolationError(f"start field {key!r} must be {label}, got {short_repr(value)}",
                                     value=value, name=key)
    return value


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a readable length: a client's value may be megabytes, or nested deep."""
    try:
        text = repr(value[: _MAX_VALUE_CHARS + 1] if isinstance(value, str) else value)
    except RecursionError:
        text = f"<a {type(value).__name__} nested too deep>"
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."
