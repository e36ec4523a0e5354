"""Ordered delivery of state-change events on a thread of micrec's own."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("micrec")

__all__ = ["EventDispatcher"]

_IDLE_EXIT = 5.0


class EventDispatcher:
    """Runs submitted jobs one at a time, in order, on a ``micrec-events`` thread.

    The thread starts on the first job and exits after a few idle seconds, so an unused
    recorder costs no thread. A job that raises is logged; the next job still runs.
    """

    def __init__(self, name: str = "micrec-events") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
            self._jobs.put(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every job submitted so far has run (not from a job itself)."""
        if self.on_dispatch_thread():
            return self._pending == 0
        return self._idle.wait(timeout)

    def on_dispatch_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            try:
                job()
            except Exception:
                log.exception("micrec: an on_state_changed handler raised")
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()
