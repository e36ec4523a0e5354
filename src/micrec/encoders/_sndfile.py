"""Shared plumbing for the encoders that write through libsndfile (python-soundfile)."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any, ClassVar

from .._lazy import require
from .base import Encoder

if TYPE_CHECKING:
    import soundfile

    from .base import Block

# libsndfile commands that python-soundfile does not wrap (values from sndfile.h).
SFC_UPDATE_HEADER_NOW = 0x1060
SFC_SET_UPDATE_HEADER_AUTO = 0x1061
SFC_RF64_AUTO_DOWNGRADE = 0x1210


def soundfile_module() -> Any:
    return require("soundfile", extra="core", package="soundfile")


def sndfile_unavailable_reason(format_name: str) -> str | None:
    try:
        sf = soundfile_module()
    except ImportError as exc:
        return str(exc)
    if format_name not in sf.available_formats():
        return f"this libsndfile ({sf.__libsndfile_version__}) cannot write {format_name}"
    return None


def sf_command(f: soundfile.SoundFile, command: int, value: int) -> int:
    sf = soundfile_module()
    return int(sf._snd.sf_command(f._file, command, sf._ffi.NULL, value))


def open_for_writing(path: str | os.PathLike[str], rate: int, channels: int,
                     format_name: str) -> soundfile.SoundFile:
    sf = soundfile_module()
    return sf.SoundFile(os.fspath(path), "w", rate, channels, "PCM_16", format=format_name)


class SndfileEncoder(Encoder):
    """An encoder writing 16-bit samples through libsndfile in the format ``format_name``."""

    format_name: ClassVar[str]

    def __init__(self, path: str, rate: int, channels: int, bit_rate: int) -> None:
        super().__init__(path, rate, channels, bit_rate)
        self._file = open_for_writing(path, rate, channels, self.format_name)
        sf = soundfile_module()
        # libsndfile's own call, as SoundFile.write makes it (see write()).
        self._writef, self._from_buffer = sf._snd.sf_writef_short, sf._ffi.from_buffer
        numpy = require("numpy", extra="core")
        self._int16, self._as_block = numpy.dtype("=i2"), numpy.ascontiguousarray  # what sf_writef_short reads

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return sndfile_unavailable_reason(cls.format_name)

    def write(self, block: Block) -> None:
        """Hand the block to libsndfile's ``sf_writef_short``.

        SoundFile.write wraps the same call in five seeks (it keeps a read/write position and a
        frame count that a file opened only for writing has no use for): a system call and a
        few hundred lines of Python a block. The session's blocks are C-contiguous native int16
        of the file's channels; another layout or byte order is copied into that first (SoundFile
        would write a byte-swapped block's bytes as they are), and a block of the wrong shape
        goes to SoundFile.write, which says what is wrong with it.
        """
        frames = len(block)
        try:
            if block.dtype != self._int16 or not block.flags.c_contiguous:
                block = self._as_block(block, dtype=self._int16)
            if block.ndim != 2 or block.shape[1] != self.channels:
                self._file.write(block)
            elif self._writef(self._file._file, self._from_buffer("short[]", block), frames) != frames:
                raise RuntimeError(self._sndfile_message())
        except Exception as exc:  # libsndfile reports as RuntimeError/OSError
            raise self._wrap_write_error(exc) from exc
        self.frames_written += frames

    def _command(self, command: int, value: int, doing: str) -> None:
        """An ``sf_command`` that writes (a header update); its failure is raised as a write error."""
        sf = soundfile_module()
        sf_command(self._file, command, value)
        if sf._snd.sf_error(self._file._file):
            raise self._wrap_write_error(RuntimeError(self._sndfile_message()), doing)

    def _sndfile_message(self) -> str:
        sf = soundfile_module()
        handle = getattr(self._file, "_file", None)
        return str(sf._ffi.string(sf._snd.sf_strerror(handle or sf._ffi.NULL)).decode("utf-8", "replace"))

    def _system_errno(self, exc: BaseException) -> int | None:
        # libsndfile's error codes say only "System error."; the errno is in the handle's own
        # message ("System error : No space left on device.") and in cffi's saved errno.
        sf = soundfile_module()
        if "System error" not in str(exc) and getattr(exc, "code", None) != 2:  # SFE_SYSTEM
            return None
        message = self._sndfile_message() if getattr(self._file, "_file", None) else ""
        reason = message.partition("System error : ")[2].rstrip(".")
        for code in errno.errorcode:
            if reason and os.strerror(code) == reason:
                return code
        saved = int(sf._ffi.errno)
        return saved or None

    def _finalize(self) -> None:
        self._file.close()
