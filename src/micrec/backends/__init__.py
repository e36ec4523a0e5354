"""Capture backends and the choice among them.

``"auto"`` picks a reachable PulseAudio/PipeWire server first, then PortAudio. A backend can
also be named (``"pulse"``, ``"portaudio"``) or passed as an object implementing
:class:`CaptureBackend`, such as :class:`TestBackend`. The environment variable
``MICREC_BACKEND`` overrides ``"auto"``.
"""

from __future__ import annotations

import os

from ..errors import BackendUnavailableError, InvalidConfigError
from .base import BlockSink, CaptureBackend, CaptureStream, StreamSpec
from .testing import TestBackend

__all__ = ["BACKEND_NAMES", "BlockSink", "CaptureBackend", "CaptureStream", "StreamSpec",
           "TestBackend", "get_backend"]

#: The names ``AudioRecorder(backend=...)`` and :func:`get_backend` accept.
BACKEND_NAMES = ("auto", "pulse", "portaudio")


def get_backend(backend: str | CaptureBackend | None = None) -> CaptureBackend:
    """The backend object for a name, an object, or None/"auto" (the automatic choice)."""
    if backend is not None and not isinstance(backend, str):
        if not isinstance(backend, CaptureBackend):
            raise InvalidConfigError(
                f"backend {backend!r} does not implement micrec.backends.CaptureBackend",
                value=backend, name="backend")
        return backend
    name = backend or os.environ.get("MICREC_BACKEND") or "auto"
    if name == "pulse":
        from .pulse import PulseBackend

        return PulseBackend()
    if name == "portaudio":
        from .portaudio import PortAudioBackend

        return PortAudioBackend()
    if name == "auto":
        return _automatic()
    raise InvalidConfigError(f"unknown backend {name!r}; use one of {BACKEND_NAMES}", value=name,
                             name="backend")


def _automatic() -> CaptureBackend:
    from . import portaudio, pulse

    if pulse.server_reachable():
        return pulse.PulseBackend()
    if portaudio.available():
        return portaudio.PortAudioBackend()
    raise BackendUnavailableError(
        "no capture backend: no PulseAudio/PipeWire server answers and PortAudio is not installed "
        "(apt-get install libportaudio2, or start a sound server)")
