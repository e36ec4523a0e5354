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

from audio import dominant_frequency, noise, tone

FREQ = 1000.0


class CollectingSink:
    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.times: list[float | None] = []
        self.errors: list[BaseException] = []
        self.overflows = 0
        self.lock = threading.Lock()

    def push(self, block: np.ndarray, *, wait: bool = False, capture_time: float | None = None) -> None:
        with self.lock:
            self.blocks.append(block)
            self.times.append(capture_time)

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


def test_capture_times_agree_with_the_audio(backend: CaptureBackend, vmic: VirtualMicrophone) -> None:
    # Two streams of one microphone, opened 0.3 s apart: the same sound, found in both by its
    # content, has the same capture time in both.
    if backend.name == "test":
        pytest.skip("the test backend replays its array from the start for every stream")
    if backend.name == "portaudio":
        pytest.skip("PortAudio's blocks are stamped by their arrival (ALSA's pulse plugin passes on no "
                    "server clock): within a scheduling delay, not the server's timing")
    vmic.play_samples(noise(7.0, 48000, seed=5), 48000)
    sinks = [CollectingSink(), CollectingSink()]
    streams = []
    for sink in sinks:
        stream = backend.open(StreamSpec(None, 48000, 1, 4800), sink)
        stream.start()
        streams.append(stream)
        time.sleep(0.3)
    deadline = time.monotonic() + 20
    while min(s.frames() for s in sinks) < 3 * 48000 and time.monotonic() < deadline:
        time.sleep(0.02)
    for stream in streams:
        stream.close()
    assert not any(s.errors for s in sinks)
    first, second = (np.concatenate(s.blocks)[:, 0].astype(np.float64) for s in sinks)
    # 250 ms, two seconds into the later stream: its timeline has averaged some 20 timing
    # reports by then (each off by up to a PipeWire quantum, 43 ms).
    piece = second[96000:108000]
    size = len(first) + len(piece)
    correlation = np.fft.irfft(np.fft.rfft(first, size) * np.conj(np.fft.rfft(piece, size)), size)
    found = int(np.argmax(correlation[: len(first) - len(piece)]))
    assert np.array_equal(first[found:found + len(piece)], piece), "the same audio in both streams"
    lag = frame_time(sinks[0], found, 48000) - frame_time(sinks[1], 96000, 48000)
    # Each stream's timeline follows its server's timing reports. PulseAudio's agree within a few
    # ms; pipewire-pulse's are each off by up to a quantum (43 ms), and two streams' averages were
    # seen 10 and 16 ms apart on a busy machine. The limits still fail on a timeline off by a
    # block (100 ms), or by a whole quantum on PipeWire.
    limit = 0.025 if vmic.is_pipewire else 0.010
    assert abs(lag) < limit, f"the same sound is {1000 * lag:.1f} ms apart on the two streams' clocks"


def frame_time(sink: CollectingSink, frame: int, rate: int) -> float:
    """The capture time of a stream's frame, from the time of the block it is in."""
    start = 0
    for block, at in zip(sink.blocks, sink.times, strict=True):
        if frame < start + len(block):
            assert at is not None, "every block carries its capture time"
            return at + (frame - start) / rate
        start += len(block)
    raise AssertionError(f"frame {frame} was not captured")
