"""Mixing what the default output plays into the microphone's take.

The output's sound comes from its monitor, read by an :class:`~micrec.dsp.echo.EchoReference`
at the take's rate in the output's own channels (mixed to the take's here: the servers'
downmixes differ by 3 dB) and paired with the microphone by capture time on the worker (the
same pairing the echo canceller uses, with a tighter skew limit: :data:`MAX_SKEW_MS`). Each
microphone block waits for its system-audio frames (at most :data:`MAX_WAIT_MS`, then silence
stands in), and the two are summed by :func:`mix_law`.

Alignment: the contract is the microphone and the output within 10 ms of each other for the
whole take. The echo canceller's reference re-pairs only past 60 ms (its delay estimator
finds smaller delays itself); the mix has nothing after it to absorb a shift, so a stall or a
drift past :data:`MAX_SKEW_MS` sets the pairing again at the next microphone block, by
dropping output frames or inserting silence into the output (never into the microphone's own
audio). The reference counts them (``realignments``, ``dropped_frames``, ``inserted_frames``).

Mixing law: both signals at unity gain (each keeps its level in the take: a far-end voice is
as loud as the output played it), summed in float; the sum is left exactly as it is up to
:data:`KNEE` (-3 dBFS) and bent smoothly above it (tanh) towards, but never reaching, full
scale. Nothing clips, and signals that fit together under -3 dBFS pass bit-exact sums.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ..backends.outputs import check_output, monitor_channels
from .convert import ChannelMixer

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .echo import EchoReference

    Block = npt.NDArray[np.int16]

__all__ = ["KNEE", "MAX_SKEW_MS", "CaptureClock", "SystemMix", "build_system_mix", "mix_law"]

#: Where the limiter starts to bend the sum (-3 dBFS), and the level it approaches.
KNEE = 10 ** (-3 / 20)
CEILING = 32766 / 32768
#: Longest a microphone block waits for the system audio it is mixed with: the worker looks
#: when a microphone block comes (100 ms), and the output's frames for it may come up to one
#: monitor block (50 ms) later.
MAX_WAIT_MS = 300
#: The mix's skew limit: how far (ms) the output's capture clock and the microphone's may drift
#: apart before the pairing is set again. Half the 10 ms the contract allows, and above the
#: streams' timing jitter (their capture clocks move by about 1 ms steps as the server's
#: timing estimates settle), so a take in steady state is not re-paired.
MAX_SKEW_MS = 5


def build_system_mix(rate: int, channels: int, backend: Any) -> SystemMix:
    """The mixing stage for ``mix_system_audio``; FeatureUnavailableError where outputs cannot be read.

    Its :attr:`SystemMix.clock` goes first in the processing chain, the mix itself last.
    """
    from .echo import EchoReference

    _, output = check_output(backend, None, "mix_system_audio")
    reference = EchoReference(backend, rate, monitor_channels(output, channels), max_skew_ms=MAX_SKEW_MS,
                              label="system-audio mix reference")
    return SystemMix(reference, CaptureClock(rate, channels), channels)


def mix_law(a: Block, b: Block) -> Block:
    """``a + b`` at unity gain, with peaks above :data:`KNEE` bent under full scale (int16)."""
    import numpy as np

    total = a.astype(np.float32) + b.astype(np.float32)
    knee, ceiling = np.float32(KNEE * 32768), np.float32(CEILING * 32768)
    magnitude = np.abs(total)
    over = magnitude > knee
    if over.any():
        room = ceiling - knee
        total[over] = np.copysign(knee + room * np.tanh((magnitude[over] - knee) / room), total[over])
    return np.rint(total).astype(np.int16)


class CaptureClock:
    """When each frame entering the processing chain was captured (its first stage).

    The session tells it the capture time of every block's first frame (``set_capture_time``)
    before the block goes through; later stages ask :meth:`time_of` by frame index, so that a
    stage behind one that holds audio back (the echo canceller) still knows when its frames
    were captured.
    """

    def __init__(self, rate: int, channels: int) -> None:
        import numpy as np

        self.rate = rate
        self.frames = 0
        self._pending: float | None = None
        self._anchors: deque[tuple[int, float]] = deque()  # (frame index, its capture time)
        self._empty: Block = np.zeros((0, channels), dtype=np.int16)

    def set_capture_time(self, capture_time: float) -> None:
        self._pending = capture_time

    def process(self, block: Block) -> Block:
        if self._pending is not None:
            self._anchors.append((self.frames, self._pending))
            self._pending = None
        self.frames += len(block)
        return block

    def flush(self) -> Block:
        return self._empty

    def time_of(self, frame: int) -> float | None:
        """Capture time of frame ``frame`` (counted from the take's first), None if unknown.

        Frames are asked for in increasing order; anchors behind the asked frame are dropped.
        """
        anchors = self._anchors
        while len(anchors) > 1 and anchors[1][0] <= frame:
            anchors.popleft()
        if not anchors:
            return None
        index, when = anchors[0]
        return when + (frame - index) / self.rate


class SystemMix:
    """Adds what the default output plays to every microphone block, paired by capture time.

    Parameters
    ----------
    reference : EchoReference
        The default output's monitor, at the microphone blocks' rate, in the output's channels.
    clock : CaptureClock
        The first stage of the chain, which knows when the microphone's frames were captured;
        without capture times (a backend that gives none) the streams are paired as they arrive.
    channels : int
        The microphone blocks' channel count; the output's are mixed down or up to it.

    Notes
    -----
    Output lags input by the wait for the system audio (at most :data:`MAX_WAIT_MS`).
    """

    def __init__(self, reference: EchoReference, clock: CaptureClock, channels: int) -> None:
        import numpy as np

        self.reference = reference
        self.clock = clock
        self._to_take = None if reference.channels == channels else ChannelMixer(reference.channels, channels)
        self._mixed = 0  # frames mixed so far: the index of the first held frame
        self._max_wait = reference.rate * MAX_WAIT_MS // 1000
        self._held: Block = np.zeros((0, channels), dtype=np.int16)

    def start(self) -> None:
        self.reference.start()

    def close(self) -> None:
        self.reference.close()

    def process(self, block: Block) -> Block:
        import numpy as np

        held = np.concatenate([self._held, block]) if len(self._held) else block
        at = self.clock.time_of(self._mixed)
        ready = len(held) if len(held) > self._max_wait else min(len(held), self.reference.available(at))
        self._held = held[ready:]
        return self._mix(held[:ready], at)

    def flush(self) -> Block:
        held, self._held = self._held, self._held[:0]
        return self._mix(held, self.clock.time_of(self._mixed))

    def _mix(self, mic: Block, at: float | None) -> Block:
        if not len(mic):
            return mic
        self._mixed += len(mic)
        far = self.reference.take(len(mic), at)
        return mix_law(mic, far if self._to_take is None else self._to_take.process(far))
