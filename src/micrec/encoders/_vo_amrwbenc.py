"""A ctypes binding of VisualOn's AMR-WB encoder (Debian ``libvo-amrwbenc0``).

``E_IF_encode`` turns 320 samples (20 ms at 16 kHz) into one frame of the AMR-WB storage
format (RFC 4867 §5): a table-of-contents byte and the speech bits.
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING

from ..errors import EncoderError
from ._clib import open_library

if TYPE_CHECKING:
    from .base import Block

__all__ = ["FRAME_SAMPLES", "MODES", "AmrWbCodec", "amrwb_unavailable_reason"]

INSTALL_HINT = "apt-get install libvo-amrwbenc0"
_SONAME = "libvo-amrwbenc.so.0"
FRAME_SAMPLES = 320
#: Bit rates of the nine AMR-WB modes, mode 0 first.
MODES = (6600, 8850, 12650, 14250, 15850, 18250, 19850, 23050, 23850)
_MAX_FRAME_BYTES = 61


@functools.cache
def _library() -> ctypes.CDLL | None:
    lib = open_library("vo-amrwbenc", _SONAME)
    if lib is None:
        return None
    lib.E_IF_init.restype = ctypes.c_void_p
    lib.E_IF_init.argtypes = []
    lib.E_IF_encode.restype = ctypes.c_int
    lib.E_IF_encode.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.E_IF_exit.restype = None
    lib.E_IF_exit.argtypes = [ctypes.c_void_p]
    return lib


def amrwb_unavailable_reason() -> str | None:
    """None when libvo-amrwbenc can be loaded, else what to install."""
    if _library() is None:
        return f"the AMR-WB encoder library ({_SONAME}) is not installed: {INSTALL_HINT}"
    return None


class AmrWbCodec:
    """One encoder state; :meth:`encode_frame` takes exactly :data:`FRAME_SAMPLES` samples."""

    def __init__(self, mode: int) -> None:
        lib = _library()
        if lib is None:
            raise EncoderError(f"cannot load {_SONAME}: {INSTALL_HINT}", value=_SONAME)
        self._lib = lib
        self.mode = mode
        self._state = lib.E_IF_init()
        if not self._state:
            raise EncoderError("E_IF_init of libvo-amrwbenc failed (out of memory?)")
        self._out = ctypes.create_string_buffer(_MAX_FRAME_BYTES)

    def encode_frame(self, frame: Block) -> bytes:
        size = self._lib.E_IF_encode(self._state, self.mode, frame.ctypes.data, self._out, 0)
        if size <= 0:
            raise EncoderError(f"E_IF_encode of libvo-amrwbenc failed (returned {size})", value=size)
        return ctypes.string_at(self._out, size)

    def close(self) -> None:
        if self._state:
            self._lib.E_IF_exit(self._state)
            self._state = None
