"""flet-audio-recorder 1.0's value and event types, with the same names, fields and defaults.

:class:`~micrec.AudioEncoder`, :class:`~micrec.AudioRecorderState` and
:class:`~micrec.InputDevice` are micrec's own: they have Flet's members and values (and, being
``str`` enums, compare equal to their wire strings as well).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

import flet as ft

from ..types import AudioEncoder, AudioRecorderState, InputDevice

__all__ = [
    "AndroidAudioSource",
    "AndroidRecorderConfiguration",
    "AudioEncoder",
    "AudioRecorderConfiguration",
    "AudioRecorderState",
    "AudioRecorderStateChangeEvent",
    "AudioRecorderStreamEvent",
    "AudioRecorderUploadEvent",
    "AudioRecorderUploadSettings",
    "InputDevice",
    "IosAudioCategoryOption",
    "IosRecorderConfiguration",
]


class AndroidAudioSource(Enum):
    """Android audio sources; accepted for compatibility, ignored by micrec."""

    DEFAULT_SOURCE = "defaultSource"
    MIC = "mic"
    VOICE_UPLINK = "voiceUplink"
    VOICE_DOWNLINK = "voiceDownlink"
    VOICE_CALL = "voiceCall"
    CAMCORDER = "camcorder"
    VOICE_RECOGNITION = "voiceRecognition"
    VOICE_COMMUNICATION = "voiceCommunication"
    REMOTE_SUBMIX = "remoteSubMix"
    UNPROCESSED = "unprocessed"
    VOICE_PERFORMANCE = "voicePerformance"


@ft.value
class AndroidRecorderConfiguration:
    """Android-only settings; accepted for compatibility, ignored by micrec."""

    use_legacy: bool = False
    mute_audio: bool = False
    manage_bluetooth: bool = True
    audio_source: AndroidAudioSource = AndroidAudioSource.DEFAULT_SOURCE


class IosAudioCategoryOption(Enum):
    """iOS audio session options; accepted for compatibility, ignored by micrec."""

    MIX_WITH_OTHERS = "mixWithOthers"
    DUCK_OTHERS = "duckOthers"
    ALLOW_BLUETOOTH = "allowBluetooth"
    DEFAULT_TO_SPEAKER = "defaultToSpeaker"
    INTERRUPT_SPOKEN_AUDIO_AND_MIX_WITH_OTHERS = "interruptSpokenAudioAndMixWithOthers"
    ALLOW_BLUETOOTH_A2DP = "allowBluetoothA2DP"
    ALLOW_AIRPLAY = "allowAirPlay"
    OVERRIDE_MUTED_MICROPHONE_INTERRUPTION = "overrideMutedMicrophoneInterruption"


def _default_ios_options() -> list[IosAudioCategoryOption]:
    return [IosAudioCategoryOption.DEFAULT_TO_SPEAKER, IosAudioCategoryOption.ALLOW_BLUETOOTH,
            IosAudioCategoryOption.ALLOW_BLUETOOTH_A2DP]


@ft.value
class IosRecorderConfiguration:
    """iOS-only settings; accepted for compatibility, ignored by micrec."""

    options: list[IosAudioCategoryOption] = field(default_factory=_default_ios_options)


@ft.value
class AudioRecorderConfiguration:
    """Recording settings, as in flet-audio-recorder.

    Attributes
    ----------
    encoder : AudioEncoder
        File format (default WAV). Streaming (``on_stream`` or ``upload``) needs PCM16BITS.
    suppress_noise, cancel_echo, auto_gain : bool
        Voice processing, done by micrec in Python (WebRTC APM).
    channels : int
        1 (mono) or 2 (stereo, default).
    sample_rate : int
        Hz (default 44100).
    bit_rate : int
        Bits per second for lossy encoders (default 128000).
    device : InputDevice or str, optional
        A device from ``get_input_devices()`` (or its id); None records the default source.
    android_configuration, ios_configuration
        Accepted so that shared code runs; micrec ignores them.
    """

    encoder: AudioEncoder = AudioEncoder.WAV
    suppress_noise: bool = False
    cancel_echo: bool = False
    auto_gain: bool = False
    channels: int = 2
    sample_rate: int = 44100
    bit_rate: ft.Number = 128000
    device: Optional[InputDevice] = None  # noqa: UP045 - ft.value resolves the annotation at runtime
    android_configuration: AndroidRecorderConfiguration = field(
        default_factory=lambda: AndroidRecorderConfiguration())
    ios_configuration: IosRecorderConfiguration = field(default_factory=lambda: IosRecorderConfiguration())


@ft.value
class AudioRecorderUploadSettings:
    """Where to send the take after ``stop_recording()``.

    Attributes
    ----------
    upload_url : str
        Destination URL (for example one from ``page.get_upload_url()``).
    method : str
        HTTP method (default ``"PUT"``).
    headers : dict, optional
        Extra request headers.
    file_name : str, optional
        Name reported in :class:`AudioRecorderUploadEvent`.
    """

    upload_url: str
    method: str = "PUT"
    headers: Optional[dict[str, str]] = None  # noqa: UP045
    file_name: Optional[str] = None  # noqa: UP045


@dataclass
class AudioRecorderStateChangeEvent(ft.Event[Any]):
    """What ``on_state_change`` (and the 0.27 name ``on_state_changed``) receives.

    ``e.state`` is the new :class:`AudioRecorderState` and ``e.data`` its string value.
    micrec adds ``path`` (the output file) and ``error`` (the fault that ended the take, with
    ``STOPPED``), both None where they do not apply.
    """

    state: AudioRecorderState
    path: Optional[str] = None  # noqa: UP045
    error: Optional[BaseException] = None  # noqa: UP045


@dataclass
class AudioRecorderStreamEvent(ft.Event[Any]):
    """A chunk of the take as raw PCM16 (s16le, interleaved) bytes, while recording."""

    chunk: bytes
    sequence: int
    bytes_streamed: int


@dataclass
class AudioRecorderUploadEvent(ft.Event[Any]):
    """Upload progress: ``progress`` 0..1, ``bytes_uploaded``, or ``error`` (a message).

    micrec adds ``path``: the file being sent, which stays on disk when the upload fails.
    """

    file_name: Optional[str] = None  # noqa: UP045
    progress: Optional[float] = None  # noqa: UP045
    bytes_uploaded: Optional[int] = None  # noqa: UP045
    error: Optional[str] = None  # noqa: UP045
    path: Optional[str] = None  # noqa: UP045
