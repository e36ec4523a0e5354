"""micrec.aio: the recorder's coroutine face, under asyncio.

The state machine, the event delivery and the slow-consumer policy on the deterministic test
backend; one take on the real sound server through the virtual microphone, decoded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from micrec import AudioRecorderState, AudioRecorderStateChangeEvent, InvalidConfigError, StateError
from micrec.aio import AsyncAudioRecorder, BlockStream
from micrec.backends import TestBackend
from micrec.vmic import VirtualMicrophone

from audio import dominant_frequency, peak_dbfs, tone

RATE = 48000


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def ramp(seconds: float) -> np.ndarray:
    """Samples that say where they are: sample i is i mod 30000 (no two blocks look alike)."""
    return (np.arange(int(seconds * RATE)) % 30000).astype(np.int16)


def fast_backend(signal: np.ndarray, **kw: Any) -> TestBackend:
    return TestBackend(signal, RATE, realtime=False, after_end="stop", **kw)


class Recorded:
    """An ``on_state_changed`` handler noting each event, the thread and the loop it ran on."""

    def __init__(self) -> None:
        self.events: list[AudioRecorderStateChangeEvent] = []
        self.threads: set[str] = set()
        self.loops: set[int] = set()

    def __call__(self, e: AudioRecorderStateChangeEvent) -> None:
        self.events.append(e)
        self.threads.add(threading.current_thread().name)
        self.loops.add(id(asyncio.get_running_loop()))

    @property
    def states(self) -> list[str]:
        return [e.data for e in self.events]


def test_a_take_with_pause_and_resume_delivers_events_on_the_loop_in_order(tmp_path: Path) -> None:
    signal = tone(440, 2.0, RATE)
    events = Recorded()
    path = tmp_path / "take.flac"

    async def main() -> tuple[str | None, int]:
        rec = AsyncAudioRecorder(audio_encoder="flac", sample_rate=RATE, channels_num=1,
                                 on_state_changed=events, backend=fast_backend(signal))
        assert await rec.start_recording(path) is True
        assert events.states == ["recording"]  # plain handlers have run when the call returns
        assert rec.is_recording() and rec.state is AudioRecorderState.RECORDING
        await rec.pause_recording()
        assert rec.is_paused()
        await rec.resume()
        assert await asyncio.to_thread(rec.recorder.backend.wait_done, 30)
        result = await rec.stop_recording()
        assert not rec.is_recording()
        return result, id(asyncio.get_running_loop())

    result, loop_id = run(main())
    assert result == str(path)
    assert events.states == ["recording", "paused", "recording", "stopped"]
    assert events.threads == {threading.main_thread().name}
    assert events.loops == {loop_id}
    data, rate = sf.read(path, dtype="int16")
    assert rate == RATE
    assert dominant_frequency(data, RATE) == pytest.approx(440, abs=2)


def test_coroutine_handlers_are_awaited_one_at_a_time_in_order(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    running = 0
    overlapped = False

    async def handler(e: AudioRecorderStateChangeEvent) -> None:
        nonlocal running, overlapped
        running += 1
        overlapped = overlapped or running > 1
        seen.append(("begin", e.data))
        # The first handler is the slowest: a delivery that did not wait would reorder them.
        await asyncio.sleep(0.2 if len(seen) == 1 else 0)
        seen.append(("end", e.data))
        running -= 1

    async def main() -> None:
        rec = AsyncAudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=handler,
                                 backend=TestBackend(tone(440, 1.0, RATE), RATE))
        await rec.start_recording(tmp_path / "a.wav")
        await rec.pause_recording()
        await rec.resume_recording()
        await rec.stop_recording()
        await rec.wait_for_events()

    run(main())
    assert not overlapped
    states = ["recording", "paused", "recording", "stopped"]
    assert seen == [step for s in states for step in (("begin", s), ("end", s))]


class _SlowClosingStream:
    def __init__(self, inner: Any, release: threading.Event, outcome: list[bool]) -> None:
        self._inner, self._release, self._outcome = inner, release, outcome
        self.rate, self.channels = inner.rate, inner.channels

    def start(self) -> None:
        self._inner.start()

    def close(self) -> None:
        # Closing takes as long as the loop needs to release it: if stop_recording() blocked
        # the loop, the ticker that sets the event could not run and this would time out.
        self._outcome.append(self._release.wait(30))
        self._inner.close()


class SlowStopBackend(TestBackend):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.release = threading.Event()
        self.released_in_time: list[bool] = []

    def open(self, spec: Any, sink: Any) -> Any:
        return _SlowClosingStream(super().open(spec, sink), self.release, self.released_in_time)


def test_a_slow_stop_leaves_the_loop_responsive(tmp_path: Path) -> None:
    backend = SlowStopBackend(tone(440, 1.0, RATE), RATE)

    async def main() -> tuple[int, int]:
        rec = AsyncAudioRecorder(sample_rate=RATE, channels_num=1, backend=backend)
        await rec.start_recording(tmp_path / "slow.wav")
        ticks_during_stop = 0
        stopping = True

        async def ticker() -> None:
            nonlocal ticks_during_stop
            while stopping:
                await asyncio.sleep(0.01)
                ticks_during_stop += 1
                if ticks_during_stop == 20:  # the loop ran 20 timers while the stop was under way
                    backend.release.set()

        task = asyncio.create_task(ticker())
        path = await rec.stop_recording()
        stopping = False
        await task
        assert path == str(tmp_path / "slow.wav")
        return ticks_during_stop, len(backend.released_in_time)

    ticks, closes = run(main())
    assert backend.released_in_time == [True]  # released by the ticker, not by the 30 s timeout
    assert ticks >= 20 and closes == 1


class _GatedSink:
    def __init__(self, inner: Any, gate: threading.Event) -> None:
        self._inner, self._gate = inner, gate

    def push(self, block: Any, *, wait: bool = False, capture_time: float | None = None) -> None:
        self._gate.wait(30)
        self._inner.push(block, wait=wait, capture_time=capture_time)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GatedBackend(TestBackend):
    """Captures nothing until ``gate`` is set, so that a test can attach before the first block."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gate = threading.Event()

    def open(self, spec: Any, sink: Any) -> Any:
        return super().open(spec, _GatedSink(sink, self.gate))


