"""Loading the system C codec libraries that the ctypes bindings wrap."""

from __future__ import annotations

import ctypes
import ctypes.util


def open_library(name: str, soname: str) -> ctypes.CDLL | None:
    """The library ``lib<name>`` (by the linker's search, else ``soname``), or None if absent."""
    try:
        return ctypes.CDLL(ctypes.util.find_library(name) or soname)
    except OSError:
        return None
