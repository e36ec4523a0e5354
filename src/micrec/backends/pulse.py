"""Capture from a PulseAudio server, or PipeWire through pipewire-pulse.

Listing uses pulsectl (libpulse's introspection API). Capture is a record stream on libpulse's
asynchronous API (:mod:`._libpulse`, ctypes on the system's libpulse.so.0), driven by a
non-threaded main loop on the stream's own thread and read with peek/drop as parecord reads:
one thread per stream, none of libpulse's. The server opens the source at whatever rate and
channel count the stream asks for (it resamples and remixes), so the stream always runs at
the configured format and the pipeline converts nothing.

Blocks: the first one is short (:data:`FIRST_BLOCK_MS`) so that audio flows at once; then the
stream's fragment is raised to ``spec.block_frames`` with ``pa_stream_set_buffer_attr``, so
that the server sends one packet per block. With ``PA_STREAM_ADJUST_LATENCY`` the fragment
also sets the source's latency (PulseAudio) and the stream's ``node.latency`` (PipeWire): at
the default 100 ms block PipeWire's graph keeps its default quantum.

Capture time: every block is pushed with ``capture_time``, when its first frame was captured
on the ``time.monotonic()`` clock, from the server's timing reports (see :class:`_Timeline`).
A named device is opened with ``PA_STREAM_DONT_MOVE``: when it goes away the server ends the
stream and the take ends with DeviceLostError (with ``device=None`` the stream follows the
default, as desktop apps do). A lost server connection ends it the same way.

Monitors of outputs are not microphones: they are left out of the device list (they can still
be named with ``device=`` explicitly).
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._lazy import require
from ..errors import DeviceError, DeviceLostError, DeviceNotFoundError, FeatureUnavailableError
from ..types import InputDevice, OutputDevice
from . import _libpulse, _pulseloop
from .base import BlockSink, StreamSpec

__all__ = ["FIRST_BLOCK_MS", "PulseBackend", "server_reachable"]

_PA_INVALID_INDEX = 0xFFFFFFFF
#: Length of a stream's first block (its first fragment), whatever the steady block.
FIRST_BLOCK_MS = 10
#: Longest wait for the server while a stream is being opened.
CONNECT_TIMEOUT = 5.0
#: A block whose capture time the server puts this much after the end of the previous one
#: follows audio that the server dropped (an overrun); smaller differences are timing jitter.
GAP_SECONDS = 0.08
#: Longest the reader waits on the connection for the packet that completes a block; a source
#: that sends nothing for this long (suspended, stalled) is looked at again after it.
PACKET_WAIT_SECONDS = 0.5
#: Longest the server's small packets wait in libpulse before the reader copies them out, whatever
#: the block (packets of a good share of a block, two or three to a block, wait for the block:
#: see _wait_for_packet): each one holds a slot of the server's shared memory pool until it is
#: dropped, and a page of this process's resident memory (600 a second from a source kept at
#: 10 ms: a second's worth is 2.4 MB). Half a relaxed block (250 ms, :mod:`micrec._pacing`) keeps resident memory
#: where the steady 100 ms blocks leave it: held for a whole relaxed block, the packets took
#: 0.6-1.3 MB more over the take's first seconds (an AAC-LC CLI take peaked at 65.4 MB).
HOLD_SECONDS = 0.125
#: A block this much overdue comes from a source that stalled (suspended, a hung driver): what
#: it holds goes out now, so that the file has it (a kill during the stall would lose it).
STALL_SECONDS = 0.5
#: The stop waits for the audio captured up to it for at most the stream's fragment (the server
#: sends a packet per fragment) plus this: PipeWire's graph adds up to a quantum (43 ms at its
#: default 2048 frames at 48 kHz), and a busy machine a few milliseconds more. The wait ends as
#: soon as the audio up to the stop has arrived; only a stalled source waits it out.
TAIL_MARGIN_SECONDS = 0.06
#: Packets at least this share of a block long are waited for on the connection, the compiled loop
#: sleeping through them until the block is complete (see _wait_for_block, _wait_for_packet).
WHOLE_PACKET_SHARE = 0.25
#: How often a reader that wakes for packets asks the server for a timing report (every reply
#: wakes it too); one that sleeps on a timer asks once per block, the reply waiting for it.
TIMING_SECONDS = 1.0
#: Most main-loop iterations one wake-up runs to take in what the server sent meanwhile (a
#: packet each, about; a guard against a source of events that never runs dry).
_MAX_ITERATIONS = 100_000
#: Share of the difference between the server's estimate and the continuous timeline that
#: each block corrects (the device clock drifts against the system's).
CLOCK_SLEW = 0.05
_CONTEXT_SETTLED = (_libpulse.CONTEXT_READY, _libpulse.CONTEXT_FAILED, _libpulse.CONTEXT_TERMINATED)
_STREAM_SETTLED = (_libpulse.STREAM_READY, _libpulse.STREAM_FAILED, _libpulse.STREAM_TERMINATED)


def _pulsectl() -> Any:
    return require("pulsectl", extra="pulse")


def server_reachable() -> bool:
    """Whether a PulseAudio-compatible server listens (cheap: a socket connect, no library)."""
    path = _socket_path()
    if path is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _socket_path() -> str | None:
    server = os.environ.get("PULSE_SERVER")
    if server:
        # "unix:/path", a bare path, or a list of servers: the first local socket counts.
        for candidate in server.split():
            candidate = candidate.removeprefix("{}").split("}", 1)[-1]
            if candidate.startswith("unix:"):
                return candidate[5:]
            if candidate.startswith("/"):
                return candidate
        return None
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    for path in (Path(runtime, "pulse", "native"), Path("/var/run/pulse/native")):
        if path.exists():
            return str(path)
    return None


class PulseBackend:
    """Capture devices of a PulseAudio (or PipeWire-Pulse) server."""

    name = "pulse"

    def __init__(self, server: str | None = None, app_name: str = "micrec") -> None:
        self.server = server
        self.app_name = app_name

    # -- devices -----------------------------------------------------------------------------
    def _introspect(self) -> tuple[list[Any], str | None]:
        pulsectl = _pulsectl()
        # pulsectl's connect(timeout=...) always waits out the whole timeout; connect plainly.
        with pulsectl.Pulse(f"{self.app_name}-list", server=self.server) as pulse:
            sources = list(pulse.source_list())
            default = pulse.server_info().default_source_name
        return sources, default

    def list_devices(self) -> list[InputDevice]:
        try:
            sources, default = self._introspect()
        except Exception:  # noqa: BLE001 - no server: no devices
            return []
        return [InputDevice(s.name, s.description, s.name == default, self.name)
                for s in sources if s.monitor_of_sink == _PA_INVALID_INDEX]

    def list_outputs(self) -> list[OutputDevice]:
        """The outputs (sinks) whose sound can be recorded through their monitor, the default marked."""
        try:
            with _pulsectl().Pulse(f"{self.app_name}-list", server=self.server) as pulse:
                sinks = list(pulse.sink_list())
                default = pulse.server_info().default_sink_name
        except Exception:  # noqa: BLE001 - no server: no outputs
            return []
        return [OutputDevice(s.name, s.description, s.name == default, self.name, s.channel_count)
                for s in sinks if s.monitor_source != _PA_INVALID_INDEX]

    def _known_sources(self) -> tuple[set[str], str | None]:
        sources, default = self._introspect()
        return {s.name for s in sources}, default

    def can_capture(self, device: str | None) -> bool:
        try:
            _PulseStream(self, StreamSpec(device, 16000, 1, 320), _NullSink()).close()
            return True
        except Exception:  # noqa: BLE001 - the contract: False, never an exception
            return False

    # -- streams -----------------------------------------------------------------------------
    def open(self, spec: StreamSpec, sink: BlockSink) -> _PulseStream:
        try:
            return _PulseStream(self, spec, sink)
        except DeviceError as exc:
            raise self._explain_open_failure(spec) or exc from exc

    def _explain_open_failure(self, spec: StreamSpec) -> DeviceError | None:
        """The precise reason a stream could not be opened, asked of the server afterwards."""
        try:
            names, default = self._known_sources()
        except Exception as exc:  # noqa: BLE001
            return DeviceError(f"cannot reach the PulseAudio server: {exc}")
        if spec.device is not None and spec.device not in names:
            mics = sorted(d.id for d in self.list_devices())
            return DeviceNotFoundError(
                f"no capture device {spec.device!r} on the sound server; "
                f"pick one of {mics} (see get_input_devices())", value=spec.device, name="device")
        if spec.device is None and default is None:
            return DeviceError("the sound server has no default capture device; pass device=")
        return None

    def open_monitor(self, spec: StreamSpec, sink: BlockSink) -> _PulseStream:
        """A stream of what an output plays (its monitor), e.g. an echo canceller's reference.

        ``spec.device`` names the output sink; None means the server's default output.
        Raises FeatureUnavailableError when the server has no such output.
        """
        try:
            # Looked up by name: pipewire-pulse resolves "@DEFAULT_MONITOR@" to another
            # output's monitor than the default sink's.
            with _pulsectl().Pulse(f"{self.app_name}-monitor", server=self.server) as pulse:
                sink_name = spec.device or pulse.server_info().default_sink_name
                monitor = pulse.get_sink_by_name(sink_name).monitor_source_name
            return _PulseStream(self, spec, sink, source=monitor, dont_move=True)
        except Exception as exc:  # no server, no default output, or no such sink
            raise FeatureUnavailableError(
                f"cannot read what the output {spec.device or '(default)'} plays: {exc}; "
                "cancel_echo needs an output device on the sound server", value=spec.device,
                name="cancel_echo") from exc


class _PulseStream:
    """A record stream on libpulse's asynchronous API, read on one thread of its own.

    The stream is connected (corked) by the constructor, on the caller's thread, so that a bad
    device fails there; :meth:`start` hands the main loop to the capture thread, which uncorks
    the stream and runs the loop until :meth:`close` wakes it. libpulse starts no thread.
    """

    def __init__(self, backend: PulseBackend, spec: StreamSpec, sink: BlockSink, *,
                 source: str | None = None, dont_move: bool | None = None) -> None:
        self._pa = _libpulse.load()
        self.rate = spec.rate
        self.channels = spec.channels
        self._sink = sink
        self._source = spec.device if source is None else source
        self._frame_bytes = spec.channels * 2
        self._byte_rate = spec.rate * self._frame_bytes
        self._block_bytes = max(1, spec.block_frames) * self._frame_bytes
        # The first block is short, so that audio flows within ~10 ms of the start whatever the
        # block size; then the server is asked for fragments of the steady block (fewer packets,
        # fewer wake-ups, and on PipeWire a node.latency that leaves the graph's quantum alone).
        self._first_bytes = min(self._block_bytes, spec.rate * FIRST_BLOCK_MS // 1000 * self._frame_bytes)
        self._want = self._first_bytes
        self._asked_block_bytes = self._block_bytes  # set_block_frames, applied on the capture thread
        self._raise_live = True  # see _connect
        self._buffer: Any = None
        self._empty = require("numpy", extra="core").empty  # the session imported it already
        self._buffer_address = 0
        self._fill = 0
        self._consumed = 0
        self._timeline = _Timeline(spec.rate)
        self._closing = False
        self._stop_at: float | None = None  # when close() was called: the take ends there
        self._fragment_bytes = self._first_bytes  # what the server sends a packet of (see _connect)
        self._started = False
        self._reported = False
        self._lock = threading.Lock()
        self._stream = self._context = None
        # ctypes callbacks must live as long as libpulse may call them.
        self._callbacks = (
            _libpulse.NotifyCallback(self._on_context_state), _libpulse.NotifyCallback(self._on_stream_state),
            _libpulse.ReadCallback(self._on_read), _libpulse.NotifyCallback(self._on_overflow))
        self._steady = False  # past the first block: read once per block (see _run_steady)
        self._outbox: list[tuple[Any, float]] = []  # blocks read, handed over by _deliver
        self._peeked, self._peeked_size = ctypes.c_void_p(), ctypes.c_size_t()
        self._peeked_refs = (ctypes.byref(self._peeked), ctypes.byref(self._peeked_size))
        self._fast = _fast_calls()
        self._loop = _pulseloop.load()  # the compiled per-packet loop, or None: the same work in Python
        self._skip, self._holes = ctypes.c_size_t(), ctypes.c_size_t()
        self._loop_refs = (ctypes.byref(self._skip), ctypes.byref(self._holes))
        self._stream_arg = ctypes.c_void_p()  # set once the stream exists
        self._wake = threading.Event()
        # Whether the server sends packets of a good share of a block (see _wait_for_block), and
        # what the connection held before the latest wait for one (None: the wait was a sleep).
        self._whole_packets = False
        self._small_packets = 0  # small packets in a row
        self._before_packet: int | None = None
        self._timing_asked = -math.inf
        self._last_before = ctypes.c_size_t()  # see _wait_for_packet
        self._last_before_ref = ctypes.byref(self._last_before)
        self._interrupt = ctypes.c_int()  # set before pa_mainloop_wakeup: the compiled wait returns
        self._interrupt_ref = ctypes.byref(self._interrupt)
        # Blocks handed over before a sleep on the connection wake the worker from that call
        # (micrec_wait), once this thread has let go of the GIL: see micrec._doorbell.
        # Only the compiled loop rings, and only a sink with a doorbell it can write to.
        self._doorbell_fd = getattr(sink, "doorbell_fd", -1) if self._loop is not None else -1
        self._push_quietly = getattr(sink, "push_quietly", None) if self._doorbell_fd >= 0 else None
        self._ring = False  # blocks were handed over quietly: the next wait rings
        self._mainloop = self._pa.pa_mainloop_new()
        self._mainloop_arg = ctypes.c_void_p(self._mainloop)
        self._thread = threading.Thread(target=self._run, name="micrec-pulse-capture", daemon=True)
        try:
            self._connect(backend, spec.device is not None if dont_move is None else dont_move)
        except BaseException:
            self._teardown()
            raise

    # -- opening (caller's thread) -----------------------------------------------------------
    def _connect(self, backend: PulseBackend, dont_move: bool) -> None:
        pa, lp = self._pa, _libpulse
        self._context = pa.pa_context_new(pa.pa_mainloop_get_api(self._mainloop), backend.app_name.encode())
        pa.pa_context_set_state_callback(self._context, self._callbacks[0], None)
        server = backend.server.encode() if backend.server else None
        if pa.pa_context_connect(self._context, server, lp.CONTEXT_NOAUTOSPAWN, None) < 0:
            raise DeviceError(f"cannot reach the sound server: {self._context_error()}")
        self._iterate_until(lambda: pa.pa_context_get_state(self._context) in _CONTEXT_SETTLED)
        if pa.pa_context_get_state(self._context) != lp.CONTEXT_READY:
            raise DeviceError(f"cannot reach the sound server: {self._context_error()}")
        sample_spec = lp.SampleSpec(lp.SAMPLE_S16LE, self.rate, self.channels)
        self._stream = pa.pa_stream_new(self._context, b"recording", ctypes.byref(sample_spec), None)
        if not self._stream:
            raise DeviceError(f"cannot create a record stream: {self._context_error()}")
        self._stream_arg = ctypes.c_void_p(self._stream)
        pa.pa_stream_set_state_callback(self._stream, self._callbacks[1], None)
        pa.pa_stream_set_read_callback(self._stream, self._callbacks[2], None)
        pa.pa_stream_set_overflow_callback(self._stream, self._callbacks[3], None)
        # pipewire-pulse (0.3.65) loses continuity when a live record stream's fragment changes (a
        # 10-20 ms jump in the audio, in every take): there the stream asks for the steady fragment
        # from the start. The first block is still short; it waits for the server's first packet.
        self._raise_live = "PipeWire" not in self._server_name()
        fragment = self._first_bytes if self._raise_live else self._block_bytes
        self._fragment_bytes = fragment
        attr = lp.BufferAttr(lp.NO_VALUE, lp.NO_VALUE, lp.NO_VALUE, lp.NO_VALUE, fragment)
        flags = (lp.STREAM_START_CORKED | lp.STREAM_ADJUST_LATENCY | lp.STREAM_AUTO_TIMING_UPDATE
                 | (lp.STREAM_DONT_MOVE if dont_move else 0))
        device = self._source.encode() if self._source else None
        if pa.pa_stream_connect_record(self._stream, device, ctypes.byref(attr), flags) < 0:
            raise DeviceError(f"cannot open capture device {self._label}: {self._context_error()}")
        self._iterate_until(lambda: pa.pa_stream_get_state(self._stream) in _STREAM_SETTLED)
        if pa.pa_stream_get_state(self._stream) != lp.STREAM_READY:
            raise DeviceError(f"cannot open capture device {self._label}: {self._context_error()}",
                              value=self._source, name="device")

    def _server_name(self) -> str:
        """The server's name ("pulseaudio", "PulseAudio (on PipeWire 0.3.65)"); "" if it gives none."""
        names: list[str] = []

        def on_info(_context: int, info: Any, _userdata: Any) -> None:
            names.append((info.contents.server_name or b"").decode(errors="replace") if info else "")

        callback = _libpulse.ServerInfoCallback(on_info)
        operation = self._pa.pa_context_get_server_info(self._context, callback, None)
        if not operation:
            return ""
        try:
            self._iterate_until(lambda: bool(names))
        finally:
            self._unref(operation)
        return names[0]

    def _iterate_until(self, settled: Callable[[], bool]) -> None:
        pa = self._pa
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not settled():
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceError(f"the sound server did not answer within {CONNECT_TIMEOUT:g} s")
            if pa.pa_mainloop_prepare(self._mainloop, int(left * 1e6)) < 0 or \
                    pa.pa_mainloop_poll(self._mainloop) < 0 or pa.pa_mainloop_dispatch(self._mainloop) < 0:
                raise DeviceError(f"cannot talk to the sound server: {self._context_error()}")

    @property
    def _label(self) -> str:
        return repr(self._source) if self._source else "(default)"

    def _context_error(self) -> str:
        return _libpulse.strerror(self._pa.pa_context_errno(self._context)) if self._context else "no context"

    # -- control (any thread) ----------------------------------------------------------------
    def start(self) -> None:
        self._started = True
        self._thread.start()

    def set_block_frames(self, frames: int) -> None:
        """Deliver blocks of ``frames`` from the next one on; the server's fragment stays as it is.

        Only the reader's wake-up interval changes: a live fragment change costs PipeWire its
        continuity (see :meth:`_connect`), and a longer block simply takes in more packets.
        """
        self._asked_block_bytes = max(1, int(frames)) * self._frame_bytes
        self._wake.set()  # a shorter block may be due already
        self._interrupt.value = 1
        with self._lock:
            if self._mainloop:
                self._pa.pa_mainloop_wakeup(self._mainloop)  # the reader may be waiting on the connection

    def close(self) -> None:
        """Stop capture and free the stream, once the audio captured up to now is delivered.

        The server still holds the audio of the last fragment (and, after a long block, what it
        had no room to send): the capture thread waits for it, at most a fragment and
        :data:`TAIL_MARGIN_SECONDS`, and delivers it (the sink cuts at the stop by capture time).
        """
        self._stop_at = time.monotonic()
        self._closing = True
        self._wake.set()
        self._interrupt.value = 1
        with self._lock:
            if self._mainloop:
                self._pa.pa_mainloop_wakeup(self._mainloop)  # from any thread; no quit: the tail is read
        if not self._started:
            self._teardown()
        elif self._thread is not threading.current_thread():
            self._thread.join()

    # -- the capture thread ------------------------------------------------------------------
    def _run(self) -> None:
        pa = self._pa
        try:
            self._unref(pa.pa_stream_cork(self._stream, 0, None, None))
            # The first block: read as its packets arrive (the read callback), so audio flows at once.
            while not (self._closing or self._steady or self._reported):
                if pa.pa_mainloop_iterate(self._mainloop, 1, None) < 0:
                    break
            if self._steady:
                self._run_steady()
            if not self._reported:
                self._read_tail()
        except Exception as exc:  # noqa: BLE001 - a fault here must end the take, not vanish
            self._report(DeviceLostError(f"capture from {self._label} failed: {exc}"))
        finally:
            self._teardown()

    def _run_steady(self) -> None:
        """About one wake-up per block: sleep until it should be complete, then take in and read it all.

        While the thread sleeps, the server's packets wait in the connection (and libpulse's
        shared memory); one burst of non-blocking main-loop iterations then takes them all in
        (with the state changes and timing replies among them), and every fragment is copied out
        with peek/drop. Waking for each packet, as ``pa_mainloop_run`` would, costs a context
        switch per packet: hundreds a second from a source that other clients keep at 10 ms.
        Once a block's audio should all have been captured, its last packet is on its way: the
        thread then waits on the connection itself, so it wakes when that packet comes instead
        of looking again on a timer (a source that sends every 50 ms would cost a wake-up every
        few milliseconds).
        """
        while not (self._closing or self._reported):
            if not self._wait_for_block():
                return
            if self._closing or not self._take_in():
                return
            if self._before_packet is not None:
                self._note_packet(self._pa.pa_stream_readable_size(self._stream) - self._before_packet)
            self._apply_block_size()
            self._read_available()  # the blocks go out as the thread goes to sleep (_wait_for_block)

    def _wait_for_block(self) -> bool:
        """Sleep until the current block should have been captured, or, once it should, until a packet comes.

        False when the main loop failed. The block's end is placed on the capture clock by the
        timeline (where the previous block ended, plus this one's length), not by the bytes still
        missing: a source that sends every 50 ms leaves the same bytes missing for 50 ms.

        A server that sends packets of a good share of a block (PulseAudio when the recorder is
        the source's only client, PipeWire always: a packet per fragment asked for) is waited
        for on the connection alone: a timer would wake the thread at the block's end, about
        half a packet before the packet that completes it, and then again for that packet.
        """
        readable = self._pa.pa_stream_readable_size(self._stream)
        if self._fill + readable >= self._want:
            return True  # a burst after a stall: complete already
        start = self._timeline.next_start
        wait = (time.monotonic() if start is None else start) + self._want / self._byte_rate - time.monotonic()
        if wait <= -STALL_SECONDS and self._fill:
            self._emit()  # the partial block of a stalled source
            return True
        if wait <= 0 or self._whole_packets:
            self._before_packet = readable
            self._deliver(quietly=True)
            # Whole packets: the compiled loop waits for as many as complete the block.
            missing = self._want - self._fill if self._whole_packets else 0
            return self._wait_for_packet(needed=missing)
        self._before_packet = None
        self._deliver()
        self._wake.wait(min(wait, HOLD_SECONDS))
        self._wake.clear()  # close() sets _closing before it wakes the thread: checked next
        return True

    def _note_packet(self, size: int) -> None:
        """Learn from a packet's ``size`` (bytes) whether the server's packets are worth waiting for one by one."""
        if size <= 0:  # nothing new: the wake-up was for a timing reply or a state change
            return
        if size >= WHOLE_PACKET_SHARE * self._want:
            self._whole_packets, self._small_packets = True, 0
        else:  # PulseAudio splits a packet now and then (20 + 80 ms): only a run of small ones counts
            self._small_packets += 1
            self._whole_packets = self._whole_packets and self._small_packets < 3

    def _wait_for_packet(self, seconds: float = PACKET_WAIT_SECONDS, needed: int = 0) -> bool:
        """Block on the connection until the server sends something (or close() wakes the loop).

        With ``needed`` (bytes) the compiled loop goes on waiting, without coming back to Python,
        for as long as whole packets come and the stream holds fewer than that: one wake-up of
        this thread per block instead of per packet. ``_before_packet`` is then what the stream
        held before the last packet, for :meth:`_note_packet`.
        """
        pa, mainloop, timeout = self._pa, self._mainloop, max(0, int(seconds * 1e6))
        if self._loop is not None:
            fast, ring = self._fast, self._doorbell_fd if self._ring else -1
            self._ring = False
            if needed <= 0:
                return self._loop.micrec_wait(mainloop, fast.prepare_address, fast.poll_address,
                                              fast.dispatch_address, fast.iterate_address, timeout, _MAX_ITERATIONS,
                                              ring) == 0
            min_packet = int(WHOLE_PACKET_SHARE * self._want)
            done = self._loop.micrec_wait_for(mainloop, fast.prepare_address, fast.poll_address,
                                              fast.dispatch_address, fast.iterate_address, timeout, _MAX_ITERATIONS,
                                              ring, self._stream, fast.readable_address, needed, min_packet,
                                              self._last_before_ref, self._interrupt_ref) == 0
            self._interrupt.value = 0  # a new block size asked for meanwhile is applied next (_run_steady)
            self._before_packet = self._last_before.value
            return done
        return (pa.pa_mainloop_prepare(mainloop, timeout) >= 0
                and pa.pa_mainloop_poll(mainloop) >= 0 and pa.pa_mainloop_dispatch(mainloop) >= 0)

    def _read_tail(self) -> None:
        """The end of the take: read until the audio captured up to the stop is in, then deliver it.

        Without this the take would end where the last wake-up left it: up to a block (a second,
        for a take nobody watches) earlier, since the server sends a fragment at a time and,
        while the reader sleeps, keeps what its shared ring has no room for. Every packet that
        comes is copied out at once, so the server sends the next without waiting.
        """
        stop_at = self._stop_at if self._stop_at is not None else time.monotonic()
        deadline = stop_at + self._fragment_bytes / self._byte_rate + TAIL_MARGIN_SECONDS
        while self._take_in():
            self._read_available()
            left = deadline - time.monotonic()
            if left <= 0 or self._read_end() >= stop_at or not self._wait_for_packet(left):
                break
        if not self._reported:
            self._take_in()
            self._read_available(final=True)
        self._deliver()

    def _read_end(self) -> float:
        """When the last frame read so far was captured (time.monotonic()): placed by the timeline."""
        start = self._timeline.next_start
        if start is None:
            start = self._capture_end()  # nothing delivered yet: the server's estimate
        return start + self._fill / self._byte_rate

    def _take_in(self) -> bool:
        """Dispatch everything libpulse has waiting, without blocking; False once the loop quit."""
        if self._loop is not None:
            return self._loop.micrec_take_in(self._mainloop, self._fast.iterate_address, _MAX_ITERATIONS) == 0 \
                and not self._reported
        iterate, mainloop = self._fast.iterate, self._mainloop_arg
        for _ in range(_MAX_ITERATIONS):
            dispatched = iterate(mainloop, 0, None)
            if dispatched < 0:
                return False
            if dispatched == 0:
                break
        return not self._reported

    def _apply_block_size(self) -> None:
        asked = self._asked_block_bytes
        if asked == self._block_bytes:
            return
        self._block_bytes = asked  # a longer block begins with the next buffer (see _emit)
        if asked < self._want:
            self._want = asked
            if self._buffer is not None and self._fill >= asked:
                self._emit()

    def _on_read(self, _stream: int, _nbytes: int, _userdata: Any) -> None:
        try:
            self._read_available()
            self._deliver()
        except Exception as exc:  # noqa: BLE001 - ctypes would print and drop it
            self._report(DeviceLostError(f"capture from {self._label} failed: {exc}"))

    def _read_available(self, final: bool = False) -> None:
        """Copy what libpulse has queued (peek/drop); each block, once full, goes out with its capture time.

        Called for every packet until the first block is out, then once per block (see
        :meth:`_run_steady`); with ``final`` the partial block goes out too. A fragment is always
        dropped right after it is copied (the rest of it begins the next block): a fragment left
        peeked keeps its memory block acquired, and libpulse would wait for it forever when the
        connection breaks. A source that other clients keep at a short latency sends hundreds of
        small fragments a second, so the common case (the fragment fits the block) is kept to
        three foreign calls, made without ctypes' argument conversion (see :class:`_FastCalls`).
        The compiled loop, where it was built, does the same (:meth:`_read_compiled`).
        """
        if self._loop is not None:
            self._read_compiled(self._loop, final)
            return
        fast = self._fast
        peek, drop, memmove = fast.peek, fast.drop, ctypes.memmove
        stream, data, size = self._stream_arg, self._peeked, self._peeked_size
        data_ref, size_ref = self._peeked_refs
        while peek(stream, data_ref, size_ref) >= 0:
            n, address = size.value, data.value
            if not n:
                break
            if address and self._buffer is not None and self._fill + n < self._want:
                memmove(self._buffer_address + self._fill, address, n)
                self._fill += n
            else:
                self._copy_fragment(address, n)
            drop(stream)
        if final and self._fill:
            self._emit()

    def _read_compiled(self, loop: Any, final: bool) -> None:
        """:meth:`_read_available` in one foreign call per block (``csrc/pulseloop.c``)."""
        read, fast = loop.micrec_read, self._fast
        while True:
            if self._buffer is None:
                self._new_buffer()
            copied = read(self._stream, fast.peek_address, fast.drop_address, self._buffer_address + self._fill,
                          self._want - self._fill, *self._loop_refs)
            if copied < 0:
                break
            self._fill += copied
            if self._holes.value:  # the server lost data before it reached the stream
                self._sink.overflow(self._holes.value // self._frame_bytes)
                self._holes.value = 0
            if self._fill < self._want:
                break  # the queue is empty
            self._emit()  # a fragment may still be half copied: the next buffer takes the rest at once
        if final and self._fill:
            self._emit()

    def _copy_fragment(self, address: int | None, size: int) -> None:
        done = 0
        while done < size:
            if self._buffer is None:
                self._new_buffer()
            n = min(size - done, self._want - self._fill)
            if address:
                ctypes.memmove(self._buffer_address + self._fill, address + done, n)
            else:  # a hole: the server lost data before it reached the stream
                ctypes.memset(self._buffer_address + self._fill, 0, n)
                self._sink.overflow(n // self._frame_bytes)
            self._fill += n
            done += n
            if self._fill == self._want:
                self._emit()

    def _new_buffer(self) -> None:
        # Once per block: ``ndarray.ctypes`` builds a helper object each time; the interface
        # dict is the cheaper way to the same address.
        self._buffer = buffer = self._empty(self._want // 2, dtype="<i2")
        self._buffer_address = buffer.__array_interface__["data"][0]
        self._fill = 0

    def _emit(self) -> None:
        block = self._buffer[: self._fill // 2].reshape(-1, self.channels)
        self._buffer = None
        self._consumed += self._fill
        frames = len(block)
        self._fill = 0
        start, lost = self._timeline.place(self._capture_end() - frames / self.rate, frames)
        if lost:
            self._sink.overflow(lost)
        self._outbox.append((block, start))
        self._want = self._block_bytes
        if not self._closing:
            self._ask_timing()
        if not self._steady:  # the first block is out: the steady fragment, one read per block
            if self._raise_live:
                self._raise_fragment()
            self._pa.pa_stream_set_read_callback(self._stream, _libpulse.ReadCallback(), None)
            self._steady = True

    def _ask_timing(self) -> None:
        """A fresh timing report for the next block (libpulse's own come up to 1.5 s apart).

        Each report is off by up to a PipeWire quantum, and the timeline averages many. A reader
        that sleeps on a timer asks after every block, and the reply comes while it sleeps; one
        that waits on the connection would be woken by each reply, and asks every
        :data:`TIMING_SECONDS`.
        """
        now = time.monotonic()
        if self._whole_packets and now - self._timing_asked < TIMING_SECONDS:
            return
        self._timing_asked = now
        self._unref(self._pa.pa_stream_update_timing_info(self._stream, None, None))

    def _deliver(self, quietly: bool = False) -> None:
        """Hand the blocks read in this wake-up to the sink, as the thread's last work before it sleeps.

        Pushing wakes the worker; were the reader still busy with libpulse (whose every call
        through ctypes lets go of the GIL and takes it back), the worker would wake to a held
        GIL and sleep again: two wake-ups a block instead of one. ``quietly`` (where it can): the blocks go in
        without waking it, and the wait on the connection that follows rings its doorbell from
        C, the GIL let go of (see :mod:`micrec._doorbell`).
        """
        if not self._outbox:
            return
        push_quietly = self._push_quietly if quietly else None
        if push_quietly is not None:
            for block, start in self._outbox:
                push_quietly(block, start)
            self._ring = True
        else:
            for block, start in self._outbox:
                self._sink.push(block, capture_time=start)
        self._outbox.clear()

    def _capture_end(self) -> float:
        """When the last frame read so far was captured, on the time.monotonic() clock.

        From the server's latest timing report (libpulse asks for one now and then): at its
        ``timestamp`` the server had queued ``write_index`` bytes of the stream and its source held
        ``source_usec`` more, so the newest frame then captured sat that far past the frames read
        so far. libpulse's own interpolation (``pa_stream_get_time``) is not used: on PipeWire
        it wanders by 100 ms and more between reports.
        """
        now = time.monotonic()
        report = self._pa.pa_stream_get_timing_info(self._stream)
        if not report or report.contents.write_index_corrupt:
            return now  # no report yet: the arrival is the best guess
        info = report.contents
        stamp = info.timestamp.tv_sec + info.timestamp.tv_usec / 1e6 - (time.time() - now)  # wall → monotonic
        ahead = (info.write_index - self._consumed) / self._byte_rate + info.source_usec / 1e6
        return min(now, stamp - ahead)

    def _raise_fragment(self) -> None:
        lp = _libpulse
        self._fragment_bytes = self._block_bytes
        attr = lp.BufferAttr(lp.NO_VALUE, lp.NO_VALUE, lp.NO_VALUE, lp.NO_VALUE, self._block_bytes)
        self._unref(self._pa.pa_stream_set_buffer_attr(self._stream, ctypes.byref(attr), None, None))

    def _on_overflow(self, _stream: int, _userdata: Any) -> None:
        self._sink.overflow()

    def _on_context_state(self, _context: int, _userdata: Any) -> None:
        if self._started and not self._closing and self._pa.pa_context_get_state(self._context) in _CONTEXT_SETTLED:
            self._report_server_lost()

    def _report_server_lost(self) -> None:
        self._report(DeviceLostError(
            f"the connection to the sound server was lost while recording ({self._context_error()}): "
            "the server stopped, restarted or crashed"))

    def _on_stream_state(self, stream: int, _userdata: Any) -> None:
        if not self._started or self._closing or self._pa.pa_stream_get_state(stream) not in _STREAM_SETTLED:
            return
        if self._pa.pa_context_get_state(self._context) != _libpulse.CONTEXT_READY:
            self._report_server_lost()
        else:
            self._report(DeviceLostError(f"the capture device {self._label} was removed from the sound server",
                                         value=self._source, name="device"))

    def _report(self, error: DeviceLostError) -> None:
        if self._reported:
            return
        self._reported = True
        self._deliver()  # what was read before the fault comes first
        self._sink.fail(error)
        self._wake.set()
        self._pa.pa_mainloop_quit(self._mainloop, 1)

    def _unref(self, operation: int | None) -> None:
        if operation:
            self._pa.pa_operation_unref(operation)

    def _teardown(self) -> None:
        pa = self._pa
        self._closing = True
        with self._lock:
            if self._stream:
                pa.pa_stream_disconnect(self._stream)
                pa.pa_stream_unref(self._stream)
                self._stream = None
            if self._context:
                pa.pa_context_disconnect(self._context)
                pa.pa_context_unref(self._context)
                self._context = None
            if self._mainloop:
                pa.pa_mainloop_free(self._mainloop)
                self._mainloop = None
        # The stream lives on in a reference cycle (its libpulse callbacks) until the garbage
        # collector runs; the session's queue, whose doorbell is a file descriptor, must not.
        self._sink, self._push_quietly, self._doorbell_fd = _NullSink(), None, -1


class _FastCalls:
    """The per-packet functions of libpulse, bound a second time without argument types.

    A call through ctypes' ``argtypes`` converts every argument (a third of a microsecond for
    peek's three); these take ready ``c_void_p`` and ``byref`` objects as they are. A source kept
    at 10 ms by another client sends hundreds of packets a second, each a few of these calls.
    """

    def __init__(self, lib: Any) -> None:
        self.iterate = lib["pa_mainloop_iterate"]  # a new function object: load()'s keep their argtypes
        self.peek = lib["pa_stream_peek"]
        self.drop = lib["pa_stream_drop"]
        for function in (self.iterate, self.peek, self.drop):
            function.restype = ctypes.c_int
        # For the compiled loop, which calls them itself.
        self.iterate_address, self.peek_address, self.drop_address, self.prepare_address, self.poll_address, \
            self.dispatch_address, self.readable_address = (ctypes.cast(lib[name], ctypes.c_void_p).value for name in (
                "pa_mainloop_iterate", "pa_stream_peek", "pa_stream_drop", "pa_mainloop_prepare",
                "pa_mainloop_poll", "pa_mainloop_dispatch", "pa_stream_readable_size"))


@functools.cache
def _fast_calls() -> _FastCalls:
    return _FastCalls(_libpulse.load())


class _Timeline:
    """Places each block on the capture clock: continuous, following the server's estimate slowly.

    The server's timing gives each block's capture time within a few milliseconds of jitter;
    consecutive blocks are placed end to end instead, nudged toward it (the first blocks by
    their running average, later ones by :data:`CLOCK_SLEW` of the difference, so that the clock
    follows the device's drift), and a block the estimate puts later than
    :data:`GAP_SECONDS` after its predecessor marks audio the server lost: it is placed where
    the estimate says and the missing frames are reported.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._next: float | None = None
        self._placed = 0

    @property
    def next_start(self) -> float | None:
        """Where the next block begins on the capture clock (None before the first)."""
        return self._next

    def place(self, estimate: float, frames: int) -> tuple[float, int]:
        """(start time for the block, frames lost before it)."""
        lost = 0
        if self._next is None:
            start = estimate
        else:
            error = estimate - self._next
            if abs(error) > GAP_SECONDS:
                start = estimate
                # The first block's estimate may come from a report older than the source: one
                # that was suspended (idle) sends its first packet as it wakes, 0.3-1 s after the
                # stream started, and the next report places the audio that much later. That is
                # the server's clock catching up, not audio lost.
                lost = round(error * self.rate) if error > 0 and self._placed > 1 else 0
            else:
                # The first blocks average their estimates (one report can be off by half of
                # PipeWire's quantum); later ones follow them slowly, for the clock's drift.
                start = self._next + error * max(CLOCK_SLEW, 1.0 / (self._placed + 1))
        self._placed += 1
        self._next = start + frames / self.rate
        return start, lost


class _NullSink:
    """Where a probe stream that is never started would deliver."""

    def push(self, block: Any, *, wait: bool = False, capture_time: float | None = None) -> None:
        pass

    def overflow(self, frames: int = 0) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        pass
