"""One conformance suite, run against every capture backend: PulseAudio, PortAudio, the test backend.

PortAudio runs here through ALSA's pulse plugin, so it too records the private server's
virtual microphone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from micrec import DeviceNotFoundError, InputDevice
from micrec.backends import CaptureBackend, CaptureStream, StreamSpec, TestBackend, get_backend
from micrec.vmic import VirtualMicrophone

from audio import dominant_frequency, tone

FREQ = 1000.0


class CollectingSink:
    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.errors: list[BaseException] = []
        self.overflows = 0
        self.lock = threading.Lock()

    def push(self, block: np.ndarray, *, wait: bool = False) -> None:
        with self.lock:
            self.blocks.append(block)

    def overflow(self, frames: int = 0) -> None:
        self.overflows += 1

    def fail(self, error: BaseException) -> None:
        self.errors.append(error)

    def frames(self) -> int:
        with self.lock:
            return sum(len(b) for b in self.blocks)


@pytest.fixture(params=["pulse", "portaudio", "test"])
def backend(request: pytest.FixtureRequest, vmic: VirtualMicrophone) -> Iterator[CaptureBackend]:
    vmic.play_tone(FREQ, 10)
    if request.param == "test":
        yield TestBackend({"test": tone(FREQ, 10, 48000), "other": tone(200, 1, 48000)}, 48000)
    else:
        yield get_backend(request.param)


def test_is_a_capture_backend(backend: CaptureBackend) -> None:
    assert isinstance(backend, CaptureBackend)
    assert backend.name in ("pulse", "portaudio", "test")


def test_lists_devices_with_one_default(backend: CaptureBackend) -> None:
    devices = backend.list_devices()
    assert devices and all(isinstance(d, InputDevice) for d in devices)
    assert sum(d.is_default for d in devices) == 1
    assert all(d.id and d.label and d.backend == backend.name for d in devices)
    assert not any(d.id.endswith(".monitor") for d in devices)


def test_can_capture_tells_the_truth(backend: CaptureBackend) -> None:
    assert backend.can_capture(None) is True
    assert backend.can_capture(backend.list_devices()[0].id) is True
    assert backend.can_capture("no-such-device") is False


def test_unknown_device_raises(backend: CaptureBackend) -> None:
    with pytest.raises(DeviceNotFoundError, match="no-such-device"):
        backend.open(StreamSpec("no-such-device", 48000, 1, 960), CollectingSink())


def test_stream_delivers_int16_blocks_of_the_signal(backend: CaptureBackend) -> None:
    sink = CollectingSink()
    stream = backend.open(StreamSpec(None, 48000, 1, 960), sink)
    assert isinstance(stream, CaptureStream)
    assert not sink.blocks  # nothing before start
    stream.start()
    deadline = time.monotonic() + 20
    while sink.frames() < stream.rate and time.monotonic() < deadline:
        time.sleep(0.02)
    stream.close()
    count = len(sink.blocks)
    time.sleep(0.1)
    assert len(sink.blocks) == count  # nothing after close
    assert not sink.errors
    assert all(b.dtype == np.int16 and b.ndim == 2 and b.shape[1] == stream.channels for b in sink.blocks)
    data = np.concatenate(sink.blocks)[:, 0]
    assert len(data) >= stream.rate
    assert dominant_frequency(data[-stream.rate // 2:], stream.rate) == pytest.approx(FREQ, abs=5)


def test_stream_opens_stereo(backend: CaptureBackend) -> None:
    sink = CollectingSink()
    stream = backend.open(StreamSpec(None, 44100, 2, 882), sink)
    stream.start()
    deadline = time.monotonic() + 20
    while sink.frames() < stream.rate // 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    stream.close()
    assert sink.blocks
    # Real backends open what was asked; the test backend keeps its own format (the pipeline converts).
    if backend.name != "test":
        assert (stream.rate, stream.channels) == (44100, 2)
        assert all(b.shape[1] == 2 for b in sink.blocks)
