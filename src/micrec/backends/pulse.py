"""Capture from a PulseAudio server, or PipeWire through pipewire-pulse.

Listing uses pulsectl (libpulse's introspection API); capture uses libpulse-simple through
pasimple, read on a thread of its own in blocks of ``spec.block_frames``. The server opens the
source at whatever rate and channel count the stream asks for (it resamples and remixes), so
the stream always runs at the configured format and the pipeline converts nothing.

Monitors of outputs are not microphones: they are left out of the device list (they can still
be named with ``device=`` explicitly).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._lazy import require
from ..errors import DeviceError, DeviceLostError, DeviceNotFoundError, FeatureUnavailableError
from ..types import InputDevice
from .base import BlockSink, StreamSpec

if TYPE_CHECKING:
    pass

__all__ = ["PulseBackend", "server_reachable"]

_PA_INVALID_INDEX = 0xFFFFFFFF
_FIRST_BLOCK_MS = 20


def _pulsectl() -> Any:
    return require("pulsectl", extra="pulse")


def _pasimple() -> Any:
    return require("pasimple", extra="pulse")


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

    def _known_sources(self) -> tuple[set[str], str | None]:
        sources, default = self._introspect()
        return {s.name for s in sources}, default

    def can_capture(self, device: str | None) -> bool:
        try:
            names, default = self._known_sources()
            target = device or default
            if not target or target not in names:
                return False
            pasimple = _pasimple()
            probe = pasimple.PaSimple(pasimple.PA_STREAM_RECORD, pasimple.PA_SAMPLE_S16LE, 1, 16000,
                                      self.app_name, "permission probe", server_name=self.server,
                                      device_name=target, fragsize=640)
            probe.close()
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
            with _pulsectl().Pulse(f"{self.app_name}-monitor", server=self.server) as pulse:
                sink_name = spec.device or pulse.server_info().default_sink_name
                monitor = pulse.get_sink_by_name(sink_name).monitor_source_name
        except Exception as exc:  # no server, no default output, or no such sink
            raise FeatureUnavailableError(
                f"cannot read what the output {spec.device or '(default)'} plays: {exc}; "
                "cancel_echo needs an output device on the sound server", value=spec.device,
                name="cancel_echo") from exc
        return _PulseStream(self, replace(spec, device=monitor), sink)


class _PulseStream:
    def __init__(self, backend: PulseBackend, spec: StreamSpec, sink: BlockSink) -> None:
        pasimple = _pasimple()
        self.rate = spec.rate
        self.channels = spec.channels
        self._sink = sink
        self._block_bytes = spec.block_frames * spec.channels * 2
        # The first block is short, so that audio flows within ~20 ms of the start whatever the
        # block size; the server sends packets of that size, the reader takes whole blocks.
        self._first_bytes = min(self._block_bytes, spec.rate * _FIRST_BLOCK_MS // 1000 * spec.channels * 2)
        try:
            self._pa = pasimple.PaSimple(
                pasimple.PA_STREAM_RECORD, pasimple.PA_SAMPLE_S16LE, spec.channels, spec.rate,
                backend.app_name, "recording", server_name=backend.server,
                device_name=spec.device, fragsize=self._first_bytes)
        except Exception as exc:
            raise DeviceError(f"cannot open capture device {spec.device or '(default)'}: {exc}",
                              value=spec.device, name="device") from exc
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name="micrec-pulse-capture", daemon=True)
        # The server moves a stream whose source disappears to another source; a take from a
        # device the user named must end instead of silently recording another microphone.
        self._watch = _SourceWatch(backend, spec.device, sink) if spec.device is not None else None

    def start(self) -> None:
        self._running.set()
        self._thread.start()
        if self._watch is not None:
            self._watch.start()

    def close(self) -> None:
        was_started = self._thread.is_alive() or self._running.is_set()
        self._running.clear()
        if self._watch is not None:
            self._watch.close()
        if was_started and self._thread is not threading.current_thread():
            self._thread.join()
        if self._pa is not None:
            self._pa.close()
            self._pa = None

    def _read_loop(self) -> None:
        import numpy as np

        read, push, nbytes, channels = self._pa.read, self._sink.push, self._block_bytes, self.channels
        try:
            push(np.frombuffer(read(self._first_bytes), dtype=np.int16).reshape(-1, channels))
            while self._running.is_set():
                push(np.frombuffer(read(nbytes), dtype=np.int16).reshape(-1, channels))
        except Exception as exc:  # noqa: BLE001 - pasimple raises its own error type
            if self._running.is_set():
                self._sink.fail(DeviceLostError(f"the capture device stopped delivering audio: {exc}"))


class _SourceWatch:
    """Reports DeviceLostError when the named source is removed from the server."""

    def __init__(self, backend: PulseBackend, device: str, sink: BlockSink) -> None:
        pulsectl = _pulsectl()
        self._device = device
        self._sink = sink
        self._closing = False
        self._pulse = pulsectl.Pulse(f"{backend.app_name}-watch", server=backend.server)
        self._index = self._pulse.get_source_by_name(device).index
        self._thread = threading.Thread(target=self._listen, name="micrec-pulse-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        self._pulse.event_listen_stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self._pulse.close()

    def _listen(self) -> None:
        pulsectl = _pulsectl()
        removed = False

        def on_event(event: Any) -> None:
            nonlocal removed
            if event.t == "remove" and event.index == self._index:
                removed = True
                raise pulsectl.PulseLoopStop

        self._pulse.event_mask_set("source")
        self._pulse.event_callback_set(on_event)
        try:
            self._pulse.event_listen()
        except Exception as exc:  # noqa: BLE001 - the connection to the server broke
            if not self._closing:
                self._sink.fail(DeviceLostError(f"lost the sound server while recording: {exc}"))
            return
        if removed and not self._closing:
            self._sink.fail(DeviceLostError(f"the capture device {self._device!r} was removed",
                                            value=self._device, name="device"))
