"""The contract's value types: encoders, states, the state-change event, devices, levels."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "Amplitude",
    "AudioEncoder",
    "AudioRecorderState",
    "AudioRecorderStateChangeEvent",
    "InputDevice",
    "OutputDevice",
]


class AudioEncoder(enum.StrEnum):
    """The file formats micrec writes; values are Flet's wire values (``AudioEncoder("flac")``)."""

    AACLC = "aacLc"
    AACELD = "aacEld"
    AACHE = "aacHe"
    AMRNB = "amrNb"
    AMRWB = "amrWb"
    OPUS = "opus"
    FLAC = "flac"
    WAV = "wav"
    PCM16BITS = "pcm16bits"


class AudioRecorderState(enum.StrEnum):
    """A recorder's state, as reported by :class:`AudioRecorderStateChangeEvent`."""

    STOPPED = "stopped"
    RECORDING = "recording"
    PAUSED = "paused"


@dataclass(frozen=True)
class AudioRecorderStateChangeEvent:
    """What ``on_state_changed`` receives at every state transition.

    Attributes
    ----------
    state : AudioRecorderState
        The new state.
    path : str or None
        The session's output path.
    error : BaseException or None
        The fault that ended the session (only with ``STOPPED``), else None.
    name : str
        Always ``"state_changed"``, as in Flet.
    """

    state: AudioRecorderState
    path: str | None = None
    error: BaseException | None = None
    name: str = field(default="state_changed")

    @property
    def data(self) -> str:
        """The state's string value (``"recording"``, ...), Flet's ``e.data``."""
        return self.state.value


@dataclass(frozen=True)
class InputDevice:
    """A capture device: ``id`` is what ``AudioRecorder(device=...)`` takes."""

    id: str
    label: str
    is_default: bool = False
    backend: str = ""


@dataclass(frozen=True)
class OutputDevice:
    """An output whose sound can be recorded: ``id`` is what ``AudioRecorder(system_audio=...)`` takes.

    ``channels`` is the output's own channel count (0: unknown).
    """

    id: str
    label: str
    is_default: bool = False
    backend: str = ""
    channels: int = 0


@dataclass(frozen=True)
class Amplitude:
    """Peak levels in dBFS: ``current`` over the latest ~50 ms, ``max`` over the session."""

    current: float = -160.0
    max: float = -160.0
