"""micrec: record the microphone to a file, with Flet's AudioRecorder API, natively in Python.

Importing micrec loads no audio library and does no I/O; backends and encoders are imported
when a recording starts.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    BackendUnavailableError,
    DeviceError,
    DeviceLostError,
    DeviceNotFoundError,
    EncoderError,
    EncoderUnavailableError,
    FeatureUnavailableError,
    InvalidConfigError,
    MalformedAudioError,
    MicrecError,
    OutputError,
    PermissionDeniedError,
    StateError,
)
from .recorder import AudioRecorder, list_input_devices, list_output_devices
from .types import (
    Amplitude,
    AudioEncoder,
    AudioRecorderState,
    AudioRecorderStateChangeEvent,
    InputDevice,
    OutputDevice,
)

__all__ = [
    "Amplitude",
    "AudioEncoder",
    "AudioRecorder",
    "AudioRecorderState",
    "AudioRecorderStateChangeEvent",
    "BackendUnavailableError",
    "DeviceError",
    "DeviceLostError",
    "DeviceNotFoundError",
    "EncoderError",
    "EncoderUnavailableError",
    "FeatureUnavailableError",
    "InputDevice",
    "InvalidConfigError",
    "MalformedAudioError",
    "MicrecError",
    "OutputDevice",
    "OutputError",
    "PermissionDeniedError",
    "StateError",
    "__version__",
    "list_input_devices",
    "list_output_devices",
]


def __getattr__(name: str) -> Any:
    # ``__version__`` is read from the installed package's metadata on first use, not at import.
    if name == "__version__":
        from ._version import package_version

        return package_version()
    raise AttributeError(f"module 'micrec' has no attribute {name!r}")
