"""micrec's exceptions.

Every exception micrec raises on purpose is a :class:`MicrecError`. Like PyAV's, each one also
subclasses the built-in exception that says what kind of error it is, so that code written for
``ValueError`` or ``OSError`` keeps working::

    try:
        rec.start_recording("take.wav")
    except micrec.InvalidConfigError as e:     # also a ValueError
        print(e.name, e.value, e)

Errors carry the bad value (``value``) and, where one is involved, the path (``path``).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "BackendUnavailableError",
    "DeviceError",
    "DeviceLostError",
    "DeviceNotFoundError",
    "EncoderError",
    "EncoderUnavailableError",
    "FeatureUnavailableError",
    "InvalidConfigError",
    "MalformedAudioError",
    "MicrecError",
    "OutputError",
    "PermissionDeniedError",
    "StateError",
]


class MicrecError(Exception):
    """Base class of every error micrec raises.

    Attributes
    ----------
    value : object
        The offending value, where there is one.
    name : str or None
        The name of the setting or argument that held it.
    """

    def __init__(self, message: str, *, value: Any = None, name: str | None = None) -> None:
        super().__init__(message)
        self.value = value
        self.name = name


class InvalidConfigError(MicrecError, ValueError):
    """A setting or argument has a value micrec cannot use (encoder, rate, channels, ...)."""


class StateError(MicrecError, RuntimeError):
    """The call does not fit the recorder's state (start while recording, seek while running)."""


class EncoderUnavailableError(MicrecError, RuntimeError):
    """The encoder exists in the contract but cannot run on this machine; the message says why."""


class FeatureUnavailableError(MicrecError, RuntimeError):
    """A requested feature (a DSP flag, echo reference, ...) cannot work here; the message says why."""


class BackendUnavailableError(MicrecError, RuntimeError):
    """No capture backend (sound server, PortAudio) can be used, or the named one is missing."""


class DeviceError(MicrecError, OSError):
    """A capture device could not be opened or failed while recording."""


class DeviceNotFoundError(DeviceError, ValueError):
    """The ``device`` id names no capture device present now."""


class DeviceLostError(DeviceError):
    """The capture device went away (unplugged, server gone) while recording."""


class PermissionDeniedError(DeviceError, PermissionError):
    """The microphone's owner refused access (a visitor denied it in the browser's prompt)."""


class MalformedAudioError(DeviceError, ValueError):
    """Audio pushed from outside (a remote client) is not what was agreed: a torn or oversized chunk."""


class OutputError(MicrecError, OSError):
    """The output file cannot be created or written (missing directory, permissions, disk full).

    Where the system reported a cause, ``errno`` and ``strerror`` carry it (``errno.ENOSPC``
    for a full disk, ``EDQUOT``, ``EIO``, ``EROFS``...), as in any OSError, and ``filename`` is
    the path; ``str(e)`` is micrec's message, which says what happened and what was kept.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 value: Any = None, name: str | None = "output_path", errno: int | None = None) -> None:
        super().__init__(message, value=value if value is not None else path, name=name)
        self.path = None if path is None else os.fspath(path)
        if errno is not None:
            self.errno = errno
            self.strerror = os.strerror(errno)
            self.filename = self.path

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EncoderError(MicrecError, RuntimeError):
    """The encoder failed while writing the file."""