def test_a_slow_consumer_loses_the_oldest_blocks_and_the_file_loses_nothing(tmp_path: Path) -> None:
    signal = ramp(3.0)
    backend = GatedBackend(signal, RATE, realtime=False, after_end="stop")
    written: list[int] = []  # block lengths as the worker wrote them

    async def main() -> tuple[list[np.ndarray], BlockStream]:
        rec = AsyncAudioRecorder(sample_rate=RATE, channels_num=1, backend=backend,
                                 on_audio=lambda b: written.append(len(b)))
        await rec.start_recording(tmp_path / "all.wav")
        got: list[np.ndarray] = []
        stream = rec.aiter_blocks(max_blocks=5)
        backend.gate.set()
        most_queued = 0
        async for block in stream:
            most_queued = max(most_queued, stream.queued)
            got.append(block)
            if len(got) == 1:
                # A consumer that stalls until the whole signal has been captured and written.
                assert await asyncio.to_thread(backend.wait_done, 30)
                assert await rec.stop_recording() == str(tmp_path / "all.wav")
        assert most_queued <= 5
        return got, stream

    got, stream = run(main())
    data, _ = sf.read(tmp_path / "all.wav", dtype="int16")
    assert np.array_equal(data, signal)  # the capture and the file never waited for the consumer
    # The first block taken, then the newest ones the queue kept: 5, and once (a Python 3.11
    # matrix leg on a busy machine) 4; every block is still delivered or counted (below).
    assert 1 + 1 <= len(got) <= 1 + 5
    kept = np.concatenate(got[1:])[:, 0]
    assert np.array_equal(kept, signal[-len(kept):])  # the newest blocks, in order
    assert stream.dropped == len(written) - len(got) > 0  # every block is either delivered or counted


def test_async_with_stops_and_finalizes(tmp_path: Path) -> None:
    path = tmp_path / "ctx.wav"
    events = Recorded()

    async def main() -> None:
        async with AsyncAudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=events,
                                      backend=TestBackend(tone(440, 1.0, RATE), RATE)) as rec:
            await rec.start_recording(path)
            while rec.duration_ms < 200:
                await asyncio.sleep(0.01)
        assert not rec.is_recording()
        await rec.wait_for_events()

    run(main())
    assert events.states == ["recording", "stopped"]
    info = sf.info(path)
    assert info.frames >= 0.2 * RATE


def test_cancel_seek_and_errors(tmp_path: Path) -> None:
    async def main() -> None:
        rec = AsyncAudioRecorder(sample_rate=RATE, channels_num=1,
                                 backend=TestBackend(tone(440, 2.0, RATE), RATE))
        with pytest.raises(InvalidConfigError, match="channels_num"):
            rec.channels_num = 5
            await rec.start_recording(tmp_path / "bad.wav")
        assert not (tmp_path / "bad.wav").exists()
        rec.channels_num = 1
        with pytest.raises(StateError, match="paused"):
            await rec.seek(0)
        path = tmp_path / "seek.wav"
        await rec.start_recording(path)
        while rec.duration_ms < 300:
            await asyncio.sleep(0.01)
        await rec.pause()
        await rec.seek(100)
        assert rec.duration_ms == pytest.approx(100, abs=0.1)
        assert await rec.stop_recording() == str(path)
        assert sf.info(path).frames == RATE // 10
        await rec.start_recording(tmp_path / "gone.wav")
        await rec.cancel_recording()
        assert not (tmp_path / "gone.wav").exists()
        assert await rec.stop_recording() is None

    run(main())


