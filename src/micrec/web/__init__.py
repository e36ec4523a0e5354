"""micrec.web: record a browser's microphone into a file on the server.

A small ASGI app (Starlette) serves a recorder page and a JavaScript module. The page captures
PCM with an AudioWorklet and streams it over a WebSocket; on the server each socket is a
capture backend (:class:`~micrec.web.backend.SocketBackend`) feeding an ordinary
:class:`micrec.AudioRecorder`, so encoders, DSP flags, events, levels and crash-safe files
work as with a local microphone.

Importing this package imports nothing heavy; :func:`create_app` needs the ``web`` extra
(``pip install 'micrec[web]'``).

Examples
--------
>>> from micrec.web import create_app                                   # doctest: +SKIP
>>> app = create_app("recordings")                                      # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import WebConfig, create_app
    from .backend import SocketBackend
    from .protocol import Limits

__all__ = ["Limits", "SocketBackend", "WebConfig", "create_app"]

_LAZY = {
    "create_app": "app",
    "WebConfig": "app",
    "SocketBackend": "backend",
    "Limits": "protocol",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'micrec.web' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
