"""The far-end reference of the echo canceller: what the default output is playing.

On PulseAudio and PipeWire every output has a *monitor* that captures what it plays. The
reference opens the default output's monitor at the recording's rate and channel count (the
server resamples and remixes) and keeps what it delivers until the worker pairs it with the
microphone, frame for frame.

Alignment: the microphone stream is opened before the reference, so a reference frame with
the same index as a microphone frame was captured a little *later*. The echo of a sound
therefore always reaches the canceller after the sound itself (it looks back, never ahead),
and WebRTC AEC3's delay estimator finds the remaining delay (output latency, room, input
latency) by itself. The pairing is kept fixed through late reference blocks (silence stands
in, and the late frames are skipped when they come) and reset only after a pause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..backends.base import StreamSpec
from ..errors import FeatureUnavailableError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ..backends.base import CaptureStream

    Block = npt.NDArray[np.int16]

__all__ = ["EchoReference"]

log = logging.getLogger("micrec")

#: Block length of the monitor stream. Every read costs a wake-up (10 ms blocks cost twice the
#: CPU of 20 ms ones).
REFERENCE_BLOCK_MS = 40
#: Reference held beyond this after a take, for :data:`PATIENCE_S`, has nothing left to pair
#: with: the microphone was paused (its blocks are dropped, the output's are not). It is
#: dropped, so that the canceller looks back no further than AEC3 can (~0.5 s).
MAX_BACKLOG_MS = 300
#: Frames handed out as silence because the reference was late are skipped when it arrives,
#: keeping the pairing where it was through a short stall; a reference later than this is
#: taken as it comes, which also bounds how far back the canceller has to look.
MAX_DEBT_MS = 100
#: How long a stale backlog must last before the pairing is moved.
PATIENCE_S = 1.0
#: Bound on what is kept while nothing is taken (a long pause).
MAX_HELD_SECONDS = 10


class EchoReference:
    """What the default output plays, delivered by the backend and taken by the worker.

    Parameters
    ----------
    backend : CaptureBackend
        A backend with ``open_monitor(spec, sink)`` (:class:`micrec.backends.pulse.PulseBackend`).
    rate, channels : int
        The format the microphone is processed in; the reference is read in the same one.
    patience : float
        Seconds a stale backlog must last before the pairing is moved.

    Notes
    -----
    ``push``, ``overflow`` and ``fail`` form the :class:`~micrec.backends.BlockSink` the
    monitor stream delivers to, on its own thread; ``take`` and ``available`` are for the
    worker. ``realignments`` counts the times the pairing was reset after a pause. A lost
    reference does not end the recording: the canceller gets silence and a warning is logged.
    """

    def __init__(self, backend: Any, rate: int, channels: int, *, patience: float = PATIENCE_S) -> None:
        self._backend = backend
        self.patience = patience
        self._stale_since: float | None = None
        self._delivered = False
        self.rate = rate
        self.channels = channels
        self.underruns = 0
        self.dropped_frames = 0
        self.realignments = 0
        self.error: BaseException | None = None
        self._blocks: deque[Block] = deque()
        self._offset = 0  # frames of the first block already taken
        self._frames = 0  # frames held, the first block's taken ones excluded
        self._debt = 0  # frames handed out as silence, to skip when they arrive
        self._max_backlog = rate * MAX_BACKLOG_MS // 1000
        self._max_debt = rate * MAX_DEBT_MS // 1000
        self._lock = threading.Lock()
        self._stream: CaptureStream | None = None

    @classmethod
    def for_backend(cls, backend: Any, rate: int, channels: int) -> EchoReference:
        """A reference for ``backend``, or FeatureUnavailableError when it has no output monitor."""
        if getattr(backend, "open_monitor", None) is None:
            name = getattr(backend, "name", type(backend).__name__)
            raise FeatureUnavailableError(
                f"cancel_echo needs what the speakers play, and the {name!r} capture backend cannot "
                "read it (only a PulseAudio or PipeWire server exposes the output's monitor); "
                "record through a sound server or set cancel_echo=False", value=True, name="cancel_echo")
        return cls(backend, rate, channels)

    # -- lifecycle (session's opening thread, then the worker) -------------------------------
    def start(self) -> None:
        """Open the default output's monitor and start reading it."""
        spec = StreamSpec(None, self.rate, self.channels, self.rate * REFERENCE_BLOCK_MS // 1000)
        self._stream = self._backend.open_monitor(spec, self)
        self._stream.start()

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        log.debug("micrec: echo reference closed: %d underruns, %d frames dropped", self.underruns,
                  self.dropped_frames)
        with self._lock:
            self._pop(self._frames)

    # -- BlockSink (the monitor stream's thread) ---------------------------------------------
    def push(self, block: Block, *, wait: bool = False) -> None:
        with self._lock:
            self._delivered = True
            self._blocks.append(block)
            self._frames += len(block)
            excess = self._frames - MAX_HELD_SECONDS * self.rate
            if excess > 0:
                self.dropped_frames += self._pop(excess)

    def overflow(self, frames: int = 0) -> None:
        self.dropped_frames += frames

    def fail(self, error: BaseException) -> None:
        self.error = error
        log.warning("micrec: the echo reference (output monitor) stopped: %s; echo is no longer "
                    "cancelled", error)

    # -- the worker --------------------------------------------------------------------------
    @property
    def available(self) -> int:
        """Frames ready to be taken."""
        return max(0, self._frames - self._debt)

    def take(self, frames: int) -> Block:
        """The next ``frames`` frames, shaped (frames, channels); silence where none arrived yet."""
        import numpy as np

        out = np.zeros((frames, self.channels), dtype=np.int16)
        with self._lock:
            stale = self._frames - frames
            if self._lasting(stale > self._max_backlog):
                # Keep the newest frames for the microphone's current block: a new pairing.
                log.debug("micrec: echo reference: %d stale frames dropped", stale)
                self.dropped_frames += self._pop(stale)
                self._debt = 0
                self.realignments += 1
            repaid = self._pop(min(self._debt, self._frames))
            self._debt -= repaid
            self.dropped_frames += repaid
            short = frames - self._pop(frames, out)
            if short and self._delivered:
                # Before the first block nothing was late: a new monitor stream may start
                # delivering a second after it was opened, from then on.
                self.underruns += 1
                self._debt += short
                if self._debt > self._max_debt:
                    log.debug("micrec: echo reference: %d frames late, taken as they come", self._debt)
                    self._debt = 0
        return out

    def _lasting(self, now_true: bool) -> bool:
        """Whether a stale backlog has lasted :attr:`patience` seconds (then it starts over).

        A capture thread held up on a busy machine delivers in bursts, which look like a pause
        for a moment; acting on those would move the pairing and cost AEC3 a re-convergence.
        """
        if not now_true:
            self._stale_since = None
            return False
        now = time.monotonic()
        if self._stale_since is None:
            self._stale_since = now
        if now - self._stale_since < self.patience:
            return False
        self._stale_since = None
        return True

    def _pop(self, frames: int, into: Block | None = None) -> int:
        """Remove up to ``frames`` frames from the front, copied into ``into``; how many there were."""
        done = 0
        while done < frames and self._blocks:
            head = self._blocks[0]
            n = min(len(head) - self._offset, frames - done)
            if into is not None:
                into[done:done + n] = head[self._offset:self._offset + n]
            done += n
            self._offset += n
            if self._offset == len(head):
                self._blocks.popleft()
                self._offset = 0
        self._frames -= done
        return done
