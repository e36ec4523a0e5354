"""Delivering events from micrec's threads to Flet handlers on the app's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("micrec")

__all__ = ["Delivery", "current_page", "takes_event"]

Handler = Callable[..., Any]


def takes_event(handler: Handler) -> bool:
    """Whether ``handler`` accepts the event argument (Flet also allows zero-argument handlers)."""
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                  inspect.Parameter.VAR_POSITIONAL)
    return any(p.kind in positional for p in params)


class Delivery:
    """Runs handlers on the loop that last called :meth:`bind`, in the order events were posted.

    A plain function runs in a loop callback; a coroutine function becomes a task, so a slow
    handler never holds up audio or other events. Handlers run in a copy of the caller's
    context, so ``ft.context.page`` works in them, and, as after Flet's own events, the page
    is updated afterwards unless the handler updated it or auto-update is off.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.page: Any = None
        self._context = contextvars.copy_context()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()
        self._thread: ThreadPoolExecutor | None = None

    def bind(self, page: Any = None) -> None:
        """Deliver to the running loop of the calling thread (or the page's loop)."""
        if page is not None:
            self.page = page
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = _page_loop(self.page) or self.loop
        self._context = contextvars.copy_context()

    def post(self, handler: Handler | None, event: Any) -> None:
        """Hand ``event`` to ``handler`` (thread-safe; never blocks on the handler)."""
        if handler is None:
            return
        loop = self.loop
        context = self._context.copy()
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._run, handler, event, context=context)
                return
        self._fallback().submit(context.run, self._run_without_loop, handler, event)

    def _fallback(self) -> ThreadPoolExecutor:
        # A thread of our own, not micrec's event thread: a 0.27-style handler that calls the
        # recorder back (stop_recording() from on_state_changed) waits for that thread.
        with self._lock:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="micrec-flet-events")
            return self._thread

    def _run(self, handler: Handler, event: Any) -> None:
        _reset_auto_update()
        try:
            result = handler(event) if takes_event(handler) else handler()
        except Exception:
            log.exception("micrec.flet: an event handler raised")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish(result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._auto_update()

    async def _finish(self, awaitable: Any) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("micrec.flet: an event handler raised")
            return
        self._auto_update()

    def _run_without_loop(self, handler: Handler, event: Any) -> None:
        # No loop to hop to (a 0.27-style app calling from a plain thread): run on a thread,
        # as Flet 0.27 ran its sync handlers on a worker thread.
        try:
            result = handler(event) if takes_event(handler) else handler()
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except Exception:
            log.exception("micrec.flet: an event handler raised")

    def _auto_update(self) -> None:
        import flet as ft

        page = self.page
        if page is None or not ft.context.auto_update_enabled() or ft.context.was_update_called():
            return
        try:
            page.update()
        except Exception:
            log.debug("micrec.flet: auto-update of the page failed", exc_info=True)


def _reset_auto_update() -> None:
    import flet as ft

    ft.context.reset_auto_update()


def _page_loop(page: Any) -> asyncio.AbstractEventLoop | None:
    if page is None:
        return None
    try:
        loop = page.loop
    except Exception:  # noqa: BLE001 - a page without a live session
        return None
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def current_page() -> Any:
    """The Flet page of the running handler or app (``ft.context.page``), or None outside one."""
    import flet as ft

    try:
        return ft.context.page
    except RuntimeError:
        return None
