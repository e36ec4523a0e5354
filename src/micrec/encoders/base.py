"""The encoder interface: what the pipeline needs from anything that writes a file.

An encoder takes blocks of interleaved int16 samples, shaped ``(frames, channels)``, at the
rate and channel count it was opened with, and writes them to its file as they come: nothing
is kept in memory beyond one codec frame. ``close()`` flushes and finalizes; ``abort()`` closes
and deletes the file.
"""

from __future__ import annotations

import errno
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import EncoderError, MicrecError, OutputError
from ..types import AudioEncoder

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Block = npt.NDArray[np.int16]

__all__ = ["Encoder", "EncoderInfo"]


class Encoder(ABC):
    """Base class of micrec's encoders.

    Subclasses set the class attributes and implement :meth:`write`, :meth:`seek` and
    :meth:`_finalize`. They are created by :func:`micrec.encoders.create`, after
    :meth:`unavailable_reason` returned None.

    Parameters
    ----------
    path : path-like
        The output file. The caller has checked that its directory exists.
    rate, channels : int
        The stream's sample rate and channel count, already mapped by :meth:`admitted_rate`
        and :meth:`admitted_channels`.
    bit_rate : int
        Target bit rate in bits/s (ignored by lossless encoders).
    """

    #: The contract's encoder this class writes.
    codec: ClassVar[AudioEncoder]
    #: File extensions (lower case, with the dot) this encoder writes; the first is the default.
    extensions: ClassVar[tuple[str, ...]]
    #: Rates the codec admits, or empty for any rate in 8000..192000.
    rates: ClassVar[tuple[int, ...]] = ()
    #: Channel counts the codec admits.
    channel_counts: ClassVar[tuple[int, ...]] = (1, 2)
    #: True where any file extension is accepted (raw PCM).
    any_extension: ClassVar[bool] = False
    #: What :meth:`seek` can reach: "sample", or a description of the granularity.
    seek_granularity: ClassVar[str] = "sample"

    def __init__(self, path: str | os.PathLike[str], rate: int, channels: int, bit_rate: int) -> None:
        self.path = Path(path)
        self.rate = rate
        self.channels = channels
        self.bit_rate = bit_rate
        self.frames_written = 0
        self._closed = False

    # -- what the pipeline asks before opening ----------------------------------------------
    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when this encoder can run here, else why not and what to install."""
        return None

    @classmethod
    def admitted_rate(cls, rate: int) -> int:
        """The rate the file will have for a configured ``rate``: the nearest admitted one."""
        if not cls.rates:
            return rate
        return min(cls.rates, key=lambda r: (abs(r - rate), -r))

    @classmethod
    def admitted_channels(cls, channels: int) -> int:
        return channels if channels in cls.channel_counts else cls.channel_counts[0]

    @classmethod
    def accepts_extension(cls, suffix: str) -> bool:
        return cls.any_extension or suffix.lower() in cls.extensions

    # -- the stream --------------------------------------------------------------------------
    @abstractmethod
    def write(self, block: Block) -> None:
        """Encode and write one block of int16 samples shaped (frames, channels)."""

    @abstractmethod
    def seek(self, frame: int) -> int:
        """Cut the take at ``frame`` (or the nearest earlier boundary) and continue from there.

        Returns the frame the take now ends at.
        """

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make what was written so far readable by other processes (called every 0.25 s of time or of audio)."""

    def close(self) -> None:
        """Flush the codec and finalize the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finalize()
        except MicrecError:
            raise
        except Exception as exc:  # mapped: an OSError keeps its errno
            raise self._wrap_write_error(exc, "finalize") from exc

    def abort(self) -> None:
        """Close and delete the file (a cancelled take or a start that failed)."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the file is deleted either way
            pass
        self.path.unlink(missing_ok=True)

    @abstractmethod
    def _finalize(self) -> None:
        """Flush the codec and write the trailer/header."""

    # -- helpers for subclasses -------------------------------------------------------------
    def _wrap_write_error(self, exc: BaseException, doing: str = "write") -> MicrecError:
        """The error to raise for ``exc``: OutputError with the errno for a system error."""
        if isinstance(exc, MicrecError):
            return exc
        code = exc.errno if isinstance(exc, OSError) else None
        if code is None:
            code = self._system_errno(exc)
        if code is None:
            return EncoderError(f"{self.codec.value} encoder failed on {self.path}: {exc}")
        return output_error(self.path, code, doing, self.frames_written / self.rate)

    def _system_errno(self, exc: BaseException) -> int | None:
        """The errno behind a library's error that does not say it (libsndfile), or None."""
        return None


#: What a user reads for the write errors a recording meets in practice.
_WHAT_HAPPENED = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EIO: "an I/O error (the disk or its connection failed)",
    errno.EROFS: "the file system is read-only (remounted after an error?)",
    errno.EFBIG: "the file is too large for the file system",
}


def output_error(path: Path, code: int, doing: str, seconds: float) -> OutputError:
    """OutputError for a failed write: what happened, the errno, and the seconds kept."""
    name = errno.errorcode.get(code, str(code))
    happened = _WHAT_HAPPENED.get(code, os.strerror(code))
    return OutputError(
        f"could not {doing} {path}: {happened} ({os.strerror(code)}, {name}); the take ended, and "
        f"the file keeps what was written before: {seconds:.2f} s recorded", path=path, errno=code)


class EncoderInfo:
    """What ``micrec encoders`` shows about one encoder."""

    def __init__(self, codec: AudioEncoder, extensions: Sequence[str], rates: Sequence[int],
                 channel_counts: Sequence[int], unavailable: str | None, seek: str) -> None:
        self.codec = codec
        self.extensions = tuple(extensions)
        self.rates = tuple(rates)
        self.channel_counts = tuple(channel_counts)
        self.unavailable = unavailable
        self.seek = seek

    @property
    def supported(self) -> bool:
        return self.unavailable is None
