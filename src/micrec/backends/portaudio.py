"""Capture through PortAudio (python-sounddevice): macOS, Windows, and Linux without a sound server.

On Linux, PortAudio needs the system's libportaudio2. Device ids are PortAudio device names.
Where a device cannot open the configured rate or channel count, the stream opens it at the
device's own rate and channel count and the pipeline resamples and remixes.

PortAudio calls back every :data:`PERIOD_MS`; the callback copies into the block being filled
and hands it over once it holds the pipeline's block. A stop waits for the callback that
brings the audio captured up to it (one period, about) and delivers the partial block: the
take ends where ``stop_recording()`` was called, not at the last whole block.
"""

from __future__ import annotations

import functools
import threading
from time import monotonic
from typing import Any

from .._lazy import require
from ..errors import BackendUnavailableError, DeviceError, DeviceLostError, DeviceNotFoundError
from ..types import InputDevice
from .base import BlockSink, StreamSpec

__all__ = ["PERIOD_MS", "PortAudioBackend"]

#: PortAudio's callback interval: what a stop waits for the audio captured up to it.
PERIOD_MS = 20
#: How much longer than a period the stop waits for that callback (a busy machine, a slow host API).
TAIL_MARGIN_SECONDS = 0.06


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
        import numpy as np

        self._new_block = functools.partial(np.empty, dtype=np.int16)  # not imported in the callback
        self._block_frames = max(1, spec.block_frames * self.rate // spec.rate)
        self._period_frames = max(1, min(self._block_frames, self.rate * PERIOD_MS // 1000))
        self._pending: Any = None  # the block being filled (callback thread; close() after stop())
        self._fill = 0
        self._pending_time = 0.0  # when its first frame was captured
        self._stop_at = float("inf")
        self._tail_in = threading.Event()
        try:
            self._stream = sd.InputStream(
                device=info["index"], samplerate=self.rate, channels=self.channels, dtype="int16",
                blocksize=self._period_frames, callback=self._callback, finished_callback=self._finished)
        except Exception as exc:
            raise DeviceError(f"cannot open capture device {info['name']!r}: {exc}",
                              value=info["name"], name="device") from exc

    def _callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        if status.input_overflow:
            self._sink.overflow()
        # PortAudio's own timestamps run on a clock of the host API's; the block's arrival is
        # on the monotonic clock the other streams use.
        arrival = monotonic()
        captured = arrival - frames / self.rate
        done = 0
        while done < frames:
            if self._pending is None:
                self._pending = self._new_block((self._block_frames, self.channels))
                self._fill = 0
                self._pending_time = captured + done / self.rate
            n = min(frames - done, self._block_frames - self._fill)
            self._pending[self._fill:self._fill + n] = indata[done:done + n]
            self._fill += n
            done += n
            if self._fill == self._block_frames:
                self._hand_over()
        if arrival >= self._stop_at:
            self._tail_in.set()

    def _hand_over(self) -> None:
        block, self._pending = self._pending[:self._fill], None
        self._sink.push(block, capture_time=self._pending_time)

    def _finished(self) -> None:
        if not self._closing.is_set():
            self._sink.fail(DeviceLostError("PortAudio stopped the capture stream"))

    def start(self) -> None:
        try:
            self._stream.start()
        except Exception as exc:
            raise DeviceError(f"cannot start capture: {exc}") from exc

    def close(self) -> None:
        """Stop once the audio captured up to now has come in (a period, about); deliver it all."""
        self._stop_at = monotonic()
        if self._stream.active:
            self._tail_in.wait(self._period_frames / self.rate + TAIL_MARGIN_SECONDS)
        self._closing.set()
        try:
            self._stream.stop()  # returns once the callback has returned for the last time
        finally:
            if self._pending is not None and self._fill:
                self._hand_over()
            self._stream.close()
