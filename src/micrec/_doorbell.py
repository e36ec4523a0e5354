"""A doorbell that wakes a thread from any other, or from C code that does not hold the GIL.

The session's worker sleeps on it (:class:`micrec.session.CaptureQueue`). A capture thread that
hands over a block and then goes to sleep in a foreign call rings it from that call, after it
has let go of the GIL (``csrc/pulseloop.c``): rung from Python, the worker would wake while the
capture thread still holds the GIL, sleep again until it is released, and take it from under the
capture thread's next step, two context switches a block more.

On Linux the bell is an eventfd (its file descriptor is :attr:`Doorbell.fd`, rung by writing an
8-byte 1); elsewhere a socket pair (``fd`` is then -1: only Python rings it).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import weakref

__all__ = ["Doorbell"]

_ONE = (1).to_bytes(8, sys.byteorder)


class Doorbell:
    """Rung by :meth:`ring` (any thread) or by writing ``_ONE`` to :attr:`fd`; waited for by one thread."""

    def __init__(self) -> None:
        self._sender: socket.socket | None = None
        if hasattr(os, "eventfd"):
            self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._read_fd = self.fd
            weakref.finalize(self, os.close, self.fd)
        else:  # a socket, since Windows' select() takes nothing else
            receiver, sender = socket.socketpair()
            receiver.setblocking(False)
            sender.setblocking(False)
            self.fd = -1
            self._receiver, self._sender = receiver, sender
            self._read_fd = receiver.fileno()
            weakref.finalize(self, _close_pair, receiver, sender)
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            self._poll.register(self._read_fd, select.POLLIN)

    def ring(self) -> None:
        try:
            if self._sender is None:
                os.write(self.fd, _ONE)
            else:
                self._sender.send(b"\0")
        except BlockingIOError:  # rung so often the counter (or buffer) is full: it is rung
            pass

    def wait(self, timeout: float | None) -> bool:
        """Sleep until rung (True) or ``timeout`` seconds pass (False); a ring is used up."""
        if self._poll is not None:
            ready = bool(self._poll.poll(None if timeout is None else max(0.0, timeout) * 1000.0))
        else:
            ready = bool(select.select([self._read_fd], [], [], timeout)[0])
        if ready:
            try:
                if self._sender is None:
                    os.read(self._read_fd, 8)
                else:
                    self._receiver.recv(4096)
            except BlockingIOError:  # another waiter took it (there is one waiter; harmless)
                pass
        return ready


def _close_pair(*sockets: socket.socket) -> None:
    for sock in sockets:
        sock.close()
