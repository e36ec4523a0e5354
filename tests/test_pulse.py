"""The contract end to end on a real sound server: a private PulseAudio with virtual microphones.

Every check decodes the file (ffprobe/ffmpeg where the point is independence from micrec's own
libraries) and judges the audio: codec, rate, channels, duration, frequency, level, samples.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import micrec
from micrec import AudioRecorder
from micrec.vmic import MicSpec, VirtualMicrophone

from audio import (
    PIPEWIRE_START,
    dominant_frequency,
    ffmpeg_decode,
    ffprobe,
    match_feed,
    noise,
    peak_dbfs,
)

pytestmark = pytest.mark.pulse

LOSSLESS = [("wav", ".wav", "pcm_s16le"), ("flac", ".flac", "flac"), ("pcm16bits", ".pcm", "pcm_s16le")]


@pytest.fixture(params=["compiled", "python"])
def capture_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The pulse backend's per-packet loop: the compiled one (csrc/pulseloop.c), or Python's."""
    from micrec.backends import _pulseloop

    if request.param == "python":
        monkeypatch.setattr(_pulseloop, "load", lambda: None)
    elif _pulseloop.load() is None:
        pytest.skip("the compiled capture loop was not built (tests/test_pulseloop.py says why)")
    return str(request.param)


def decode(path: Path, rate: int, channels: int) -> np.ndarray:
    if path.suffix == ".pcm":
        return ffmpeg_decode(path, channels=channels,
                             input_format=["-f", "s16le", "-ar", str(rate), "-ac", str(channels)])
    return ffmpeg_decode(path)


def wait_until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def record_for(rec: AudioRecorder, path: Path, seconds: float) -> tuple[str, float]:
    """Record about ``seconds`` of audio; returns the path and the length micrec reported."""
    rec.start_recording(path)
    wait_until(lambda: rec.duration_ms >= seconds * 1000)
    reported = rec.duration_ms
    result = rec.stop_recording()
    assert result == str(path)
    return result, reported


@pytest.mark.parametrize("encoder,suffix,codec", LOSSLESS)
def test_tone_is_recorded_with_the_configured_format(vmic: VirtualMicrophone, tmp_path: Path,
                                                     encoder: str, suffix: str, codec: str) -> None:
    vmic.play_tone(1000.0, seconds=8, amplitude=0.5)
    rec = AudioRecorder(audio_encoder=encoder)  # defaults: 44100 Hz stereo, default device
    path = tmp_path / f"tone{suffix}"
    rec.start_recording(path, duration=1.5)
    wait_until(lambda: not rec.is_recording())
    if encoder != "pcm16bits":
        probe = ffprobe(path)
        assert (probe.codec, probe.rate, probe.channels) == (codec, 44100, 2)
    data = decode(path, 44100, 2)
    assert len(data) == 1.5 * 44100
    settled = data[4410:]
    assert dominant_frequency(settled, 44100) == pytest.approx(1000, abs=3)
    block_peaks = [peak_dbfs(settled[i:i + 441]) for i in range(0, len(settled) - 441, 441)]
    assert np.median(block_peaks) == pytest.approx(-6.0, abs=0.3)
    assert np.array_equal(data[:, 0], data[:, 1])  # a mono mic read as stereo: both channels


@pytest.mark.parametrize("encoder,suffix,codec", LOSSLESS)
def test_samples_are_bit_exact(vmic: VirtualMicrophone, tmp_path: Path, encoder: str, suffix: str,
                               codec: str, capture_loop: str) -> None:
    feed = noise(4.0, 48000, seed=11)
    vmic.play_samples(feed, 48000, mic="vmic_a")
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=48000, channels_num=1, device="vmic_a")
    path = tmp_path / f"exact{suffix}"
    time.sleep(0.3)
    record_for(rec, path, 1.5)
    data = decode(path, 48000, 1)[:, 0]
    match = match_feed(data, feed)
    assert match.bad_samples == 0  # every sample is the feed's, bit for bit (or the server's silence)
    assert match.matched > 0.8 * len(data) and match.matched > 48000


