"""Where takes are kept: the :class:`TakeStore` interface and the local directory store.

The server names every take ``take-YYYYMMDD-HHMMSS-xxxxxx.ext`` (UTC, random suffix;
``...-partN.ext`` for the parts of a take continued after a dropped connection) and records who
owns it; clients only pick from their own list. A name from a client is only ever compared with
that pattern and looked up among the owner's takes, so no client input reaches a path or a key.

A store hands the recorder a local path to write (:meth:`TakeStore.new_take`); the directory
store keeps the file there, the S3 store (:mod:`micrec.web.s3store`) uploads it while it grows
and when it ends (:meth:`TakeStore.finish`).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .. import encoders
from ..errors import InvalidConfigError, OutputError
from ..types import AudioEncoder

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["OWNER_XATTR", "DirectoryStore", "StoredTake", "Take", "TakeStore", "Usage", "is_take_name",
           "new_take_name", "open_store"]

# "-partN": a take continued by another process after a dropped connection (micrec.web.resume).
_NAME = re.compile(r"take-\d{8}-\d{6}-[0-9a-f]{6}(?:-part[1-9]\d{0,3})?\.[a-z0-9]{1,5}")
#: The extended attribute that names a take's owner in a directory store.
OWNER_XATTR = "user.micrec.owner"
#: Suffix of the sidecar file that names the owner where the file system has no user xattrs.
OWNER_SIDECAR = ".owner"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Take:
    """One recorded file: its name, size in bytes and modification time (epoch seconds)."""

    name: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Usage:
    """What a visitor and the whole store hold, for the quotas (bytes and takes)."""

    takes: int
    bytes: int
    store_bytes: int


@dataclass(frozen=True)
class StoredTake:
    """A take found for its owner, ready to be served.

    ``path`` is a local file when there is one (served with ranges by the web server);
    otherwise :meth:`read` streams the bytes from the store.
    """

    name: str
    owner: str
    size: int
    path: Path | None
    store: TakeStore

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start..end`` (inclusive; default to the end), in pieces."""
        return self.store.read(self.name, self.owner, start, self.size - 1 if end is None else end)


class TakeStore(Protocol):
    """What the web app needs from a place that keeps takes.

    Every method that takes an ``owner`` answers for that visitor's takes only: a take of
    another owner is not found, whether or not its name is known.
    """

    def new_take(self, codec: AudioEncoder, owner: str, name: str | None = None) -> Path:
        """A local path for a new take by ``codec``, recorded for ``owner`` (the recorder creates it).

        ``name`` asks for that file name (the next part of a take continued after a dropped
        connection, :func:`micrec.web.resume.part_name`); FileExistsError if it is taken.
        """
        ...

    def opened(self, path: Path) -> None:
        """The recorder created the file at ``path`` (called again at each resume: idempotent)."""
        ...

    def finish(self, path: Path) -> None:
        """The take at ``path`` is finalized: keep it for good (blocking; may upload)."""
        ...

    def list(self, owner: str) -> list[Take]:
        """``owner``'s takes, newest first."""
        ...

    def open(self, name: str, owner: str) -> StoredTake | None:
        """``owner``'s take called ``name``, or None."""
        ...

    def read(self, name: str, owner: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive) of ``owner``'s take :meth:`open` found."""
        ...

    def usage(self, owner: str) -> Usage:
        """``owner``'s takes and bytes, and the bytes of the whole store."""
        ...

    def recover(self) -> int:
        """Complete what a killed server left unfinished; returns how many takes were recovered."""
        ...

    def close(self) -> None:
        """Stop background work (uploads of open takes continue to be owed to :meth:`finish`)."""
        ...


def open_store(store: str | os.PathLike[str] | TakeStore | None, directory: str | os.PathLike[str]) -> TakeStore:
    """The store ``create_app`` was given: a :class:`TakeStore`, ``"s3://BUCKET/PREFIX"`` or None.

    None (or a path) is a :class:`DirectoryStore`; for S3, ``directory`` holds the takes while
    they are recorded.

    Raises
    ------
    InvalidConfigError
        A string that is neither a path nor an ``s3://`` URL.
    """
    if store is None:
        return DirectoryStore(directory)
    if isinstance(store, (str, os.PathLike)):
        text = os.fspath(store)
        if text.startswith("s3://"):
            from .s3store import S3Store

            return S3Store(text, spool=directory)
        if "://" in text:
            raise InvalidConfigError(f"store {text!r} is not supported: give a directory or s3://BUCKET/PREFIX",
                                     value=text, name="store")
        return DirectoryStore(text)
    return store