def test_block_stream_without_a_take_and_after_aclose(tmp_path: Path) -> None:
    async def main() -> tuple[list[Any], int, int]:
        rec = AsyncAudioRecorder(sample_rate=RATE, channels_num=1,
                                 backend=TestBackend(tone(440, 5.0, RATE), RATE))
        nothing = [b async for b in rec.aiter_blocks()]
        await rec.start_recording(tmp_path / "a.wav")
        async with rec.aiter_blocks() as blocks:
            first = await blocks.__anext__()
        listeners_after = len(rec.recorder._session.block_listeners)  # type: ignore[union-attr]
        await rec.stop_recording()
        return nothing, len(first), listeners_after

    nothing, first_len, listeners = run(main())
    assert nothing == [] and first_len > 0 and listeners == 0
    with pytest.raises(ValueError, match="max_blocks"):
        BlockStream(None, asyncio.new_event_loop(), 0)


def test_a_fault_ends_the_iteration_and_reports_stopped_with_the_error(tmp_path: Path) -> None:
    events = Recorded()

    async def main() -> tuple[int, AsyncAudioRecorder]:
        rec = AsyncAudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=events,
                                 backend=TestBackend(tone(440, 5.0, RATE), RATE, fail_after=0.5))
        await rec.start_recording(tmp_path / "fault.wav")
        count = 0
        async for _ in rec.aiter_blocks():
            count += 1
        await rec.wait_for_events()
        return count, rec

    count, rec = run(main())
    assert count > 0
    assert events.states == ["recording", "stopped"]
    assert events.events[-1].error is rec.last_error is not None
    assert sf.info(tmp_path / "fault.wav").frames == pytest.approx(0.5 * RATE, abs=RATE * 0.05)


@pytest.mark.pulse
def test_real_microphone_slow_consumer(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(1000.0, seconds=8, amplitude=0.5)
    path = tmp_path / "mic.flac"

    async def consume(stream: BlockStream, seen: list[np.ndarray]) -> None:
        async for block in stream:
            seen.append(block)
            await asyncio.sleep(0.3)  # much slower than the 50 ms blocks arrive

    async def main() -> tuple[BlockStream, list[np.ndarray]]:
        rec = AsyncAudioRecorder(audio_encoder="flac", sample_rate=48000, channels_num=1)
        await rec.start_recording(path, duration=2.0)
        stream = rec.aiter_blocks(max_blocks=2)
        seen: list[np.ndarray] = []
        await consume(stream, seen)  # ends when the 2 s take ends by itself
        await rec.wait_for_events()
        assert not rec.is_recording()
        return stream, seen

    stream, seen = run(main())
    data, rate = sf.read(path, dtype="int16")
    assert rate == 48000 and len(data) == 2 * 48000  # the file is whole
    assert dominant_frequency(data[4800:], 48000) == pytest.approx(1000, abs=3)
    assert peak_dbfs(data[4800:]) == pytest.approx(-6.0, abs=0.5)
    assert stream.dropped > 0 and len(seen) >= 1
    assert dominant_frequency(np.concatenate(seen[-3:]), 48000) == pytest.approx(1000, abs=20)


def test_settings_are_the_core_recorders() -> None:
    rec = AsyncAudioRecorder(audio_encoder="flac", sample_rate=16000, channels_num=1, mix_system_audio=True,
                             backend=TestBackend(tone(440, 1.0, RATE), RATE))
    core = rec.recorder
    assert (core.audio_encoder, core.sample_rate, core.channels_num, core.mix_system_audio) == ("flac", 16000, 1, True)
    rec.bit_rate = 64000
    rec.device = "test"
    assert (core.bit_rate, core.device) == (64000, "test")
    assert rec.state is AudioRecorderState.STOPPED and rec.duration_ms == 0 and rec.overflows == 0
    assert run(rec.get_input_devices()) == {"test": "Test signal test"}
    assert run(rec.has_permission()) is True
    assert run(rec.is_supported_encoder("wav")) is True
    with pytest.raises(TypeError):
        AsyncAudioRecorder(no_such_setting=1)


def test_the_constructor_takes_every_parameter_of_audio_recorders() -> None:
    """Same names, order, kinds, defaults and annotations: a keyword added to one is missed by the other."""
    import inspect

    from micrec import AudioRecorder
    from micrec.aio import AsyncAudioRecorder

    def parameters(cls: type) -> list[tuple[str, object, object, object]]:
        return [(p.name, p.kind, p.default, p.annotation)
                for p in inspect.signature(cls.__init__).parameters.values()]

    assert parameters(AsyncAudioRecorder) == parameters(AudioRecorder)