def test_pause_leaves_out_the_paused_time(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    feed = noise(8.0, 48000, seed=12)
    vmic.play_samples(feed, 48000)
    rec = AudioRecorder(sample_rate=48000, channels_num=1, device="vmic_a")
    path = tmp_path / "pause.wav"
    time.sleep(0.3)
    rec.start_recording(path)
    wait_until(lambda: rec.duration_ms >= 1000)
    before_pause = time.monotonic()
    rec.pause()
    after_pause = time.monotonic()
    assert rec.is_paused()
    time.sleep(1.0)
    before_resume = time.monotonic()
    rec.resume()
    after_resume = time.monotonic()
    resumed_at = rec.duration_ms
    wait_until(lambda: rec.duration_ms >= resumed_at + 1000)
    rec.stop_recording()
    data, _ = sf.read(path, dtype="int16")
    match = match_feed(data, feed)
    assert match.bad_samples == 0
    skipped = max(match.jumps(after=PIPEWIRE_START)) / 48000
    # The pause is cut on the server's capture clock, to within its timing reports' error.
    assert before_resume - after_pause - 0.06 < skipped < after_resume - before_pause + 0.06
    assert all(jump < 480 for jump in sorted(match.jumps(after=PIPEWIRE_START))[:-1]), match.runs  # nothing else


def test_seek_punch_in(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    feed = noise(30.0, 48000, seed=13)  # long enough for three takes on a slow machine
    vmic.play_samples(feed, 48000)
    for encoder, suffix in (("wav", ".wav"), ("flac", ".flac"), ("pcm16bits", ".pcm")):
        rec = AudioRecorder(audio_encoder=encoder, sample_rate=48000, channels_num=1, device="vmic_a")
        path = tmp_path / f"seek{suffix}"
        rec.start_recording(path)
        wait_until(lambda rec=rec: rec.duration_ms >= 1000)
        rec.pause()
        time.sleep(0.1)
        before = decode(path, 48000, 1)[:, 0] if encoder != "flac" else None
        rec.seek(500)
        assert rec.duration_ms == 500
        rec.resume()
        wait_until(lambda rec=rec: rec.duration_ms >= 1000)
        rec.stop_recording()
        data = decode(path, 48000, 1)[:, 0]
        # duration_ms follows the written audio, which lags the capture by a block and the
        # server's fragment (on PipeWire up to ~0.25 s); the stop keeps what was captured up to it.
        assert 0.95 < len(data) / 48000 < 1.4
        if before is not None:
            assert np.array_equal(data[:24000], before[:24000])  # kept up to the cut, bit-exact
            assert not np.array_equal(data[24000:24480], before[24000:24480])  # recorded over


def test_device_selection_between_two_microphones(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(440.0, 6, mic="vmic_a")
    vmic.play_tone(1250.0, 6, mic="vmic_b")
    rec = AudioRecorder(channels_num=1)
    devices = rec.get_input_devices()
    assert devices == {"vmic_a": "Virtual mic A", "vmic_b": "Virtual mic B"}  # no monitors
    listed = micrec.list_input_devices()
    assert [d.id for d in listed if d.is_default] == ["vmic_a"]
    for device, freq in (("vmic_a", 440.0), ("vmic_b", 1250.0), (None, 440.0)):
        rec.device = device
        path = tmp_path / f"{device}.wav"
        record_for(rec, path, 1.0)
        data, rate = sf.read(path, dtype="int16")
        assert dominant_frequency(data[2000:], rate) == pytest.approx(freq, abs=3)


class _BlockSizes:
    """The real Pulse backend, with the length of every block its stream delivers noted down."""

    name = "pulse"

    def __init__(self) -> None:
        from micrec.backends.pulse import PulseBackend

        self._inner = PulseBackend()
        self.sizes: list[int] = []

    def list_devices(self) -> list[micrec.InputDevice]:
        return self._inner.list_devices()

    def can_capture(self, device: str | None) -> bool:
        return self._inner.can_capture(device)

    def open(self, spec: Any, sink: Any) -> Any:
        sizes, inner = self.sizes, sink

        class Noting:
            def push(self, block: Any, *, wait: bool = False, capture_time: float | None = None) -> None:
                sizes.append(len(block))
                inner.push(block, wait=wait, capture_time=capture_time)

            def overflow(self, frames: int = 0) -> None:
                inner.overflow(frames)

            def fail(self, error: BaseException) -> None:
                inner.fail(error)

        return self._inner.open(spec, Noting())


def test_blocks_grow_while_nobody_reads_levels_and_shrink_at_the_first_reading(
        vmic: VirtualMicrophone, tmp_path: Path, capture_loop: str) -> None:
    from micrec._pacing import IDLE_SECONDS, RELAXED_BLOCK_MS

    rate = 48000
    feed = noise(10.0, rate, seed=23)
    vmic.play_samples(feed, rate, mic="vmic_a")
    backend = _BlockSizes()
    rec = AudioRecorder(sample_rate=rate, channels_num=1, device="vmic_a", backend=backend)
    path = tmp_path / "paced.wav"
    time.sleep(0.3)
    rec.start_recording(path)
    relaxed_s = RELAXED_BLOCK_MS / 1000
    wait_until(lambda: rec.duration_ms >= (IDLE_SECONDS + 2.5 * relaxed_s) * 1000)  # nobody reads levels
    relaxed_until = len(backend.sizes)
    levels = []
    while rec.duration_ms < (IDLE_SECONDS + 2.5 * relaxed_s + 1.5) * 1000:
        levels.append(rec.get_amplitude().current)
        time.sleep(0.02)
    rec.stop_recording()

    steady, relaxed = rate // 10, rate * RELAXED_BLOCK_MS // 1000
    sizes = backend.sizes
    assert sizes[0] == rate // 100  # the first block: 10 ms
    assert sizes[:relaxed_until].count(relaxed) >= 2, sizes
    last_relaxed = max(i for i, n in enumerate(sizes) if n == relaxed)
    after = sizes[last_relaxed + 1:-1]  # the last one is the partial block of the stop
    assert len(after) >= 8 and sum(n == steady for n in after) >= len(after) - 1, sizes
    assert max(levels[len(levels) // 2:]) > -30  # the readings follow the microphone
    data = decode(path, rate, 1)[:, 0]
    match = match_feed(data, feed)
    assert match.bad_samples == 0  # no sample lost, repeated or changed where the block changed
    joins = match.jumps(after=PIPEWIRE_START)  # past the start, the audio runs on without a jump
    assert joins == [0] * len(joins), match.runs
    assert match.matched > 0.9 * len(data)


def test_a_stalled_source_has_its_partial_block_delivered(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    """Nobody watches (250 ms blocks); the microphone stalls mid-block: what it sent reaches the file anyway."""
    from micrec._pacing import IDLE_SECONDS, RELAXED_BLOCK_MS

    rate = 48000
    feed = noise(20.0, rate, seed=29)
    vmic.play_samples(feed, rate, mic="vmic_a")
    rec = AudioRecorder(sample_rate=rate, channels_num=1, device="vmic_a")
    path = tmp_path / "stalled.wav"
    time.sleep(0.3)
    rec.start_recording(path)
    wait_until(lambda: rec.duration_ms >= (IDLE_SECONDS + 1.5 * RELAXED_BLOCK_MS / 1000) * 1000)
    written = rec.duration_ms
    wait_until(lambda: rec.duration_ms > written)  # a block was just written: the next is begun
    time.sleep(RELAXED_BLOCK_MS / 2000)
    with vmic.stalled("vmic_a"):
        before = rec.duration_ms
        # The block in progress holds about half a block; it would complete only when the source resumes.
        wait_until(lambda: rec.duration_ms > before, timeout=5.0)
        delivered = rec.duration_ms - before
        # Stopped while stalled: after it, the source resumes where its feed has got to by then (a
        # jump as long as the stall), and the few samples of it a stop right after could keep are
        # too short to be located in the feed.
        rec.stop_recording()
    assert delivered < RELAXED_BLOCK_MS - 30, delivered  # a partial block, not a whole one
    data = decode(path, rate, 1)[:, 0]
    match = match_feed(data, feed)
    assert match.bad_samples == 0  # every sample is the feed's: nothing repeated or changed at the stall


def test_amplitude_and_events_on_a_real_device(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(500.0, 6, amplitude=0.25)
    seen: list[tuple[str, str, BaseException | None]] = []
    rec = AudioRecorder(sample_rate=48000, channels_num=1,  # the mic's own format: no resampling
                        on_state_changed=lambda e: seen.append((e.data, threading.current_thread().name, e.error)))
    rec.start_recording(tmp_path / "amp.wav")
    wait_until(lambda: rec.get_amplitude().current > -30)
    time.sleep(0.2)
    amp = rec.get_amplitude()
    assert amp.current == pytest.approx(-12.0, abs=0.3)
    assert amp.max == pytest.approx(-12.0, abs=0.3)
    rec.pause()
    rec.resume()
    rec.stop_recording()
    rec.wait_for_events(5)
    assert [s for s, _, _ in seen] == ["recording", "paused", "recording", "stopped"]
    assert {t for _, t, _ in seen} == {"micrec-events"}
    assert all(e is None for _, _, e in seen)


def test_permission_and_devices_without_a_server(vmic: VirtualMicrophone, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    assert AudioRecorder().has_permission() is True
    assert AudioRecorder(device="vmic_b").has_permission() is True
    assert AudioRecorder(device="nope").has_permission() is False
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-such-socket")
    rec = AudioRecorder(backend="pulse")
    assert rec.has_permission() is False
    assert rec.get_input_devices() == {}
    with pytest.raises(micrec.DeviceError):
        rec.start_recording(tmp_path / "x.wav")
    assert list(tmp_path.iterdir()) == []


def test_unknown_device_on_the_server(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    rec = AudioRecorder(device="vmic_zzz")
    with pytest.raises(micrec.DeviceNotFoundError, match="vmic_zzz") as info:
        rec.start_recording(tmp_path / "x.wav")
    assert "vmic_a" in str(info.value)  # says what to pick instead
    assert list(tmp_path.iterdir()) == []


def test_a_removed_device_ends_the_take_with_the_file_finalized(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    sink_mod = vmic.pactl("load-module", "module-null-sink", "sink_name=gone_feed", "rate=48000",
                          "channels=1").strip()
    src_mod = vmic.pactl("load-module", "module-remap-source", "master=gone_feed.monitor",
                         "source_name=gone_mic", "channels=1").strip()
    try:
        events: list[micrec.AudioRecorderStateChangeEvent] = []
        rec = AudioRecorder(device="gone_mic", sample_rate=48000, channels_num=1, on_state_changed=events.append)
        path = tmp_path / "gone.flac"
        rec.audio_encoder = "flac"
        rec.start_recording(path)
        wait_until(lambda: rec.duration_ms >= 700)
        vmic.pactl("unload-module", src_mod)
        wait_until(lambda: not rec.is_recording())
        rec.wait_for_events(5)
    finally:
        subprocess.run(["pactl", "unload-module", sink_mod], env=vmic.env, timeout=10, check=False)
    assert [e.data for e in events] == ["recording", "stopped"]
    assert isinstance(events[-1].error, micrec.DeviceLostError)
    info = sf.info(path)  # finalized: libsndfile reads it, header complete
    assert info.frames >= 0.6 * 48000
    assert ffprobe(path).codec == "flac"


def test_a_dying_sound_server_ends_the_take_with_the_file_finalized(pulse_server: VirtualMicrophone,
                                                                    tmp_path: Path) -> None:
    # A server of its own, of the same kind: this one is killed.
    server = VirtualMicrophone(mics=(MicSpec("vmic_k", 48000, 1, "Mic K"),), speaker=False,
                               server=pulse_server.server).start()
    events: list[micrec.AudioRecorderStateChangeEvent] = []
    path = tmp_path / "server.flac"
    try:
        with server.activated():
            server.play_tone(600.0, 10)
            rec = AudioRecorder(audio_encoder="flac", sample_rate=48000, channels_num=1, device="vmic_k",
                                on_state_changed=events.append)
            rec.start_recording(path)
            wait_until(lambda: rec.duration_ms >= 1500)
            kill_server(server)
            wait_until(lambda: not rec.is_recording())
            rec.wait_for_events(5)
    finally:
        server.stop()
    assert [e.data for e in events] == ["recording", "stopped"]
    error = events[-1].error
    assert isinstance(error, micrec.DeviceLostError)
    assert "connection to the sound server was lost" in str(error)
    data = decode(path, 48000, 1)[:, 0]  # finalized: ffmpeg and libsndfile read it whole
    assert sf.info(path).frames == len(data) >= 1.4 * 48000
    assert dominant_frequency(data[4800:], 48000) == pytest.approx(600, abs=3)


def kill_server(server: VirtualMicrophone) -> None:
    """Kill the sound server at once (SIGKILL), as a crash would (PipeWire: all of its processes)."""
    daemon = server._daemon
    assert daemon is not None
    if server.is_pipewire:
        os.killpg(daemon.pid, signal.SIGKILL)  # its own session: dbus, pipewire, wireplumber, pipewire-pulse
    else:
        os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(timeout=10)


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from micrec import AudioRecorder
    rec = AudioRecorder(audio_encoder=sys.argv[2], sample_rate=48000, channels_num=1, device="vmic_a")
    rec.start_recording(sys.argv[1])
    while True:
        time.sleep(0.05)
        print(rec.duration_ms, flush=True)
""")


@pytest.mark.parametrize("encoder,suffix,codec", LOSSLESS)
def test_a_killed_process_leaves_a_readable_file(vmic: VirtualMicrophone, tmp_path: Path, encoder: str,
                                                 suffix: str, codec: str) -> None:
    vmic.play_tone(700.0, 10)
    path = tmp_path / f"killed{suffix}"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path), encoder], env=vmic.env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        recorded, deadline, first_line = 0.0, time.monotonic() + 30, None
        for line in proc.stdout:  # a line every 50 ms while the child lives
            # The wall clock, not the recorder's counter (which steps when a block is written: a kill
            # timed by it would fall just after a flush): the first line came after start_recording().
            first_line = first_line or time.monotonic()
            recorded = float(line)
            if recorded >= 2000 and time.monotonic() >= first_line + 3.0:
                break
            assert time.monotonic() < deadline, f"the recording child got only {recorded:.0f} ms in 30 s"
        killed = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert first_line is not None
    # API.md "Files": readable up to within 0.5 s of the kill, measured from the start's wall clock.
    expected = killed - first_line - 0.5
    data = decode(path, 48000, 1)
    held = len(data) / 48000
    assert held >= expected, f"{held:.3f} s read of {killed - first_line:.3f} s recorded before the kill"
    assert dominant_frequency(data[4800:], 48000) == pytest.approx(700, abs=3)
    if encoder != "pcm16bits":
        assert ffprobe(path).codec == codec
        with sf.SoundFile(path) as f:  # libsndfile too
            assert f.read(dtype="int16").shape[0] / 48000 >= expected


def _eventfds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += "eventfd" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            pass
    return count


def test_takes_let_go_of_their_doorbells_without_the_garbage_collector(vmic: VirtualMicrophone,
                                                                       tmp_path: Path) -> None:
    """Each take's worker sleeps on an eventfd: a reference cycle would keep it open until a collection."""
    import gc

    vmic.play_tone(440.0, 4, mic="vmic_a")
    before = _eventfds()
    gc.disable()
    try:
        for i in range(3):
            rec = AudioRecorder(sample_rate=48000, channels_num=1, device="vmic_a")
            rec.start_recording(tmp_path / f"{i}.wav")
            rec.get_amplitude()  # a watched take, and an unwatched one after it (the pacer)
            time.sleep(0.3)
            rec.stop_recording()
            del rec
        assert _eventfds() == before
    finally:
        gc.enable()
