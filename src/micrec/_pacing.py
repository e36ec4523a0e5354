"""Longer capture blocks while nobody needs the audio sooner.

Every block wakes micrec's capture thread and its worker, and those wake-ups, not the work in
them, are most of what a take costs (``benchmarks/peers/notes.md``). A take with the default block
size that nobody reads levels or blocks from is therefore read in blocks of
:data:`RELAXED_BLOCK_MS` once :data:`IDLE_SECONDS` have passed without a level reading; the
first ``get_amplitude()`` (or a block listener) brings the default block back at once. Only
streams that can change their block while running take part
(:class:`micrec.backends.base.ResizableStream`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .backends.base import CaptureStream

__all__ = ["IDLE_SECONDS", "RELAXED_BLOCK_MS", "BlockPacer", "needs_blocks_soon", "pacer_for"]

#: Block length of a take that nobody reads levels or blocks from. Each block is flushed as it
#: is written, so a killed take loses at most the block in progress and the server's fragment:
#: 250 ms keeps that under the contract's 0.5 s (a second, as before, lost up to 1.1 s). A
#: stalled source's partial block is delivered anyway (the pulse backend,
#: :data:`micrec.backends.pulse.STALL_SECONDS`). A wake-up costs each of micrec's two threads
#: more than the work in it (a cold cache), so fewer, longer blocks still save CPU.
RELAXED_BLOCK_MS = 250
#: Seconds without a level reading after which the blocks are lengthened.
IDLE_SECONDS = 1.0


class BlockPacer:
    """Switches one stream between its steady block and the relaxed one.

    :meth:`touch` runs on any thread (a caller of ``get_amplitude()``, ``pause()`` or
    ``resume()``), :meth:`block_done` on the session's worker after each block.
    """

    def __init__(self, resize: Callable[[int], None], steady_frames: int, relaxed_frames: int,
                 needs_short_blocks: Callable[[], bool]) -> None:
        self._resize = resize
        self._steady = steady_frames
        self._relaxed_frames = relaxed_frames
        self._needs_short_blocks = needs_short_blocks
        self._last_read = time.monotonic()
        self._relaxed = False
        self._lock = threading.Lock()

    @property
    def relaxed(self) -> bool:
        return self._relaxed

    def touch(self) -> None:
        with self._lock:
            self._last_read = time.monotonic()
            self._shorten_locked()

    def block_done(self) -> None:
        if self._relaxed:
            if self._needs_short_blocks():
                with self._lock:
                    self._shorten_locked()
        elif time.monotonic() - self._last_read >= IDLE_SECONDS and not self._needs_short_blocks():
            with self._lock:
                if time.monotonic() - self._last_read >= IDLE_SECONDS and not self._relaxed:
                    self._relaxed = True
                    self._resize(self._relaxed_frames)

    def _shorten_locked(self) -> None:
        if self._relaxed:
            self._relaxed = False
            self._resize(self._steady)


def needs_blocks_soon(listener: object) -> bool:
    """Whether a block listener wants each block soon after its capture (all do, by default).

    micrec's own listeners that only count (the CLI's take summary) say otherwise with a
    ``_blocks_can_wait = True`` attribute.
    """
    return not getattr(listener, "_blocks_can_wait", False)


def pacer_for(stream: CaptureStream, steady_frames: int,
              needs_short_blocks: Callable[[], bool]) -> BlockPacer | None:
    """A pacer for ``stream`` (blocks of ``steady_frames`` at its rate), or None if it cannot resize."""
    resize = getattr(stream, "set_block_frames", None)
    relaxed_frames = stream.rate * RELAXED_BLOCK_MS // 1000
    if resize is None or relaxed_frames <= steady_frames:
        return None
    return BlockPacer(resize, steady_frames, relaxed_frames, needs_short_blocks)
