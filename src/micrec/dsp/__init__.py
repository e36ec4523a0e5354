"""Block transforms run by the pipeline's worker thread: format conversion and voice processing."""

from __future__ import annotations

from typing import Any

from .base import Processor

__all__ = ["Processor", "build_voice_processing"]


def build_voice_processing(rate: int, channels: int, *, auto_gain: bool, suppress_noise: bool,
                           cancel_echo: bool, backend: Any = None) -> Processor | None:
    """The voice-processing stage for the flags, or None when all are off (zero cost).

    Parameters
    ----------
    rate, channels : int
        The format of the blocks it will process (the file's).
    auto_gain, suppress_noise, cancel_echo : bool
        The recorder's flags.
    backend : CaptureBackend, optional
        The capture backend; ``cancel_echo`` needs one that can read the default output's
        monitor (PulseAudio or PipeWire).

    Raises
    ------
    FeatureUnavailableError
        ``cancel_echo`` with a backend that has no output monitor, or pywebrtc-audio missing.
    """
    if not (auto_gain or suppress_noise or cancel_echo):
        return None
    from .voice import VoiceProcessor, native_rate

    reference = None
    if cancel_echo:
        from .echo import EchoReference

        reference = EchoReference.for_backend(backend, native_rate(rate), channels)
    return VoiceProcessor(rate, channels, auto_gain=auto_gain, suppress_noise=suppress_noise,
                          reference=reference)
