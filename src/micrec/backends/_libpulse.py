"""A small ctypes binding of libpulse's asynchronous API: what a record stream needs.

Only what :mod:`micrec.backends.pulse` uses is bound: the non-threaded main loop, a context,
and a record stream (connect, peek/drop, buffer attributes, timing, cork). Every handle is a
plain ``int`` (a C pointer); every function is called on the thread that owns the main loop,
except :func:`pa_mainloop_wakeup` / ``pa_mainloop_quit``, which libpulse allows from any thread.
Names, values and layouts follow ``pulse/def.h``, ``pulse/stream.h`` and ``pulse/mainloop.h``.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_char_p, c_int, c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p
from functools import cache
from typing import Any

from ..errors import BackendUnavailableError

__all__ = ["BufferAttr", "NotifyCallback", "ReadCallback", "SampleSpec", "ServerInfo", "ServerInfoCallback",
           "TimingInfo", "load", "strerror"]

NO_VALUE = 0xFFFFFFFF  # (uint32_t) -1: "let the server choose"
SAMPLE_S16LE = 3

CONTEXT_NOAUTOSPAWN = 0x0001
CONTEXT_READY, CONTEXT_FAILED, CONTEXT_TERMINATED = 4, 5, 6

STREAM_READY, STREAM_FAILED, STREAM_TERMINATED = 2, 3, 4
STREAM_START_CORKED = 0x0001
STREAM_AUTO_TIMING_UPDATE = 0x0008
STREAM_DONT_MOVE = 0x0200
STREAM_ADJUST_LATENCY = 0x2000

ERR_NOENTITY = 5
ERR_CONNECTIONREFUSED = 6
ERR_KILLED = 12
ERR_CONNECTIONTERMINATED = 11


class SampleSpec(ctypes.Structure):
    _fields_ = [("format", c_int), ("rate", c_uint32), ("channels", c_uint8)]


class BufferAttr(ctypes.Structure):
    _fields_ = [("maxlength", c_uint32), ("tlength", c_uint32), ("prebuf", c_uint32),
                ("minreq", c_uint32), ("fragsize", c_uint32)]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class TimingInfo(ctypes.Structure):
    _fields_ = [("timestamp", _Timeval), ("synchronized_clocks", c_int), ("sink_usec", c_uint64),
                ("source_usec", c_uint64), ("transport_usec", c_uint64), ("playing", c_int),
                ("write_index_corrupt", c_int), ("write_index", c_int64), ("read_index_corrupt", c_int),
                ("read_index", c_int64), ("configured_sink_usec", c_uint64),
                ("configured_source_usec", c_uint64), ("since_underrun", c_int64)]


#: ``void (*)(pa_context*|pa_stream*, void *userdata)``: state changes, overflows.
NotifyCallback = ctypes.CFUNCTYPE(None, c_void_p, c_void_p)
class ServerInfo(ctypes.Structure):
    """The leading fields of ``pa_server_info`` (only these are read)."""

    _fields_ = [("user_name", c_char_p), ("host_name", c_char_p), ("server_version", c_char_p),
                ("server_name", c_char_p)]


#: ``void (*)(pa_context*, const pa_server_info*, void *userdata)``.
ServerInfoCallback = ctypes.CFUNCTYPE(None, c_void_p, POINTER(ServerInfo), c_void_p)
#: ``void (*)(pa_stream*, size_t nbytes, void *userdata)``: data to read.
ReadCallback = ctypes.CFUNCTYPE(None, c_void_p, c_size_t, c_void_p)

_vp = c_void_p
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "pa_mainloop_new": (_vp, []),
    "pa_mainloop_get_api": (_vp, [_vp]),
    "pa_mainloop_prepare": (c_int, [_vp, c_int]),
    "pa_mainloop_poll": (c_int, [_vp]),
    "pa_mainloop_dispatch": (c_int, [_vp]),
    "pa_mainloop_iterate": (c_int, [_vp, c_int, POINTER(c_int)]),
    "pa_mainloop_quit": (None, [_vp, c_int]),
    "pa_mainloop_wakeup": (None, [_vp]),
    "pa_mainloop_free": (None, [_vp]),
    "pa_context_new": (_vp, [_vp, c_char_p]),
    "pa_context_set_state_callback": (None, [_vp, NotifyCallback, _vp]),
    "pa_context_connect": (c_int, [_vp, c_char_p, c_int, _vp]),
    "pa_context_get_state": (c_int, [_vp]),
    "pa_context_errno": (c_int, [_vp]),
    "pa_context_get_server_info": (_vp, [_vp, ServerInfoCallback, _vp]),
    "pa_context_disconnect": (None, [_vp]),
    "pa_context_unref": (None, [_vp]),
    "pa_strerror": (c_char_p, [c_int]),
    "pa_operation_unref": (None, [_vp]),
    "pa_stream_new": (_vp, [_vp, c_char_p, POINTER(SampleSpec), _vp]),
    "pa_stream_set_state_callback": (None, [_vp, NotifyCallback, _vp]),
    "pa_stream_set_read_callback": (None, [_vp, ReadCallback, _vp]),
    "pa_stream_set_overflow_callback": (None, [_vp, NotifyCallback, _vp]),
    "pa_stream_connect_record": (c_int, [_vp, c_char_p, POINTER(BufferAttr), c_int]),
    "pa_stream_get_state": (c_int, [_vp]),
    "pa_stream_peek": (c_int, [_vp, POINTER(_vp), POINTER(c_size_t)]),
    "pa_stream_drop": (c_int, [_vp]),
    "pa_stream_readable_size": (c_size_t, [_vp]),
    "pa_stream_set_buffer_attr": (_vp, [_vp, POINTER(BufferAttr), _vp, _vp]),
    "pa_stream_cork": (_vp, [_vp, c_int, _vp, _vp]),
    "pa_stream_get_timing_info": (POINTER(TimingInfo), [_vp]),
    "pa_stream_update_timing_info": (_vp, [_vp, _vp, _vp]),
    "pa_stream_disconnect": (c_int, [_vp]),
    "pa_stream_unref": (None, [_vp]),
}


@cache
def load() -> Any:
    """The system's libpulse.so.0 with the prototypes above.

    Raises
    ------
    BackendUnavailableError
        libpulse is not installed.
    """
    try:
        lib = ctypes.CDLL("libpulse.so.0")
    except OSError as exc:
        raise BackendUnavailableError(
            f"the pulse backend needs libpulse: {exc}; on Debian/Ubuntu apt-get install libpulse0") from exc
    for name, (restype, argtypes) in _PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def strerror(code: int) -> str:
    """libpulse's text for an error code."""
    text = load().pa_strerror(code)
    return text.decode(errors="replace") if text else f"error {code}"
