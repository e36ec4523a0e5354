"""Capture through PortAudio (python-sounddevice): macOS, Windows, and Linux without a sound server.

On Linux, PortAudio needs the system's libportaudio2. Device ids are PortAudio device names.
Where a device cannot open the configured rate or channel count, the stream opens it at the
device's own rate and channel count and the pipeline resamples and remixes.
"""

from __future__ import annotations

import threading
from time import monotonic
from typing import Any

from .._lazy import require
from ..errors import BackendUnavailableError, DeviceError, DeviceLostError, DeviceNotFoundError
from ..types import InputDevice
from .base import BlockSink, StreamSpec

__all__ = ["PortAudioBackend"]


def _sounddevice() -> Any:
    try:
        return require("sounddevice", extra="portaudio")
    except OSError as exc:  # the module imports, but libportaudio is missing
        raise BackendUnavailableError(
            f"PortAudio is not installed: {exc}; on Debian/Ubuntu apt-get install libportaudio2") from exc


def available() -> bool:
    try:
        _sounddevice()
        return True
    except Exception:  # noqa: BLE001
        return False


class PortAudioBackend:
    """Capture devices that PortAudio sees."""

    name = "portaudio"

    def _inputs(self) -> tuple[list[dict[str, Any]], int]:
        sd = _sounddevice()
        devices = [dict(d) for d in sd.query_devices() if d["max_input_channels"] > 0]
        default = sd.default.device[0]
        if default is None or default < 0:
            try:
                default = sd.query_devices(kind="input")["index"]
            except Exception:  # noqa: BLE001 - no default input
                default = -1
        return devices, int(default)

    def list_devices(self) -> list[InputDevice]:
        try:
            devices, default = self._inputs()
        except Exception:  # noqa: BLE001
            return []
        return [InputDevice(d["name"], d["name"], d["index"] == default, self.name) for d in devices]

    def _find(self, device: str | None) -> dict[str, Any]:
        devices, default = self._inputs()
        for d in devices:
            if (device is None and d["index"] == default) or d["name"] == device:
                return d
        if device is None:
            raise DeviceError("PortAudio has no default capture device; pass device=", name="device")
        raise DeviceNotFoundError(
            f"no capture device {device!r}; pick one of {[d['name'] for d in devices]} "
            "(see get_input_devices())", value=device, name="device")

    def can_capture(self, device: str | None) -> bool:
        try:
            info = self._find(device)
            sd = _sounddevice()
            sd.check_input_settings(device=info["index"], channels=1, dtype="int16")
            return True
        except Exception:  # noqa: BLE001
            return False

    def open(self, spec: StreamSpec, sink: BlockSink) -> _PortAudioStream:
        info = self._find(spec.device)
        return _PortAudioStream(info, spec, sink)


class _PortAudioStream:
    def __init__(self, info: dict[str, Any], spec: StreamSpec, sink: BlockSink) -> None:
        sd = _sounddevice()
        self._sink = sink
        self.channels = min(spec.channels, int(info["max_input_channels"]))
        self.rate = spec.rate
        try:
            sd.check_input_settings(device=info["index"], channels=self.channels, dtype="int16",
                                    samplerate=spec.rate)
        except Exception:  # noqa: BLE001 - the device cannot do the rate: the pipeline resamples
            self.rate = int(info["default_samplerate"])
        self._closing = threading.Event()
        try:
            self._stream = sd.InputStream(
                device=info["index"], samplerate=self.rate, channels=self.channels, dtype="int16",
                blocksize=max(1, spec.block_frames * self.rate // spec.rate),
                callback=self._callback, finished_callback=self._finished)
        except Exception as exc:
            raise DeviceError(f"cannot open capture device {info['name']!r}: {exc}",
                              value=info["name"], name="device") from exc

    def _callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        if status.input_overflow:
            self._sink.overflow()
        # PortAudio's own timestamps run on a clock of the host API's; the block's arrival is
        # on the monotonic clock the other streams use.
        self._sink.push(indata.copy(), capture_time=monotonic() - frames / self.rate)

    def _finished(self) -> None:
        if not self._closing.is_set():
            self._sink.fail(DeviceLostError("PortAudio stopped the capture stream"))

    def start(self) -> None:
        try:
            self._stream.start()
        except Exception as exc:
            raise DeviceError(f"cannot start capture: {exc}") from exc

    def close(self) -> None:
        self._closing.set()
        self._stream.close()
