"""Sending a finished take to an HTTP endpoint, reporting progress as it goes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._lazy import require

__all__ = ["CHUNK_BYTES", "UploadProgress", "upload_file"]

CHUNK_BYTES = 64 * 1024
UPLOAD_TIMEOUT = 60.0

#: ``progress(fraction, bytes_sent, error)``; the last call has fraction 1.0 or an error.
UploadProgress = Callable[[float | None, int, str | None], None]


def upload_file(path: Path, settings: Any, progress: UploadProgress) -> bool:
    """Send ``path`` as the request body; True when the server answered 2xx.

    The body goes out with a Content-Length in chunks of :data:`CHUNK_BYTES`, with a
    ``progress`` call after each. Failures (connection, timeout, a non-2xx status) are
    reported through ``progress`` with an error message, never raised.
    """
    httpx = require("httpx", extra="flet")
    size = path.stat().st_size
    headers = {**(settings.headers or {}), "Content-Length": str(size)}
    progress(0.0, 0, None)
    try:
        with httpx.Client(timeout=UPLOAD_TIMEOUT) as client:
            response = client.request(settings.method, settings.upload_url, headers=headers,
                                      content=_chunks(path, size, progress))
    except httpx.HTTPError as exc:
        progress(None, 0, f"{settings.method} {settings.upload_url} failed: {exc}")
        return False
    if not response.is_success:
        progress(None, size, f"{settings.method} {settings.upload_url} answered HTTP "
                             f"{response.status_code} {response.reason_phrase}")
        return False
    progress(1.0, size, None)
    return True


def _chunks(path: Path, size: int, progress: UploadProgress) -> Iterator[bytes]:
    sent = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk
            sent += len(chunk)
            if sent < size:
                progress(sent / size, sent, None)

