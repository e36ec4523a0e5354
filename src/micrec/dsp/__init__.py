"""Block transforms run by the pipeline's worker thread: format conversion and voice processing."""

from __future__ import annotations

from typing import Any

from ..errors import FeatureUnavailableError
from .base import Processor

__all__ = ["Processor", "build_voice_processing"]


def build_voice_processing(rate: int, channels: int, *, auto_gain: bool, suppress_noise: bool,
                           cancel_echo: bool, backend: Any = None) -> Processor | None:
    """The voice-processing stage for the flags, or None when all are off (zero cost)."""
    wanted = [name for name, on in (("auto_gain", auto_gain), ("suppress_noise", suppress_noise),
                                    ("cancel_echo", cancel_echo)) if on]
    if not wanted:
        return None
    raise FeatureUnavailableError(
        f"{', '.join(wanted)} {'is' if len(wanted) == 1 else 'are'} not available in this version of "
        "micrec; set them to False", value=wanted, name=wanted[0])
