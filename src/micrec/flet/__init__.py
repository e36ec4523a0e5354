"""micrec.flet: flet-audio-recorder's API, recording in the Python process with micrec.

Replace ``import flet_audio_recorder as far`` with ``import micrec.flet as far``: the same
``AudioRecorder``, configuration, event and upload types, and the Flet 0.27 names, backed by
micrec's engine instead of a Flutter plugin. See ``docs/flet.md``.

Needs the ``flet`` extra: ``pip install 'micrec[flet]'``.
"""

from __future__ import annotations

from .._lazy import require

require("flet", extra="flet")

from . import legacy, types  # noqa: E402, F401 - legacy registers the Flet 0.27 flavour
from .recorder import AudioRecorder  # noqa: E402
from .types import *  # noqa: E402, F403 - the types are the package's API, listed in types.__all__

__all__ = ["AudioRecorder", *types.__all__]
