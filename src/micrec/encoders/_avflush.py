"""Flushing an FFmpeg muxer that PyAV drives: ``av_write_frame(ctx, NULL)``.

PyAV has no call for it, yet it is how FFmpeg's fragmented MP4, Ogg and Matroska muxers are
told to write out what they hold (the open fragment, the latest page, the open cluster) before
the next packet comes. micrec needs that when the input stalls: otherwise up to a quarter
second of muxed audio stays in memory for as long as the stall lasts. FFmpeg is reached in
the libavformat that PyAV itself loaded; the format context is read from the container object
and checked by its ``AVClass`` name, so a PyAV whose layout differs gets no flush (and a debug
log line), never a wrong pointer.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import logging
import os
from typing import Any

__all__ = ["flush_muxer", "muxer_flush_available"]

log = logging.getLogger("micrec")

# A Cython extension type with cdef methods: PyObject_HEAD (2 words), the vtable pointer, then
# the first declared field, ``AVFormatContext *ptr`` (av/container/core.pxd).
_CONTEXT_OFFSET = 3 * ctypes.sizeof(ctypes.c_void_p)


def _loaded_libavformat(av: Any) -> str | None:
    here = os.path.dirname(os.path.abspath(av.__file__))
    for pattern in ("../av.libs/libavformat*.so*", ".dylibs/libavformat*.dylib", "../av.libs/avformat*.dll"):
        found = sorted(glob.glob(os.path.join(here, pattern)))
        if found:
            return found[0]
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip().rpartition(" ")[2]
                if "libavformat" in os.path.basename(path):
                    return path
    except OSError:
        pass
    return None


#: PyAV releases whose Container starts with that pointer (checked up to 18, which micrec pins).
_KNOWN_PYAV = range(12, 19)


@functools.cache
def _library() -> Any:
    import av

    if int(av.__version__.split(".")[0]) not in _KNOWN_PYAV:
        log.debug("micrec: PyAV %s is not known here; muxers are not flushed on a stall", av.__version__)
        return None
    path = _loaded_libavformat(av)
    if path is None:
        log.debug("micrec: PyAV's libavformat was not found; muxers are not flushed on a stall")
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        log.debug("micrec: cannot load %s (%s); muxers are not flushed on a stall", path, exc)
        return None
    for name in ("av_write_frame", "av_interleaved_write_frame"):
        func = getattr(lib, name)
        func.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        func.restype = ctypes.c_int
    return lib


def _format_context(container: Any) -> int | None:
    pointer = ctypes.c_void_p.from_address(id(container) + _CONTEXT_OFFSET).value
    if not pointer:
        return None
    av_class = ctypes.c_void_p.from_address(pointer).value
    if not av_class or ctypes.c_char_p.from_address(av_class).value != b"AVFormatContext":
        return None
    return pointer


def muxer_flush_available(container: Any) -> bool:
    """Whether :func:`flush_muxer` can reach this container's muxer."""
    return _library() is not None and _format_context(container) is not None


def flush_muxer(container: Any) -> int:
    """Make the muxer write out everything it holds; FFmpeg's return code (< 0: an error).

    Returns 0 without doing anything where the muxer cannot be reached.
    """
    lib = _library()
    context = _format_context(container) if lib is not None else None
    if context is None:
        return 0
    ret = int(lib.av_interleaved_write_frame(context, None))  # the interleaving queue first
    if ret < 0:
        return ret
    return int(lib.av_write_frame(context, None))
