"""The far-end reference of the echo canceller: what the default output is playing.

On PulseAudio and PipeWire every output has a *monitor* that captures what it plays. The
reference opens the default output's monitor at the recording's rate and channel count (the
server resamples and remixes) and keeps what it delivers until the worker pairs it with the
microphone.

Alignment: both streams come from the same server, and every block carries the time its
first frame was captured (``capture_time``, on the monotonic clock: see
:mod:`micrec.backends.pulse`). A microphone frame is paired with the reference frame captured
at the same moment, whatever order the blocks arrived in. The echo of a sound reaches the
microphone after the sound left the output, so the canceller always looks back, never
ahead, and WebRTC AEC3's delay estimator finds the remaining delay (output latency, room,
input latency) by itself. Once paired, the reference is taken frame after frame (a late block
is made up for with silence and its frames skipped when they come); the pairing is set again
only when the two clocks disagree by more than its skew limit (after a pause, or audio lost on
one of the streams): :data:`MAX_SKEW_MS` for the echo canceller, whose delay estimator finds
small delays itself; the system-audio mix, which has none, keeps a tighter one
(:data:`micrec.dsp.mix.MAX_SKEW_MS`). A new pairing drops reference frames or inserts silence
into the reference, never touches the microphone's audio, and is counted.
"""

from __future__ import annotations

import logging
import threading
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

