"""A deterministic capture backend for tests, demos and offline runs.

Like httpx's ``MockTransport``, :class:`TestBackend` stands in for the real thing behind the
same interface: it "captures" the arrays it was given, paced like a real device or as fast as
the pipeline takes them, and can inject a fault at a chosen point.

Examples
--------
>>> import numpy as np
>>> from micrec import AudioRecorder
>>> from micrec.backends import TestBackend
>>> tone = (0.5 * 32767 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.int16)
>>> rec = AudioRecorder(sample_rate=48000, channels_num=1,
...                     backend=TestBackend(tone, rate=48000, realtime=False))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import DeviceLostError, DeviceNotFoundError
from ..types import InputDevice
from .base import BlockSink, StreamSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["TestBackend"]


class TestBackend:
    """Plays given int16 arrays as capture devices.

    Parameters
    ----------
    signals : array or mapping of device id to array
        int16 samples, 1-D (mono) or (frames, channels). A single array is device ``"test"``.
    rate : int
        The rate of the arrays: streams always run at this rate, so asking for another rate
        exercises the pipeline's resampler.
    realtime : bool
        Pace blocks like a real device (True) or deliver as fast as the pipeline accepts them.
    block_frames : int, optional
        Block size; default: what the stream spec asks for.
    after_end : {"silence", "loop", "stop"}
        What a device delivers once its array is used up; "stop" ends delivery (the pipeline
        then waits, as with a silent device).
    fail_after : float, optional
        Seconds of audio after which the stream reports ``error`` (default DeviceLostError).
    error : BaseException, optional
        The fault to inject.
    """

    __test__ = False  # not a pytest test class
    name = "test"

    def __init__(self, signals: npt.ArrayLike | Mapping[str, npt.ArrayLike], rate: int = 48000, *,
                 realtime: bool = True, block_frames: int | None = None, after_end: str = "silence",
                 fail_after: float | None = None, error: BaseException | None = None,
                 permission: bool = True) -> None:
        import numpy as np

        if not isinstance(signals, Mapping):
            signals = {"test": signals}
        self.signals: dict[str, npt.NDArray[np.int16]] = {}
        for device_id, data in signals.items():
            arr = np.asarray(data, dtype=np.int16)
            self.signals[device_id] = arr.reshape(-1, 1) if arr.ndim == 1 else arr
        self.rate = rate
        self.realtime = realtime
        self.block_frames = block_frames
        self.after_end = after_end
        self.fail_after = fail_after
        self.error = error
        self.permission = permission
        self.streams_opened = 0
        self._done = threading.Event()

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until a stream has delivered all of its array (``after_end="stop"``)."""
        return self._done.wait(timeout)

    def list_devices(self) -> list[InputDevice]:
        default = next(iter(self.signals))
        return [InputDevice(d, f"Test signal {d}", d == default, self.name) for d in self.signals]

    def can_capture(self, device: str | None) -> bool:
        return self.permission and (device is None or device in self.signals)

    def open(self, spec: StreamSpec, sink: BlockSink) -> _TestStream:
        device = spec.device if spec.device is not None else next(iter(self.signals))
        if device not in self.signals:
            raise DeviceNotFoundError(
                f"no capture device {device!r}; the test backend has {sorted(self.signals)}",
                value=device, name="device")
        self.streams_opened += 1
        self._done.clear()
        return _TestStream(self, self.signals[device], self.block_frames or spec.block_frames, sink)


class _TestStream:
    def __init__(self, backend: TestBackend, data: npt.NDArray[np.int16], block_frames: int,
                 sink: BlockSink) -> None:
        self._backend = backend
        self._data = data
        self._block = block_frames
        self._sink = sink
        self.rate = backend.rate
        self.channels = int(data.shape[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="micrec-test-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        backend = self._backend
        fail_at = None if backend.fail_after is None else int(backend.fail_after * self.rate)
        position = 0
        started = time.monotonic()
        while not self._stop.is_set():
            if fail_at is not None and position >= fail_at:
                self._sink.fail(backend.error or DeviceLostError("test backend: device removed"))
                return
            block = self._next_block(position)
            if block is None:
                backend._done.set()
                return
            captured_at = started + position / self.rate
            position += len(block)
            if backend.realtime:
                delay = started + position / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                self._sink.push(block, capture_time=captured_at)
            else:
                self._sink.push(block, wait=True)

    def _next_block(self, position: int) -> npt.NDArray[np.int16] | None:
        import numpy as np

        total = len(self._data)
        mode = self._backend.after_end
        if mode == "loop" and total:
            idx = (np.arange(position, position + self._block) % total)
            return self._data[idx]
        if position >= total:
            if mode == "stop":
                return None
            return np.zeros((self._block, self.channels), dtype=np.int16)
        block = self._data[position:position + self._block].copy()
        if len(block) < self._block:
            pad = np.zeros((self._block - len(block), self.channels), dtype=np.int16)
            block = np.concatenate([block, pad])
        return block
