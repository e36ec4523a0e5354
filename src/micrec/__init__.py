"""micrec: record the microphone to a file, with Flet's AudioRecorder API, natively in Python.

Importing micrec loads no audio library and does no I/O; backends and encoders are imported
when a recording starts.
"""

from __future__ import annotations

from .errors import (
    BackendUnavailableError,
    DeviceError,
    DeviceLostError,
    DeviceNotFoundError,
    EncoderError,
    EncoderUnavailableError,
    FeatureUnavailableError,
    InvalidConfigError,
    MicrecError,
    OutputError,
    StateError,
)
from .recorder import AudioRecorder, list_input_devices
from .types import (
    Amplitude,
    AudioEncoder,
    AudioRecorderState,
    AudioRecorderStateChangeEvent,
    InputDevice,
)

__version__ = "0.1.0"

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
    "MicrecError",
    "OutputError",
    "StateError",
    "__version__",
    "list_input_devices",
]
