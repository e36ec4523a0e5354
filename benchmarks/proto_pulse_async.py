"""Prototype, for the profile: a PulseAudio capture backend on libpulse's asynchronous API.

micrec's Pulse backend reads with ``pa_simple_read`` on a thread of its own. libpulse-simple
runs a threaded main loop underneath, so every packet the server sends wakes two threads (the
main loop's, then the reader), and the reader's Python loop runs once per block. Here the main
loop's read callback itself gathers the packets into blocks and pushes them to micrec's queue:
one thread per packet, no reader thread. It plugs into the real pipeline as a backend object::

    python benchmarks/proto_pulse_async.py take.wav --block-ms 50     # Ctrl-C stops

This is a measuring tool for ``docs/benchmarks.md``, not part of micrec. Its verdict: with
~600 packets a second it costs *more* than ``pa_simple`` (0.054 against 0.032 CPU s/s), since
every packet now runs Python; per-packet work has to stay in C.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import sys
import threading
from typing import Any

import numpy as np

from micrec import AudioRecorder
from micrec.backends import StreamSpec
from micrec.errors import DeviceError

_PA_SAMPLE_S16LE = 3
_PA_CONTEXT_READY, _PA_CONTEXT_FAILED, _PA_CONTEXT_TERMINATED = 4, 5, 6
_PA_STREAM_READY, _PA_STREAM_FAILED = 2, 3
_PA_STREAM_ADJUST_LATENCY = 0x2000
_NO_VALUE = 0xFFFFFFFF


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [("maxlength", ctypes.c_uint32), ("tlength", ctypes.c_uint32), ("prebuf", ctypes.c_uint32),
                ("minreq", ctypes.c_uint32), ("fragsize", ctypes.c_uint32)]


_StateCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_ReadCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


def _libpulse() -> Any:
    lib = ctypes.CDLL("libpulse.so.0")
    vp = ctypes.c_void_p
    for name, restype, argtypes in [
        ("pa_threaded_mainloop_new", vp, []), ("pa_threaded_mainloop_get_api", vp, [vp]),
        ("pa_threaded_mainloop_start", ctypes.c_int, [vp]), ("pa_threaded_mainloop_stop", None, [vp]),
        ("pa_threaded_mainloop_free", None, [vp]), ("pa_threaded_mainloop_lock", None, [vp]),
        ("pa_threaded_mainloop_unlock", None, [vp]), ("pa_threaded_mainloop_wait", None, [vp]),
        ("pa_threaded_mainloop_signal", None, [vp, ctypes.c_int]),
        ("pa_context_new", vp, [vp, ctypes.c_char_p]),
        ("pa_context_set_state_callback", None, [vp, _StateCallback, vp]),
        ("pa_context_connect", ctypes.c_int, [vp, ctypes.c_char_p, ctypes.c_int, vp]),
        ("pa_context_get_state", ctypes.c_int, [vp]), ("pa_context_disconnect", None, [vp]),
        ("pa_context_unref", None, [vp]),
        ("pa_stream_new", vp, [vp, ctypes.c_char_p, ctypes.POINTER(_SampleSpec), vp]),
        ("pa_stream_set_state_callback", None, [vp, _StateCallback, vp]),
        ("pa_stream_set_read_callback", None, [vp, _ReadCallback, vp]),
        ("pa_stream_connect_record", ctypes.c_int, [vp, ctypes.c_char_p, ctypes.POINTER(_BufferAttr), ctypes.c_int]),
        ("pa_stream_get_state", ctypes.c_int, [vp]),
        ("pa_stream_peek", ctypes.c_int, [vp, ctypes.POINTER(vp), ctypes.POINTER(ctypes.c_size_t)]),
        ("pa_stream_drop", ctypes.c_int, [vp]), ("pa_stream_disconnect", ctypes.c_int, [vp]),
        ("pa_stream_unref", None, [vp]),
    ]:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class AsyncPulseBackend:
    """Opens capture streams on libpulse's asynchronous API (devices: the server's sources)."""

    name = "pulse-async"

    def list_devices(self) -> list[Any]:
        from micrec.backends.pulse import PulseBackend

        return PulseBackend().list_devices()

    def can_capture(self, device: str | None) -> bool:
        return True

    def open(self, spec: StreamSpec, sink: Any) -> _AsyncStream:
        return _AsyncStream(spec, sink)


class _AsyncStream:
    def __init__(self, spec: StreamSpec, sink: Any) -> None:
        self.rate, self.channels = spec.rate, spec.channels
        self._spec, self._sink = spec, sink
        self._block_bytes = spec.block_frames * spec.channels * 2
        self._pending = bytearray()
        self._lib = _libpulse()
        self._ml = self._lib.pa_threaded_mainloop_new()
        self._ctx: int | None = None
        self._stream: int | None = None
        # ctypes callbacks must outlive the C side's references to them.
        self._on_state = _StateCallback(lambda _obj, _data: self._lib.pa_threaded_mainloop_signal(self._ml, 0))
        self._on_read = _ReadCallback(self._read)
        self._stopped = threading.Event()

    def start(self) -> None:
        lib, ml = self._lib, self._ml
        lib.pa_threaded_mainloop_lock(ml)
        try:
            lib.pa_threaded_mainloop_start(ml)
            self._ctx = lib.pa_context_new(lib.pa_threaded_mainloop_get_api(ml), b"micrec-async")
            lib.pa_context_set_state_callback(self._ctx, self._on_state, None)
            lib.pa_context_connect(self._ctx, None, 0, None)
            self._wait_for(lambda: lib.pa_context_get_state(self._ctx), _PA_CONTEXT_READY,
                           (_PA_CONTEXT_FAILED, _PA_CONTEXT_TERMINATED))
            spec = _SampleSpec(_PA_SAMPLE_S16LE, self.rate, self.channels)
            self._stream = lib.pa_stream_new(self._ctx, b"recording", ctypes.byref(spec), None)
            lib.pa_stream_set_state_callback(self._stream, self._on_state, None)
            lib.pa_stream_set_read_callback(self._stream, self._on_read, None)
            attr = _BufferAttr(_NO_VALUE, _NO_VALUE, _NO_VALUE, _NO_VALUE, self._block_bytes)
            device = self._spec.device.encode() if self._spec.device else None
            lib.pa_stream_connect_record(self._stream, device, ctypes.byref(attr), _PA_STREAM_ADJUST_LATENCY)
            self._wait_for(lambda: lib.pa_stream_get_state(self._stream), _PA_STREAM_READY, (_PA_STREAM_FAILED,))
        finally:
            lib.pa_threaded_mainloop_unlock(ml)

    def _wait_for(self, state: Any, ready: int, failed: tuple[int, ...]) -> None:
        while (now := state()) != ready:
            if now in failed:
                raise DeviceError(f"libpulse: state {now} while connecting")
            self._lib.pa_threaded_mainloop_wait(self._ml)

    def _read(self, stream: int, nbytes: int, _data: Any) -> None:
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        lib = self._lib
        while lib.pa_stream_peek(stream, ctypes.byref(data), ctypes.byref(size)) == 0 and size.value:
            if data.value:
                self._pending += ctypes.string_at(data.value, size.value)
            lib.pa_stream_drop(stream)
        block = self._block_bytes
        while len(self._pending) >= block:
            chunk = bytes(self._pending[:block])
            del self._pending[:block]
            self._sink.push(np.frombuffer(chunk, dtype=np.int16).reshape(-1, self.channels))

    def close(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        lib = self._lib
        lib.pa_threaded_mainloop_lock(self._ml)
        if self._stream:
            lib.pa_stream_disconnect(self._stream)
            lib.pa_stream_unref(self._stream)
        if self._ctx:
            lib.pa_context_disconnect(self._ctx)
            lib.pa_context_unref(self._ctx)
        lib.pa_threaded_mainloop_unlock(self._ml)
        lib.pa_threaded_mainloop_stop(self._ml)
        lib.pa_threaded_mainloop_free(self._ml)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output")
    parser.add_argument("--block-ms", type=int, default=20)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    import micrec.session

    micrec.session.BLOCK_MS = args.block_ms
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    rec = AudioRecorder(sample_rate=args.rate, channels_num=args.channels, backend=AsyncPulseBackend())
    rec.audio_encoder = {"flac": "flac", "ogg": "opus", "m4a": "aacLc"}.get(args.output.rsplit(".", 1)[-1], "wav")
    rec.start_recording(args.output)
    stop.wait()
    rec.stop_recording()
    return 0


if __name__ == "__main__":
    sys.exit(main())
