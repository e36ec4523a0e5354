"""The compiled capture loop (``csrc/pulseloop.c``), where the build had a C compiler.

It takes in what the server sent and copies a whole block out of libpulse in one call, where
Python makes a few foreign calls per packet (hundreds of packets a second from a source that
another client keeps at a short latency). :func:`load` returns it with its prototypes, or None:
then :mod:`micrec.backends.pulse` reads in Python, with the same result. The environment
variable ``MICREC_PYTHON_CAPTURE=1`` makes it None (the tests run both paths; the benchmarks
compare them).
"""

from __future__ import annotations

import ctypes
import os
from ctypes import c_int, c_long, c_size_t, c_void_p
from functools import cache
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

__all__ = ["LIBRARY_NAME", "load"]

#: The compiled library's name in this package, before the extension suffix (setup.py).
LIBRARY_NAME = "_pulseloop_c"


@cache
def load() -> Any | None:
    """The compiled loop (a ctypes library), or None when it was not built or is switched off."""
    if os.environ.get("MICREC_PYTHON_CAPTURE", "") not in ("", "0"):
        return None
    path = _library_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
        _declare(lib)
    except (OSError, AttributeError):  # built for another machine, or an older build: Python does the same
        return None
    return lib


def _declare(lib: Any) -> None:
    lib.micrec_take_in.restype = c_int
    lib.micrec_take_in.argtypes = [c_void_p, c_void_p, c_int]
    lib.micrec_wait.restype = c_int
    lib.micrec_wait.argtypes = [c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_int, c_int, c_int]
    lib.micrec_wait_for.restype = c_int
    lib.micrec_wait_for.argtypes = [c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_void_p,
                                    c_void_p, c_size_t, c_size_t, c_void_p, c_void_p]
    lib.micrec_read.restype = c_long
    lib.micrec_read.argtypes = [c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_void_p]


def _library_path() -> Path | None:
    here = Path(__file__).parent
    for suffix in EXTENSION_SUFFIXES:
        path = here / f"{LIBRARY_NAME}{suffix}"
        if path.is_file():
            return path
    return None
