"""Voice processing with the WebRTC audio processing module (AEC3, noise suppression, AGC2).

The module is reached through pywebrtc-audio, one component per flag, chained in WebRTC's
own order: echo canceller (with its high-pass filter), noise suppressor, gain controller.
The binding's combined ``AudioProcessor`` is not used: its noise suppressor analyses the
wrong signal above 16 kHz and takes white noise down by only 6 dB at 48 kHz instead of 20
(docs/dsp.md).

The components run at WebRTC's native rates (16, 32 or 48 kHz); other rates are resampled
to the next native rate (at most 48 kHz) and back with soxr. They work on 10 ms frames, and
the binding zero-pads a partial frame instead of keeping it for the next call, so this stage
cuts the stream into whole 10 ms frames itself and holds the remainder.

Channels: each component processes all channels, interleaved. Noise suppression runs per
channel; the echo canceller is multichannel (its reference is read with the same channel
count); the gain controller takes its speech and level decisions on the first channel and
applies one gain to every channel, so that the stereo image does not wander.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import require
from ..errors import FeatureUnavailableError
from .convert import Resampler

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .echo import EchoReference

    Block = npt.NDArray[np.int16]

__all__ = ["VoiceProcessor", "native_rate"]


#: The rates WebRTC's components run at.
NATIVE_RATES = (16000, 32000, 48000)
#: Where the ceiling after the gain controller starts to bend (-1 dBFS), and the level it
#: approaches but never reaches (one step below full scale).
CEILING_KNEE = 10 ** (-1 / 20)
CEILING = 32766 / 32768
#: Noise suppressors in series, by WebRTC level 0-3 (6, 12, 18, 21 dB). One at level 3 takes
#: white noise down by 20 dB at first but by only ~15 dB once its speech model has adapted to
#: the voice; a second, gentle one (6 dB) takes the residual down to ~20 dB again and leaves
#: the voice alone (docs/dsp.md has the measurements).
NS_LEVELS = (3, 0)
#: Longest the microphone waits for the echo reference before the canceller is fed silence
#: in its place (a stalled or late monitor stream must not stall the recording). The worker
#: looks when a microphone block comes (100 ms by default), and the reference for it may come
#: up to one monitor block (50 ms) after it.
MAX_REFERENCE_WAIT_MS = 300


def native_rate(rate: int) -> int:
    """The WebRTC rate that ``rate`` is processed at: the next native one, at most 48 kHz."""
    return next((r for r in NATIVE_RATES if r >= rate), NATIVE_RATES[-1])


def _webrtc() -> Any:
    try:
        return require("pywebrtc_audio", extra="dsp", package="pywebrtc-audio")
    except ImportError as exc:
        raise FeatureUnavailableError(f"voice processing needs pywebrtc-audio: {exc}",
                                      value="pywebrtc-audio") from exc


class VoiceProcessor:
    """Applies AGC, noise suppression and echo cancellation to int16 blocks (frames, channels).

    Parameters
    ----------
    rate, channels : int
        The format of the blocks (the file's).
    auto_gain, suppress_noise : bool
        Enable WebRTC AGC2 (adaptive digital gain and limiter) and noise suppression.
    reference : EchoReference, optional
        The far-end signal at ``native_rate(rate)``; given, the echo canceller (AEC3) runs.

    Notes
    -----
    Output lags input by less than one 10 ms frame (plus the resampler's delay at a rate that
    is not native), and with echo cancellation by the time the microphone waits for the
    matching reference (at most :data:`MAX_REFERENCE_WAIT_MS`). :meth:`flush` returns what
    is held back.
    """

    def __init__(self, rate: int, channels: int, *, auto_gain: bool, suppress_noise: bool,
                 reference: EchoReference | None = None) -> None:
        import numpy as np

        webrtc = _webrtc()
        native = native_rate(rate)
        self.rate = rate
        self.channels = channels
        self.reference = reference
        self.frame = native // 100
        self._max_wait = native * MAX_REFERENCE_WAIT_MS // 1000
        self._canceller = None if reference is None else webrtc.EchoCanceller(native, channels)
        self._filters: list[Any] = []
        if suppress_noise:
            self._filters += [webrtc.NoiseSuppressor(native, channels, level=lvl) for lvl in NS_LEVELS]
        if auto_gain:
            self._filters.append(webrtc.GainController(native, channels))
        self._ceiling = auto_gain
        self._to_native = None if native == rate else Resampler(rate, native, channels)
        self._from_native = None if native == rate else Resampler(native, rate, channels)
        self._held: Block = np.zeros((0, channels), dtype=np.int16)
        self._native = native
        self._block_time: float | None = None  # capture time of the next block's first frame
        self._held_time: float | None = None  # capture time of the first held frame

    def set_capture_time(self, capture_time: float) -> None:
        """The capture time of the next block's first frame (the echo reference is paired by it)."""
        self._block_time = capture_time

    def start(self) -> None:
        if self.reference is not None:
            self.reference.start()

    def close(self) -> None:
        if self.reference is not None:
            self.reference.close()

    def process(self, block: Block) -> Block:
        import numpy as np

        if self._to_native is not None:
            block = self._to_native.process(block)
        if self._block_time is not None:
            self._held_time = self._block_time - len(self._held) / self._native
            self._block_time = None
        held = np.concatenate([self._held, block]) if len(self._held) else block
        ready = self._ready_frames(len(held))
        self._held = held[ready:]
        out = self._run(held[:ready])
        if self._held_time is not None:
            self._held_time += ready / self._native
        return out if self._from_native is None else self._from_native.process(out)

    def flush(self) -> Block:
        import numpy as np

        held = self._held
        if self._to_native is not None:
            held = np.concatenate([held, self._to_native.flush()])
        self._held = held[:0]
        padded = -len(held) // self.frame * -self.frame
        tail = np.zeros((padded - len(held), self.channels), dtype=np.int16)
        out = self._run(np.concatenate([held, tail]))[:len(held)]
        if self._from_native is None:
            return out
        return np.concatenate([self._from_native.process(out), self._from_native.flush()])

    def _ready_frames(self, held: int) -> int:
        """How many held frames to process now: whole 10 ms frames, with their reference."""
        ready = held - held % self.frame
        reference = self.reference
        if reference is None or held > self._max_wait:
            return ready
        available = reference.available(self._held_time)
        return ready if available >= ready else available - available % self.frame

    def _run(self, near: Block) -> Block:
        import numpy as np

        if not len(near):
            return near
        # Float, so that nothing is clipped between the components (see _ceiling).
        samples = near.reshape(-1).astype(np.float32) * np.float32(1 / 32768)
        reference = self.reference
        if self._canceller is not None and reference is not None:
            realignments = reference.realignments
            far = reference.take(len(near), self._held_time)
            if reference.realignments != realignments:
                # A new pairing moves the echo: start afresh, as fast as at the start of a take,
                # rather than wait seconds for the converged filter to notice.
                self._canceller.reset()
            far_samples = far.reshape(-1).astype(np.float32) * np.float32(1 / 32768)
            samples = self._canceller.process(samples, far_samples)
        for component in self._filters:
            samples = component.process(samples)
        if self._ceiling:
            samples = _ceiling(samples)
        out = np.clip(np.rint(samples * np.float32(32768)), -32768, 32767).astype(np.int16)
        return out.reshape(-1, self.channels)


def _ceiling(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Bend peaks above -1 dBFS smoothly under full scale.

    AGC2's limiter moves its gain linearly across 0.5 ms steps, so a loud onset right after
    a quiet stretch (when the gain is high) can overshoot full scale by a few samples; here
    they are rounded off instead of being clipped flat.
    """
    import numpy as np

    magnitude = np.abs(samples)
    over = magnitude > CEILING_KNEE
    if not over.any():
        return samples
    room = CEILING - CEILING_KNEE
    bent = CEILING_KNEE + room * np.tanh((magnitude[over] - CEILING_KNEE) / room)
    out = samples.copy()
    out[over] = np.copysign(bent, samples[over])
    return out