def is_take_name(name: str) -> bool:
    """Whether ``name`` has the form of a take's name (the only names ever looked up)."""
    return bool(_NAME.fullmatch(name))


def new_take_name(codec: AudioEncoder) -> str:
    """A fresh name for a take written by ``codec`` (unique with overwhelming odds)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"take-{stamp}-{secrets.token_hex(3)}{_extension(codec)}"


class DirectoryStore:
    """Takes in one local directory (created if missing), each file tagged with its owner.

    The owner is the file's extended attribute ``user.micrec.owner`` (``getfattr -n
    user.micrec.owner take-....wav``); on a file system without user xattrs, a sidecar file
    ``.take-....wav.owner`` beside it. A take with neither belongs to nobody and is listed to
    nobody (takes recorded before micrec kept owners have neither).

    Raises
    ------
    OutputError
        ``directory`` exists and is not a directory, or cannot be created.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).resolve()
        # Owners of takes handed out whose file the recorder has not created yet: tagged in
        # opened() (creating the file here would leave an empty one when the recorder refuses).
        self._claims: dict[str, str] = {}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot use {str(self.directory)!r} as the recordings directory: {exc}",
                              path=self.directory, name="directory") from exc

    def new_take(self, codec: AudioEncoder, owner: str, name: str | None = None) -> Path:
        while True:
            path = self.directory / (name or new_take_name(codec))
            if not path.exists() and path.name not in self._claims:
                self._claims[path.name] = owner
                return path
            if name is not None:
                raise FileExistsError(f"a take called {name!r} exists already")

    def opened(self, path: Path) -> None:
        owner = self._claims.pop(path.name, None)
        if owner is not None:
            set_owner(path, owner)

    def finish(self, path: Path) -> None:
        """The file is where it stays; a take the recorder never created is forgotten."""
        self._claims.pop(path.name, None)

    def list(self, owner: str) -> list[Take]:
        takes = [take for take, who in self._all() if who == owner]
        return sorted(takes, key=lambda t: (t.mtime, t.name), reverse=True)

    def open(self, name: str, owner: str) -> StoredTake | None:
        if not is_take_name(name):
            return None
        path = self.directory / name
        if not path.is_file() or self._owner(path) != owner:
            return None
        return StoredTake(name, owner, path.stat().st_size, path, self)

    def read(self, name: str, owner: str, start: int, end: int) -> Iterator[bytes]:
        yield from read_range(self.directory / name, start, end)

    def usage(self, owner: str) -> Usage:
        mine = total = count = 0
        for take, who in self._all():
            total += take.size
            if who == owner:
                mine += take.size
                count += 1
        return Usage(count, mine, total)

    def recover(self) -> int:
        """Nothing to recover: every take is a valid file at every moment (see docs/encoders.md)."""
        return 0

    def close(self) -> None:
        """No background work."""

    def _all(self) -> Iterable[tuple[Take, str | None]]:
        for path in self.directory.iterdir():
            if is_take_name(path.name):
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                yield Take(path.name, stat.st_size, stat.st_mtime), self._owner(path)

    def _owner(self, path: Path) -> str | None:
        return self._claims.get(path.name) or get_owner(path)


def set_owner(path: Path, owner: str) -> None:
    """Record ``owner`` on the take at ``path`` (xattr, or a sidecar where xattrs are not supported)."""
    try:
        os.setxattr(path, OWNER_XATTR, owner.encode())
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        _sidecar(path).write_text(owner, encoding="utf-8")


def get_owner(path: Path) -> str | None:
    """The owner recorded on the take at ``path``, or None."""
    try:
        return os.getxattr(path, OWNER_XATTR).decode()
    except OSError:
        pass
    try:
        return _sidecar(path).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def read_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start..end`` (inclusive) of a local file, in 64 KiB pieces."""
    with open(path, "rb") as file:
        file.seek(start)
        left = end - start + 1
        while left > 0:
            piece = file.read(min(_CHUNK, left))
            if not piece:
                return
            left -= len(piece)
            yield piece


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}{OWNER_SIDECAR}")


def _extension(codec: AudioEncoder) -> str:
    cls = encoders.encoder_class(codec)
    if cls is None or not cls.extensions:
        return ".pcm" if codec is AudioEncoder.PCM16BITS else f".{codec.value.lower()}"
    return cls.extensions[0]
