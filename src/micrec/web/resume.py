"""Takes that survive a dropped connection: tickets, parts, the take registry and the pace rule.

A take outlives its WebSocket. When the connection drops (Wi-Fi, a laptop lid, a proxy
reload), the page keeps capturing into a buffer and reconnects with a ``reconnect`` message
carrying the take's *ticket*. The ticket is signed with the server's secret, so any process
that shares the secret can read it:

* **The process that holds the take** (found in its :class:`TakeRegistry`) hands the new
  socket to the waiting take and answers how many frames it has; the page sends its audio
  again from there. The take stays one file, with no gap and nothing twice.
* **Any other process** (another worker or host) cannot append to a file it does not hold.
  It starts a new file, the take's next *part* (:func:`part_name`: ``...-part2.wav``), from
  the last frame the client saw acknowledged. The process that holds the first part finalizes
  it at the drop limit. The parts overlap by what the first part received after the last
  acknowledgement (at most one level interval plus the network's delay); nothing is missing.

A take whose browser does not come back within ``Limits.drop_seconds`` is finalized with what
arrived.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._lazy import require
from ..backends.pushed import FloodPacer as _PushedFloodPacer
from .errors import LimitExceededError, ProtocolViolationError

if TYPE_CHECKING:
    from ..types import AudioEncoder
    from .handler import TakeConnection

__all__ = ["FloodPacer", "NewPath", "TakeRegistry", "Ticket", "TicketSigner", "part_name"]

_SALT = "micrec.web.take-ticket"
#: Seconds a ticket is good for continuing a take in another process (as long as a session token).
TICKET_TTL = 12 * 3600
_PART = re.compile(r"(?P<base>.+?)(?:-part(?P<part>\d+))?(?P<ext>\.[a-z0-9]{1,5})")


@dataclass(frozen=True)
class Ticket:
    """What a ticket says: the file of the take's current part, its first part, and the part number.

    ``issued`` is the wall-clock second the ticket was signed.
    """

    name: str
    first: str
    part: int
    issued: float = 0.0


class TicketSigner:
    """Signs and reads take tickets (itsdangerous, with the server's secret).

    Parameters
    ----------
    secret : bytes
        The key shared by every process that may continue another's take.
    clock : callable
        Wall-clock seconds (tickets travel between processes, so not monotonic).
    """

    def __init__(self, secret: bytes, *, clock: Callable[[], float] = time.time) -> None:
        itsdangerous = require("itsdangerous", extra="web")
        self._clock = clock
        serializer = itsdangerous.URLSafeTimedSerializer(secret, salt=_SALT)
        self._serializer = serializer

    def issue(self, name: str, first: str, part: int) -> str:
        """A ticket for the take whose current file is ``name``."""
        # A random nonce: two tickets of one take never compare equal, nothing in one is guessable.
        return str(self._serializer.dumps([name, first, part, secrets.token_urlsafe(6)]))

    def read(self, ticket: str) -> Ticket:
        """The take a ticket names.

        Raises
        ------
        ProtocolViolationError
            The ticket was not signed with this secret, is malformed, or is older than
            :data:`TICKET_TTL`.
        """
        from itsdangerous import BadData

        try:
            fields, issued = self._serializer.loads(ticket, max_age=TICKET_TTL, return_timestamp=True)
            name, first, part, _ = fields
        except (BadData, ValueError, TypeError):
            raise ProtocolViolationError("the take's ticket is invalid or expired: start a new take",
                                         name="ticket") from None
        if not (isinstance(name, str) and isinstance(first, str) and isinstance(part, int)):
            raise ProtocolViolationError("the take's ticket is malformed: start a new take", name="ticket")
        return Ticket(name, first, part, issued.timestamp())

    def age(self, ticket: Ticket) -> float:
        """Seconds since ``ticket`` was issued (0 if the clocks disagree)."""
        return max(0.0, self._clock() - ticket.issued)


def part_name(first: str, part: int) -> str:
    """The file name of part ``part`` of the take whose first file is ``first``.

    >>> part_name("take-20261206-201500-0a1b2c.wav", 2)
    'take-20261206-201500-0a1b2c-part2.wav'
    """
    match = _PART.fullmatch(first)
    if match is None:
        raise ValueError(f"{first!r} is not a take file name")
    return f"{match['base']}{'' if part <= 1 else f'-part{part}'}{match['ext']}"


class NewPath(Protocol):
    """Where a take is written: a fresh path for ``codec``, or the path called ``name`` (see
    :meth:`micrec.web.takes.TakeStore.new_take`; FileExistsError when that name is taken)."""

    def __call__(self, codec: AudioEncoder, name: str | None = None, /) -> Path: ...


def free_part(new_path: NewPath, codec: AudioEncoder, first: str, part: int) -> tuple[Path, int]:
    """The path of the first free part from ``part`` on (two reconnects may race for one number)."""
    while True:
        try:
            return new_path(codec, part_name(first, part)), part
        except FileExistsError:
            part += 1


class TakeRegistry:
    """The takes one process holds, by file name, for reconnecting clients to find."""

    def __init__(self) -> None:
        self._takes: dict[str, TakeConnection] = {}

    def add(self, name: str, take: TakeConnection) -> None:
        self._takes[name] = take

    def remove(self, name: str, take: TakeConnection) -> None:
        if self._takes.get(name) is take:
            del self._takes[name]

    def get(self, name: str) -> TakeConnection | None:
        return self._takes.get(name)

class FloodPacer(_PushedFloodPacer):
    """The pushed backend's flood rule (:class:`micrec.backends.pushed.FloodPacer`) raising
    :class:`~micrec.web.errors.LimitExceededError`, whose close code ``micrec serve`` sends."""

    def __init__(self, rate: int, burst_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(rate, burst_seconds, clock, LimitExceededError)


def resumable(code: Any) -> bool:
    """Whether a take whose socket closed with ``code`` waits for its browser to come back.

    A browser that leaves the page closes with 1001 (going away) and cannot come back: its
    buffer is gone. A vanished network (1006), a proxy's error (1011/1014) or a close without
    a code (1005) can.
    """
    return code not in (1000, 1001)
