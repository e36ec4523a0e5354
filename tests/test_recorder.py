"""The AudioRecorder state machine, events and errors, on the deterministic test backend.

These are unit tests of the front end and pipeline; every feature here is also tested against
the real sound server in test_pulse.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import micrec
from micrec import (
    AudioEncoder,
    AudioRecorder,
    AudioRecorderState,
    AudioRecorderStateChangeEvent,
    InvalidConfigError,
    MicrecError,
    StateError,
)
from micrec.backends import TestBackend

from audio import dominant_frequency, match_feed, noise, tone

RATE = 48000


def fast_backend(signal: np.ndarray, **kw: object) -> TestBackend:
    return TestBackend(signal, RATE, realtime=False, after_end="stop", **kw)  # type: ignore[arg-type]


def record_all(rec: AudioRecorder, path: Path) -> str:
    rec.start_recording(path)
    assert isinstance(rec.backend, TestBackend)
    assert rec.backend.wait_done(30)
    result = rec.stop_recording()
    assert result is not None
    return result


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[AudioRecorderStateChangeEvent, str]] = []

    def __call__(self, e: AudioRecorderStateChangeEvent) -> None:
        self.items.append((e, threading.current_thread().name))

    @property
    def states(self) -> list[str]:
        return [e.data for e, _ in self.items]


@pytest.mark.parametrize("encoder,suffix", [("wav", ".wav"), ("flac", ".flac"), ("pcm16bits", ".pcm")])
def test_lossless_encoders_store_the_samples_bit_exact(tmp_path: Path, encoder: str, suffix: str) -> None:
    signal = np.stack([noise(2.0, RATE, seed=3), noise(2.0, RATE, seed=4)], axis=1)
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=RATE, channels_num=2,
                        backend=fast_backend(signal, block_frames=960))
    path = record_all(rec, tmp_path / f"take{suffix}")
    if encoder == "pcm16bits":
        data = np.fromfile(path, dtype="<i2").reshape(-1, 2)
    else:
        data, rate = sf.read(path, dtype="int16", always_2d=True)
        assert rate == RATE
    assert np.array_equal(data, signal)


def test_events_in_order_on_a_micrec_thread(tmp_path: Path) -> None:
    events = Events()
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=events,
                        backend=TestBackend(tone(440, 5, RATE), RATE))
    path = tmp_path / "events.wav"
    rec.start_recording(path)
    rec.pause_recording()
    rec.pause_recording()  # no second PAUSED event
    rec.resume_recording()
    rec.pause()
    rec.resume()
    assert rec.stop_recording() == str(path)
    assert rec.wait_for_events(5)
    assert events.states == ["recording", "paused", "recording", "paused", "recording", "stopped"]
    for e, thread in events.items:
        assert thread == "micrec-events"
        assert e.name == "state_changed"
        assert e.state is AudioRecorderState(e.data)
        assert e.path == str(path)
        assert e.error is None


def test_a_handler_that_raises_does_not_break_the_take(tmp_path: Path) -> None:
    calls: list[str] = []

    def bad_handler(e: AudioRecorderStateChangeEvent) -> None:
        calls.append(e.data)
        raise RuntimeError("handler bug")

    rec = AudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=bad_handler,
                        backend=fast_backend(tone(440, 1, RATE)))
    path = record_all(rec, tmp_path / "h.wav")
    rec.wait_for_events(5)
    assert calls == ["recording", "stopped"]
    assert sf.info(path).frames >= RATE


def test_pause_removes_the_paused_span(tmp_path: Path) -> None:
    # Noise makes every sample's position recognisable: the file must jump over the pause.
    feed = noise(4.0, RATE, seed=17)
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, backend=TestBackend(feed, RATE, after_end="stop"))
    rec.start_recording(tmp_path / "p.wav")
    _wait_for(lambda: rec.duration_ms >= 500)
    # The pause lasts from the pause() call to the resume() call: at least from its return to the
    # resume's start, at most from the pause's start to the resume's return (wall clock).
    before_pause = time.monotonic()
    rec.pause()
    paused = time.monotonic()
    time.sleep(0.5)
    resumed = time.monotonic()
    rec.resume()
    after_resume = time.monotonic()
    assert isinstance(rec.backend, TestBackend)
    rec.backend.wait_done(10)
    rec.stop_recording()
    data, _ = sf.read(tmp_path / "p.wav", dtype="int16")
    match = match_feed(data, feed)
    assert match.bad_samples == 0 and match.gap_samples == 0 and match.runs[0][1] == 0
    jumps = match.jumps()
    assert len(jumps) == 1, match.runs  # one cut: nothing written while paused, nothing twice
    assert match.runs[-1][1] + match.runs[-1][2] == len(feed)  # and on to the end
    block = RATE // 10  # the test backend's blocks: the cut is by capture time, within one
    assert (resumed - paused) * RATE - block <= jumps[0] <= (after_resume - before_pause) * RATE + block, jumps


def test_seek_cuts_the_take_sample_exact(tmp_path: Path) -> None:
    ramp = (np.arange(RATE * 3) % 30000).astype(np.int16)
    for encoder, suffix in (("wav", ".wav"), ("flac", ".flac"), ("pcm16bits", ".pcm")):
        rec = AudioRecorder(audio_encoder=encoder, sample_rate=RATE, channels_num=1,
                            backend=TestBackend(ramp, RATE, after_end="stop"))
        path = tmp_path / f"seek{suffix}"
        rec.start_recording(path)
        _wait_for(lambda rec=rec: rec.duration_ms >= 1000)
        rec.pause()
        _wait_for_frames_stable(rec)
        rec.seek(250)
        assert rec.duration_ms == 250
        rec.resume()
        _wait_for(lambda rec=rec: rec.duration_ms >= 600)
        rec.stop_recording()
        if encoder == "pcm16bits":
            data = np.fromfile(path, dtype="<i2")
        else:
            data, _ = sf.read(path, dtype="int16")
        cut = RATE // 4
        assert np.array_equal(data[:cut], ramp[:cut])
        assert data[cut] != ramp[cut]  # what follows the cut is new audio, not the old take


def test_seek_needs_a_pause_and_a_position_in_the_take(tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, backend=TestBackend(tone(440, 5, RATE), RATE))
    with pytest.raises(StateError):
        rec.seek(0)
    rec.start_recording(tmp_path / "s.wav")
    with pytest.raises(StateError, match="paused"):
        rec.seek(0)
    rec.pause()
    with pytest.raises(InvalidConfigError, match="-5") as info:
        rec.seek(-5)
    assert info.value.value == -5
    with pytest.raises(InvalidConfigError):
        rec.seek(60_000)
    rec.stop_recording()


def test_seek_on_a_take_that_reached_its_duration_while_paused_is_a_state_error(tmp_path: Path) -> None:
    # Blocks queued before a pause are still written after it, so a take can end by its
    # duration while the caller still holds it paused; seek() then says that it ended.
    release = threading.Event()

    def hold_the_event_thread(event: AudioRecorderStateChangeEvent) -> None:
        if event.state == AudioRecorderState.PAUSED:
            release.wait(20)  # the recorder learns of the end only on this thread

    rec = AudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=hold_the_event_thread,
                        backend=TestBackend(tone(440, 5, RATE), RATE))
    rec.start_recording(tmp_path / "d.wav", duration=0.3)
    rec.pause()
    rec.resume()
    session = rec._session
    assert session is not None
    _wait_for(lambda: session.ended)
    rec.pause()
    try:
        with pytest.raises(StateError, match="reached its configured end"):
            rec.seek(100)
    finally:
        release.set()
    rec.stop_recording()
    assert sf.info(str(tmp_path / "d.wav")).frames == round(0.3 * RATE)


def test_cancel_deletes_the_file(tmp_path: Path) -> None:
    events = Events()
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=events,
                        backend=TestBackend(tone(440, 5, RATE), RATE))
    path = tmp_path / "c.wav"
    rec.start_recording(path)
    _wait_for(lambda: rec.duration_ms > 100)
    rec.cancel_recording()
    assert not path.exists()
    assert not rec.is_recording()
    rec.wait_for_events(5)
    assert events.states == ["recording", "stopped"]


def test_stop_without_a_session_returns_none() -> None:
    rec = AudioRecorder(backend=TestBackend(tone(440, 1, RATE), RATE))
    assert rec.stop_recording() is None
    rec.cancel_recording()
    rec.pause_recording()
    rec.resume_recording()
    assert not rec.is_recording() and not rec.is_paused()


def test_state_queries_and_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "cm.flac"
    with AudioRecorder(audio_encoder=AudioEncoder.FLAC, sample_rate=RATE, channels_num=1,
                       backend=TestBackend(tone(440, 5, RATE), RATE)) as rec:
        assert rec.start_recording(path) is True
        assert rec.is_recording() and not rec.is_paused()
        rec.pause()
        assert rec.is_recording() and rec.is_paused()
        rec.resume()
        _wait_for(lambda: rec.duration_ms > 200)
    assert not rec.is_recording()
    info = sf.info(path)
    assert info.format == "FLAC" and info.frames > 0


def test_amplitude_reads_the_peak_in_dbfs(tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, backend=TestBackend(tone(440, 5, RATE), RATE))
    assert rec.get_amplitude() == micrec.Amplitude(-160.0, -160.0)
    rec.start_recording(tmp_path / "a.wav")
    _wait_for(lambda: rec.get_amplitude().current > -100)
    amp = rec.get_amplitude()
    assert amp.current == pytest.approx(-6.0, abs=0.1)
    assert amp.max == pytest.approx(-6.0, abs=0.1)
    rec.pause()
    assert rec.get_amplitude().current == -160.0
    rec.stop_recording()
    assert rec.get_amplitude() == micrec.Amplitude(-160.0, -160.0)


def test_resampling_and_remixing_when_the_device_differs(tmp_path: Path) -> None:
    # The test backend always runs at its own rate and channel count: the pipeline converts.
    rec = AudioRecorder(sample_rate=16000, channels_num=2, backend=fast_backend(tone(1000, 2, RATE)))
    path = record_all(rec, tmp_path / "r.wav")
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    assert rate == 16000 and data.shape[1] == 2
    assert abs(len(data) / rate - 2.0) < 0.05
    assert dominant_frequency(data[:, 0], rate) == pytest.approx(1000, abs=5)
    assert np.array_equal(data[:, 0], data[:, 1])


def test_a_device_fault_finalizes_the_file_and_reports_it(tmp_path: Path) -> None:
    events = Events()
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=events,
                        backend=TestBackend(tone(440, 5, RATE), RATE, realtime=False, fail_after=1.0))
    path = tmp_path / "f.wav"
    rec.start_recording(path)
    _wait_for(lambda: not rec.is_recording())
    rec.wait_for_events(5)
    assert events.states == ["recording", "stopped"]
    error = events.items[-1][0].error
    assert isinstance(error, micrec.DeviceLostError) and isinstance(error, OSError)
    assert isinstance(rec.last_error, micrec.DeviceLostError)
    data, _ = sf.read(path, dtype="int16")
    assert len(data) == RATE  # everything captured before the fault, and the header says so
    assert rec.stop_recording() is None


def test_disk_full_ends_the_take_with_an_output_error(tmp_path: Path) -> None:
    events = Events()
    rec = AudioRecorder(audio_encoder="pcm16bits", sample_rate=RATE, channels_num=1, on_state_changed=events,
                        backend=TestBackend(tone(440, 5, RATE), RATE))
    rec.start_recording("/dev/full")  # every write fails with ENOSPC
    _wait_for(lambda: not rec.is_recording())
    rec.wait_for_events(5)
    error = events.items[-1][0].error
    assert isinstance(error, micrec.OutputError) and isinstance(error, OSError)
    assert "No space" in str(error)


@pytest.mark.parametrize("rate", [RATE, 44100])  # 44100: resampled, with a tail held at stop
def test_on_audio_sees_what_the_file_holds(tmp_path: Path, rate: int) -> None:
    signal = noise(1.0, RATE, seed=9)
    got: list[np.ndarray] = []
    rec = AudioRecorder(sample_rate=rate, channels_num=1, on_audio=lambda b: got.append(b.copy()),
                        backend=fast_backend(signal))
    path = record_all(rec, tmp_path / "st.wav")
    data, _ = sf.read(path, dtype="int16", always_2d=True)
    assert np.array_equal(np.concatenate(got), data)


def test_start_while_recording_raises(tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, backend=TestBackend(tone(440, 5, RATE), RATE))
    rec.start_recording(tmp_path / "one.wav")
    with pytest.raises(StateError, match="already open") as info:
        rec.start_recording(tmp_path / "two.wav")
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / "two.wav").exists()
    rec.stop_recording()


BAD_SETTINGS = [
    ({"audio_encoder": "mp3"}, "audio_encoder", "'mp3'"),
    ({"channels_num": 3}, "channels_num", "3"),
    ({"channels_num": 0}, "channels_num", "0"),
    ({"sample_rate": 4000}, "sample_rate", "4000"),
    ({"sample_rate": 200000}, "sample_rate", "200000"),
    ({"sample_rate": "fast"}, "sample_rate", "'fast'"),
    ({"bit_rate": -1}, "bit_rate", "-1"),
]


@pytest.mark.parametrize("settings,name,shown", BAD_SETTINGS)
def test_bad_settings_raise_naming_the_value(tmp_path: Path, settings: dict, name: str, shown: str) -> None:
    rec = AudioRecorder(backend=TestBackend(tone(440, 1, RATE), RATE), **settings)
    path = tmp_path / "bad.wav"
    with pytest.raises(InvalidConfigError) as info:
        rec.start_recording(path)
    assert isinstance(info.value, ValueError)
    assert info.value.name == name and shown in str(info.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    assert not rec.is_recording()


def test_bad_paths_raise_output_errors(tmp_path: Path) -> None:
    rec = AudioRecorder(backend=TestBackend(tone(440, 1, RATE), RATE))
    with pytest.raises(micrec.OutputError, match="does not exist") as info:
        rec.start_recording(tmp_path / "missing" / "x.wav")
    assert isinstance(info.value, OSError) and "missing" in str(info.value)
    with pytest.raises(micrec.OutputError, match="directory"):
        rec.start_recording(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(micrec.OutputError, match="not a directory"):
        rec.start_recording(blocker / "x.wav")
    with pytest.raises(InvalidConfigError, match=r"\.mp3"):
        rec.start_recording(tmp_path / "x.mp3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_unknown_device_raises_and_leaves_no_file(tmp_path: Path) -> None:
    rec = AudioRecorder(device="nope", backend=TestBackend(tone(440, 1, RATE), RATE))
    with pytest.raises(micrec.DeviceNotFoundError, match="'nope'") as info:
        rec.start_recording(tmp_path / "x.wav")
    assert isinstance(info.value, OSError) and info.value.value == "nope"
    assert list(tmp_path.iterdir()) == []


def test_unimplemented_encoders_are_reported_truthfully(tmp_path: Path) -> None:
    from micrec import encoders

    rec = AudioRecorder(backend=TestBackend(tone(440, 1, RATE), RATE))
    for codec in AudioEncoder:
        reason = encoders.unavailable_reason(codec)
        assert rec.is_supported_encoder(codec) is (reason is None)
        assert rec.is_supported_encoder(codec.value) is (reason is None)
        if reason is not None:
            rec.audio_encoder = codec
            with pytest.raises(micrec.EncoderUnavailableError, match=codec.value):
                rec.start_recording(tmp_path / "x")
    assert rec.is_supported_encoder("wav") and rec.is_supported_encoder(AudioEncoder.FLAC)
    assert not rec.is_supported_encoder("mp3")
    assert list(tmp_path.iterdir()) == []


def test_settings_are_attributes_applied_at_next_start(tmp_path: Path) -> None:
    rec = AudioRecorder(backend=TestBackend(tone(440, 5, RATE), RATE))
    assert (rec.audio_encoder, rec.sample_rate, rec.channels_num, rec.bit_rate) == (AudioEncoder.WAV, 44100, 2, 128000)
    assert (rec.auto_gain, rec.suppress_noise, rec.cancel_echo, rec.device) == (False, False, False, None)
    rec.sample_rate, rec.channels_num = 22050, 1
    rec.start_recording(tmp_path / "a.wav")
    rec.sample_rate = 8000  # no effect on the open session
    _wait_for(lambda: rec.duration_ms > 100)
    rec.stop_recording()
    info = sf.info(tmp_path / "a.wav")
    assert (info.samplerate, info.channels) == (22050, 1)


def test_methods_are_safe_from_many_threads(tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, backend=TestBackend(tone(440, 30, RATE), RATE))
    rec.start_recording(tmp_path / "t.wav")
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(100):
                rec.pause()
                rec.get_amplitude()
                rec.is_paused()
                rec.resume()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert rec.stop_recording() is not None
    assert rec.stop_recording() is None
    sf.info(tmp_path / "t.wav")


def test_overflows_are_counted() -> None:
    from micrec.session import CaptureQueue

    sink = CaptureQueue(max_blocks=2)
    block = np.zeros((10, 1), dtype=np.int16)
    for _ in range(5):
        sink.push(block)
    assert sink.overflows == 3 and sink.dropped_frames == 30


def test_the_capture_queue_wakes_its_worker_for_every_hand_over() -> None:
    """A push wakes a waiting worker; a quiet push does not, until its doorbell is rung (as the C loop does)."""
    import os
    import select
    import sys
    import threading

    from micrec.session import CaptureQueue

    sink = CaptureQueue(max_blocks=8)
    block = np.arange(20, dtype=np.int16).reshape(10, 2)
    assert sink.get(timeout=0.01) is None  # nothing yet: the timeout ends the wait
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(sink.get(timeout=30)))
    worker.start()
    sink.push(block, capture_time=1.0)
    worker.join(30)
    assert len(got) == 1 and got[0][1] == 1.0 and np.array_equal(got[0][0], block)  # type: ignore[index]
    sink.push_quietly(block, 2.0)
    sink.put_command("command")
    assert sink.get(timeout=0)[1] == 2.0 and sink.get(timeout=0) == "command"  # in order
    # Those two were taken without a wait: the command's ring is still there. A wait uses it up and
    # finds nothing (a spurious wake-up, the worst a stale ring does).
    assert sink.get(timeout=0.05) is None
    if sink.doorbell_fd >= 0:  # Linux: an eventfd that code without the GIL rings
        def rung() -> bool:
            poller = select.poll()
            poller.register(sink.doorbell_fd, select.POLLIN)
            return bool(poller.poll(0))

        assert not rung()
        sink.push_quietly(block, 3.0)
        assert not rung()  # a quiet push leaves the worker asleep
        os.write(sink.doorbell_fd, (1).to_bytes(8, sys.byteorder))  # as micrec_wait does
        assert rung()
        assert sink.get(timeout=30)[1] == 3.0
        assert sink.get(timeout=0.05) is None and not rung()  # (the block was there: that ring is used up now)
        sink.push(block, capture_time=4.0)
        assert rung() and sink.get(timeout=30)[1] == 4.0  # a push rings


def test_import_loads_no_audio_library() -> None:
    import subprocess
    import sys

    code = ("import sys, micrec; bad = [m for m in ('numpy', 'soundfile', 'sounddevice', 'pulsectl', "
            "'micrec.backends._libpulse', 'av', 'soxr') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_errors_subclass_builtins() -> None:
    assert issubclass(micrec.InvalidConfigError, ValueError)
    assert issubclass(micrec.OutputError, OSError)
    assert issubclass(micrec.DeviceNotFoundError, ValueError)
    assert issubclass(micrec.StateError, RuntimeError)
    for name in micrec.errors.__all__:
        assert issubclass(getattr(micrec, name), MicrecError)


def _wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def _wait_for_frames_stable(rec: AudioRecorder) -> None:
    """After pause(), blocks already queued are still written: wait until that is done."""
    last = -1.0
    while rec.duration_ms != last:
        last = rec.duration_ms
        time.sleep(0.1)


def test_duration_ends_the_take_by_itself_exactly(tmp_path: Path) -> None:
    events = Events()
    signal = noise(3.0, RATE, seed=21)
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, on_state_changed=events,
                        backend=TestBackend(signal, RATE, realtime=False, block_frames=1000))
    path = tmp_path / "d.wav"
    rec.start_recording(path, duration=1.25)
    _wait_for(lambda: not rec.is_recording())
    rec.wait_for_events(5)
    assert events.states == ["recording", "stopped"]
    assert events.items[-1][0].error is None and rec.last_error is None
    data, _ = sf.read(path, dtype="int16")
    assert np.array_equal(data, signal[:60000])  # 1.25 s to the sample, mid-block
    assert rec.stop_recording() is None
    with pytest.raises(InvalidConfigError, match="duration=-1"):
        rec.start_recording(path, duration=-1)