#: Block length of the monitor stream. Every block costs a wake-up; on PipeWire a fragment
#: under 2048/48000 s (42.7 ms) would also shorten the whole graph's cycle.
REFERENCE_BLOCK_MS = 50
#: The echo canceller's skew limit: the pairing is set again when the reference's clock and the
#: microphone's disagree by more than this (a pause of the microphone, audio lost on one
#: stream); smaller differences are timing jitter, left to AEC3's delay estimator.
MAX_SKEW_MS = 60
#: Frames handed out as silence because the reference was late are skipped when it arrives,
#: keeping the pairing where it was through a short stall; a reference later than this is
#: taken as it comes, which also bounds how far back the canceller has to look.
MAX_DEBT_MS = 100
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
    max_skew_ms : float
        How far (ms) the two clocks may disagree before the pairing is set again; default
        :data:`MAX_SKEW_MS`.
    label : str
        What the reference is for, in log messages.

    Notes
    -----
    ``push``, ``overflow`` and ``fail`` form the :class:`~micrec.backends.BlockSink` the
    monitor stream delivers to, on its own thread; ``take`` and ``available`` are for the
    worker. ``realignments`` counts the times the pairing was set again after it was first
    set; ``dropped_frames`` and ``inserted_frames`` the reference frames a pairing (or a
    late block made up for) left out, and the frames of silence a pairing put in. A lost
    reference does not end the recording: the microphone gets silence as its reference and a
    warning is logged. Blocks without a capture time are paired in arrival order.
    """

    def __init__(self, backend: Any, rate: int, channels: int, *, max_skew_ms: float = MAX_SKEW_MS,
                 label: str = "echo reference") -> None:
        self._backend = backend
        self._delivered = False
        self._paired = False
        self.rate = rate
        self.channels = channels
        self.underruns = 0
        self.dropped_frames = 0
        self.realignments = 0
        self.inserted_frames = 0
        self.label = label
        self.error: BaseException | None = None
        self._blocks: deque[tuple[Block, float | None]] = deque()
        self._offset = 0  # frames of the first block already taken
        self._frames = 0  # frames held, the first block's taken ones excluded
        self._debt = 0  # frames handed out as silence, to skip when they arrive
        self._lead = 0  # frames of silence owed before the reference starts (it began later)
        self._max_skew = round(rate * max_skew_ms / 1000)
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
        log.debug("micrec: %s closed: %d underruns, %d frames dropped, %d inserted, %d realignments",
                  self.label, self.underruns, self.dropped_frames, self.inserted_frames, self.realignments)
        with self._lock:
            self._pop(self._frames)

    # -- BlockSink (the monitor stream's thread) ---------------------------------------------
    def push(self, block: Block, *, wait: bool = False, capture_time: float | None = None) -> None:
        with self._lock:
            self._delivered = True
            self._blocks.append((block, capture_time))
            self._frames += len(block)
            excess = self._frames - MAX_HELD_SECONDS * self.rate
            if excess > 0:
                self.dropped_frames += self._pop(excess)

    def overflow(self, frames: int = 0) -> None:
        self.dropped_frames += frames

    def fail(self, error: BaseException) -> None:
        self.error = error
        log.warning("micrec: the %s (the output's monitor) stopped: %s; silence stands in for it",
                    self.label, error)

    # -- the worker --------------------------------------------------------------------------
    def available(self, at: float | None = None) -> int:
        """Frames ready to be taken for microphone frames captured from ``at`` on (None: unknown)."""
        with self._lock:
            if at is not None:
                head = self._head_time()
                skew = None if head is None else round((head - at) * self.rate)
                if skew is not None and (not self._paired or abs(skew - self._lead + self._debt) > self._max_skew):
                    return max(0, skew + self._frames)
            return max(0, self._lead + self._frames - self._debt)

    def take(self, frames: int, at: float | None = None) -> Block:
        """The reference for ``frames`` microphone frames captured from ``at`` on, shaped
        (frames, channels); silence where none arrived (yet)."""
        import numpy as np

        out = np.zeros((frames, self.channels), dtype=np.int16)
        with self._lock:
            if at is not None:
                self._pair(at)
            lead = min(self._lead, frames)
            self._lead -= lead
            repaid = self._pop(min(self._debt, self._frames))
            self._debt -= repaid
            self.dropped_frames += repaid
            short = frames - lead - self._pop(frames - lead, out[lead:])
            if short and self._delivered:
                # Before the first block nothing was late: a new monitor stream may start
                # delivering a second after it was opened, from then on.
                self.underruns += 1
                self._debt += short
                if self._debt > self._max_debt:
                    log.debug("micrec: %s: %d frames late, taken as they come", self.label, self._debt)
                    self._debt = 0
        return out

    def _pair(self, at: float) -> None:
        """Pair the reference frame captured at ``at`` with the microphone's, if not paired yet
        or if the clocks disagree by more than the skew limit."""
        head = self._head_time()
        if head is None:
            return
        skew = round((head - at) * self.rate)  # > 0: the reference held begins after `at`
        # What the pairing as it stands gives `at`: silence first (lead), late frames skipped (debt).
        apart = skew - self._lead + self._debt
        if self._paired and abs(apart) <= self._max_skew:
            return
        again = self._paired
        if again:
            log.debug("micrec: %s: paired again, %d frames apart", self.label, apart)
            self.realignments += 1
        self._paired = True
        self._debt = 0
        self._lead = 0
        # Each block's own time counts: skip whole blocks that began before `at` first.
        while skew < 0 and len(self._blocks) > 1 and (following := self._blocks[1][1]) is not None \
                and following <= at:
            self.dropped_frames += self._pop(len(self._blocks[0][0]) - self._offset)
            skew = round((following - at) * self.rate)
        if skew < 0:
            self.dropped_frames += self._pop(-skew)
        else:
            self._lead = skew
            if again:
                self.inserted_frames += skew

    def _head_time(self) -> float | None:
        """When the first frame held was captured (None: nothing held, or no time known)."""
        if not self._blocks:
            return None
        start = self._blocks[0][1]
        return None if start is None else start + self._offset / self.rate

    def _pop(self, frames: int, into: Block | None = None) -> int:
        """Remove up to ``frames`` frames from the front, copied into ``into``; how many there were."""
        done = 0
        while done < frames and self._blocks:
            head = self._blocks[0][0]
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
