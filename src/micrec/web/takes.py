"""The recordings directory: the server names every file; clients only pick from the list.

Names are ``take-YYYYMMDD-HHMMSS-xxxxxx.ext`` (UTC, random suffix; ``...-partN.ext`` for the
parts of a take continued after a dropped connection). A name from a client is
only ever looked up among the files of the directory that match that pattern, so no client
input reaches a path.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from .. import encoders
from ..errors import OutputError
from ..types import AudioEncoder

__all__ = ["Take", "TakeStore"]

# "-partN": a take continued by another process after a dropped connection (micrec.web.resume).
_NAME = re.compile(r"take-\d{8}-\d{6}-[0-9a-f]{6}(?:-part[1-9]\d{0,3})?\.[a-z0-9]{1,5}")


@dataclass(frozen=True)
class Take:
    """One recorded file: its name, size in bytes and modification time (epoch seconds)."""

    name: str
    size: int
    mtime: float


class TakeStore:
    """Names, lists and finds takes in one directory (created if missing).

    Raises
    ------
    OutputError
        ``directory`` exists and is not a directory, or cannot be created.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).resolve()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot use {str(self.directory)!r} as the recordings directory: {exc}",
                              path=self.directory, name="directory") from exc

    def new_path(self, codec: AudioEncoder) -> Path:
        """A fresh, unused path for a take written by ``codec``."""
        extension = _extension(codec)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        while True:
            path = self.directory / f"take-{stamp}-{secrets.token_hex(3)}{extension}"
            if not path.exists():
                return path

    def list(self) -> list[Take]:
        """The takes in the directory, newest first."""
        takes = []
        for path in self.directory.iterdir():
            if _NAME.fullmatch(path.name) and path.is_file():
                stat = path.stat()
                takes.append(Take(path.name, stat.st_size, stat.st_mtime))
        return sorted(takes, key=lambda t: (t.mtime, t.name), reverse=True)

    def find(self, name: str) -> Path | None:
        """The path of the take called ``name``, or None (also for any name we did not make)."""
        if not _NAME.fullmatch(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None


def _extension(codec: AudioEncoder) -> str:
    cls = encoders.encoder_class(codec)
    if cls is None or not cls.extensions:
        return ".pcm" if codec is AudioEncoder.PCM16BITS else f".{codec.value.lower()}"
    return cls.extensions[0]
