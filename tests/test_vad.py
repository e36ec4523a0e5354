"""until_silence and wait_for_voice, judged on the audio: espeak-ng speech with known pauses.

The feed's phrases are where espeak-ng put them, so the feed says where the first and the last
word are. On the real server the file is found in the feed by cross-correlation; then its start
(wait_for_voice) and its end (until_silence) are compared with the words.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from micrec import AudioRecorder, AudioRecorderStateChangeEvent, InvalidConfigError
from micrec.backends import TestBackend
from micrec.dsp.vad import VoiceGate
from micrec.vmic import VirtualMicrophone
from test_segments import wait_until, wait_until_stable

from audio import find_offset

RATE = 48000
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@dataclass
class Speech:
    samples: np.ndarray  # int16, mono, RATE
    words: list[tuple[int, int]]  # each phrase's (start, end) sample

    @property
    def first_word(self) -> int:
        return self.words[0][0]

    @property
    def last_word(self) -> int:
        return self.words[-1][1]


@cache
def _phrase(text: str) -> np.ndarray:
    out = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text], capture_output=True,
                         timeout=30, check=True).stdout
    import io

    data, rate = sf.read(io.BytesIO(out), dtype="float64")
    data = soxr.resample(data, rate, RATE)
    loud = np.flatnonzero(np.abs(data) > 10 ** (-50 / 20))
    return data[loud[0]:loud[-1] + 1]


def speech(lead: float, pauses: list[float], tail: float, snr_db: float | None = None, seed: int = 3) -> Speech:
    """Phrases separated by ``pauses`` (seconds), after ``lead`` and before ``tail`` of silence."""
    texts = ["Please record this message", "Seven blue boxes wait by the door", "Turn left at the light",
             "We meet again on Thursday"]
    parts, words, pos = [np.zeros(int(lead * RATE))], [], int(lead * RATE)
    for k, gap in enumerate([*pauses, tail]):
        voice = _phrase(texts[k % len(texts)])
        words.append((pos, pos + len(voice)))
        parts += [voice, np.zeros(int(gap * RATE))]
        pos += len(voice) + int(gap * RATE)
    x = np.concatenate(parts)
    level = np.sqrt(np.mean(np.concatenate([x[a:b] for a, b in words]) ** 2))
    if snr_db is not None:
        rng = np.random.default_rng(seed)
        spectrum = np.fft.rfft(rng.standard_normal(len(x)))
        spectrum[1:] /= np.sqrt(np.fft.rfftfreq(len(x), 1 / RATE)[1:])
        spectrum[0] = 0
        pink = np.fft.irfft(spectrum, len(x))
        x = x + pink / np.sqrt(np.mean(pink**2)) * level * 10 ** (-snr_db / 20)
    x = x * (0.35 / np.max(np.abs(x)))  # peak about -9 dBFS
    return Speech(np.round(x * 32767).astype(np.int16), words)


class Events:
    def __init__(self) -> None:
        self.items: list[AudioRecorderStateChangeEvent] = []
        self.stopped = threading.Event()

    def __call__(self, e: AudioRecorderStateChangeEvent) -> None:
        self.items.append(e)
        if e.data == "stopped":
            self.stopped.set()

    @property
    def states(self) -> list[str]:
        return [e.data for e in self.items]


def offline(signal: np.ndarray, **kw: object) -> TestBackend:
    return TestBackend(signal, RATE, realtime=False, after_end="stop", block_frames=1024, **kw)  # type: ignore[arg-type]


# -- the gate on its own ---------------------------------------------------------------------
def test_the_gate_ends_exactly_the_limit_after_the_last_voice_frame() -> None:
    feed = speech(0.3, [0.6, 0.9], 3.0)
    gate = VoiceGate(RATE, 1, until_silence=1.2)
    out = []
    for i in range(0, len(feed.samples), 777):  # odd block size: the cut falls mid-block
        out.append(gate.process(feed.samples[i:i + 777].reshape(-1, 1)))
        if gate.ended:
            break
    written = np.concatenate(out)[:, 0]
    assert gate.ended and gate.last_voice_end is not None
    assert len(written) == gate.last_voice_end + round(1.2 * RATE)  # to the sample
    assert np.array_equal(written, feed.samples[:len(written)])  # nothing altered, nothing skipped
    assert -0.1 < (gate.last_voice_end - feed.last_word) / RATE < 0.3


# -- the recorder, on the test backend -------------------------------------------------------
@pytest.mark.parametrize("snr_db", [None, 10.0])
def test_until_silence_ends_the_take_after_the_last_word_not_in_a_pause(tmp_path: Path,
                                                                         snr_db: float | None) -> None:
    limit = 1.5
    feed = speech(0.5, [0.9, 1.2, 0.6], 4.0, snr_db)  # every pause shorter than the limit
    events = Events()
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, until_silence=limit, on_state_changed=events,
                        backend=offline(feed.samples))
    rec.start_recording(tmp_path / "u.wav")
    assert events.stopped.wait(60)
    rec.wait_for_events(5)
    assert events.states == ["recording", "stopped"] and events.items[-1].error is None
    assert rec.last_error is None and not rec.is_recording()
    data, _ = sf.read(tmp_path / "u.wav", dtype="int16")
    tail = (len(data) - feed.last_word) / RATE
    assert limit - 0.1 < tail < limit + 0.3  # ended after the last word, within S + 0.3 s
    assert np.array_equal(data, feed.samples[:len(data)])


def test_until_silence_counts_from_the_start_while_no_voice_is_heard(tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, until_silence=0.75,
                        backend=offline(np.zeros(RATE * 5, dtype=np.int16)))
    rec.start_recording(tmp_path / "s.wav")
    wait_until(lambda: not rec.is_recording())
    assert sf.info(tmp_path / "s.wav").frames == 36000  # 0.75 s to the sample
    assert rec.last_error is None


def test_paused_time_does_not_count_as_silence(tmp_path: Path) -> None:
    events = Events()
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, until_silence=1.0, on_state_changed=events,
                        backend=TestBackend(np.zeros(RATE * 20, dtype=np.int16), RATE))
    rec.start_recording(tmp_path / "p.wav")
    rec.pause()
    time.sleep(1.5)  # longer than the limit, but paused: the take must still be open
    assert rec.is_paused() and rec.is_recording()
    rec.resume()
    assert events.stopped.wait(30)
    assert sf.info(tmp_path / "p.wav").frames == RATE  # one second of audio, paused time left out
    assert events.states == ["recording", "paused", "recording", "stopped"]


def test_wait_for_voice_starts_the_file_300_ms_before_the_first_word(tmp_path: Path) -> None:
    feed = speech(2.0, [0.5], 1.0, snr_db=20.0)
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, wait_for_voice=True,
                        backend=offline(feed.samples))
    rec.start_recording(tmp_path / "w.wav")
    assert rec.is_recording() and rec.state == "recording"
    assert isinstance(rec.backend, TestBackend)
    rec.backend.wait_done(30)
    wait_until_stable(rec)
    rec.stop_recording()
    data, _ = sf.read(tmp_path / "w.wav", dtype="int16")
    start = find_offset(feed.samples, data[:RATE])
    lead = (feed.first_word - start) / RATE
    assert 0.2 <= lead <= 0.4  # the first word whole, with ~300 ms before it
    rest = feed.samples[start:]  # and everything after it (the backend pads its last block)
    assert np.array_equal(data[:len(rest)], rest) and not data[len(rest):].any()


def test_wait_for_voice_with_a_duration_and_the_readings(tmp_path: Path) -> None:
    feed = speech(1.5, [], 2.0)
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, wait_for_voice=True, until_silence=5.0,
                        backend=TestBackend(feed.samples, RATE, after_end="stop"))
    assert rec.seconds_since_voice is None and not rec.waiting_for_voice
    rec.start_recording(tmp_path / "d.wav", duration=0.8)
    assert rec.waiting_for_voice and rec.seconds_since_voice is None
    wait_until(lambda: not rec.is_recording())
    data, _ = sf.read(tmp_path / "d.wav", dtype="int16")
    assert len(data) == round(0.8 * RATE)  # duration counts what is written, from the pre-roll on
    assert 0.2 <= (feed.first_word - find_offset(feed.samples, data)) / RATE <= 0.4


def test_seconds_since_voice_grows_after_the_last_word(tmp_path: Path) -> None:
    feed = speech(0.3, [], 30.0)
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, until_silence=20.0,
                        backend=TestBackend(feed.samples, RATE))
    rec.start_recording(tmp_path / "r.wav")
    wait_until(lambda: rec.duration_ms > (feed.last_word / RATE + 1.5) * 1000)
    since = rec.seconds_since_voice
    assert since is not None
    heard = rec.duration_ms / 1000 - since  # where the last voice was, in the take
    assert -0.1 < heard - feed.last_word / RATE < 0.3
    rec.stop_recording()


@pytest.mark.parametrize("value", [0, -2, "1", True])
def test_bad_until_silence_raises_naming_it(tmp_path: Path, value: object) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, until_silence=value,  # type: ignore[arg-type]
                        backend=offline(np.zeros(RATE, dtype=np.int16)))
    with pytest.raises(InvalidConfigError, match="until_silence") as info:
        rec.start_recording(tmp_path / "x.wav")
    assert info.value.name == "until_silence"
    assert list(tmp_path.iterdir()) == []


# -- the real sound server -------------------------------------------------------------------
def _take_in_feed(path: Path, feed: Speech) -> tuple[np.ndarray, int]:
    from audio import ffmpeg_decode

    data = ffmpeg_decode(path)[:, 0]
    offset = find_offset(feed.samples, data[: min(len(data), 2 * RATE)])
    same = feed.samples[offset:offset + len(data)].astype(np.float64)
    assert np.corrcoef(same, data[:len(same)].astype(np.float64))[0, 1] > 0.95  # found where it is
    return data, offset


# The recorder is started first and the feed played after it: on a busy machine a feed played
# first may be well into its first phrase before the take opens. So these takes also wait for the
# voice (the silence before the first word then does not count; that is tested offline above).
@pytest.mark.pulse
@pytest.mark.parametrize("snr_db", [None, 10.0])
def test_until_silence_on_the_real_stack(vmic: VirtualMicrophone, tmp_path: Path, snr_db: float | None) -> None:
    limit = 1.5
    feed = speech(1.0, [1.0, 0.7, 1.2], 5.0, snr_db, seed=8)  # every pause shorter than the limit
    events = Events()
    rec = AudioRecorder(audio_encoder="flac", sample_rate=RATE, channels_num=1, device="vmic_a",
                        until_silence=limit, wait_for_voice=True, on_state_changed=events)
    rec.start_recording(tmp_path / "real.flac")
    vmic.play_samples(feed.samples, RATE, mic="vmic_a")
    assert events.stopped.wait(60)
    rec.wait_for_events(5)
    assert events.states == ["recording", "stopped"] and events.items[-1].error is None
    data, offset = _take_in_feed(tmp_path / "real.flac", feed)
    assert 0.2 <= (feed.first_word - offset) / RATE <= 0.45  # the first word whole
    tail = (offset + len(data) - feed.last_word) / RATE
    assert limit - 0.1 < tail < limit + 0.3  # after the last word (not in a pause), within S + 0.3 s


@pytest.mark.pulse
def test_wait_for_voice_on_the_real_stack(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    feed = speech(2.0, [0.8], 6.0, snr_db=20.0, seed=9)
    events = Events()
    rec = AudioRecorder(audio_encoder="wav", sample_rate=RATE, channels_num=1, device="vmic_a",
                        wait_for_voice=True, until_silence=1.0, on_state_changed=events)
    rec.start_recording(tmp_path / "w.wav")
    assert rec.state == "recording" and rec.waiting_for_voice
    vmic.play_samples(feed.samples, RATE, mic="vmic_a")
    levels = []
    deadline = time.monotonic() + 60
    while rec.waiting_for_voice and rec.is_recording() and time.monotonic() < deadline:
        levels.append(rec.get_amplitude().current)
        time.sleep(0.05)
    assert events.stopped.wait(60), "the take never heard the voice (or never stopped after it)"
    assert max(levels) > -60  # the meter shows the noise while nothing is written
    data, offset = _take_in_feed(tmp_path / "w.wav", feed)
    assert 0.2 <= (feed.first_word - offset) / RATE <= 0.45  # the first word whole
    assert 0.9 < (offset + len(data) - feed.last_word) / RATE < 1.3


@pytest.mark.pulse
def test_the_cli_waits_for_voice_shows_it_and_stops_after_the_silence(vmic: VirtualMicrophone,
                                                                      tmp_path: Path) -> None:
    import sys

    feed = speech(1.0, [0.8], 6.0, snr_db=20.0, seed=10)
    out = tmp_path / "cli.wav"
    proc = subprocess.Popen([sys.executable, "-m", "micrec", "record", str(out), "-r", "48000", "-c", "1",
                             "--device", "vmic_a", "--wait-for-voice", "--until-silence", "1.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=vmic.env)
    try:
        assert proc.stderr is not None
        meter = b""
        while b"waiting for voice" not in meter:  # the meter, before the first word
            chunk = proc.stderr.read1(4096)
            assert chunk, f"micrec ended before it waited for voice: {meter.decode(errors='replace')}"
            meter += chunk
        vmic.play_samples(feed.samples, RATE, mic="vmic_a")
        stdout, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    meter += rest
    assert proc.returncode == 0, meter.decode(errors="replace")
    assert f"wrote {out}" in stdout.decode()
    assert b"/1.2 s ago" in meter  # and the time since the last voice, with the limit
    data, offset = _take_in_feed(out, feed)
    assert 0.2 <= (feed.first_word - offset) / RATE <= 0.45
    assert 1.1 < (offset + len(data) - feed.last_word) / RATE < 1.5


def test_the_browser_protocol_stops_when_the_speaker_stops(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("websockets")
    from test_web_helpers import Client, live_server

    from audio import ffmpeg_decode

    feed = speech(0.4, [0.7], 2.5, snr_db=20.0, seed=11)
    with live_server(tmp_path) as server:
        client = Client(server)
        started = client.start(RATE, 1, audio_encoder="wav", sample_rate=RATE, channels_num=1, until_silence=1.0)
        assert started["type"] == "started"
        for i in range(0, len(feed.samples), RATE // 2):  # about real time, as a browser sends
            client.send_audio(feed.samples[i:i + RATE // 2], RATE)
            time.sleep(0.45)
        ended = client.finish()
    assert ended.summary["error"] is None and ended.code == 1000
    assert [m["state"] for m in ended.of_type("state")] == ["recording", "stopped"]
    data = ffmpeg_decode(tmp_path / started["take"])[:, 0]
    assert 0.9 < (len(data) - feed.last_word) / RATE < 1.3  # the browser's audio from its first frame on
    with live_server(tmp_path) as server:
        client = Client(server)
        refused = client.start(RATE, 1, until_silence=-1)
        assert refused["type"] == "error" and "until_silence" in refused["message"]


@pytest.mark.slow
def test_the_page_stops_when_i_stop_talking(tmp_path: Path) -> None:
    """Chromium's fake microphone plays phrases, then silence; the page's checkbox ends the take."""
    pytest.importorskip("playwright.sync_api")
    from test_web_browser import CHROMIUM, HEADLESS_FLAGS, WAIT_MS, wait_for, wait_state
    from test_web_helpers import live_server

    from audio import ffmpeg_decode

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    from playwright.sync_api import sync_playwright

    from micrec.vmic import write_wav

    feed = speech(0.3, [0.5, 0.5], 8.0, seed=12)
    mic = tmp_path / "mic.wav"
    write_wav(mic, feed.samples, RATE)
    args = [*HEADLESS_FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}"]
    takes = tmp_path / "takes"
    takes.mkdir()
    with live_server(takes) as server, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                        headless=True, args=args, timeout=3 * WAIT_MS)
        try:
            page = context.new_page()
            page.goto(server.origin + "/", timeout=WAIT_MS)
            assert "stop when I stop talking" in (page.text_content("label:has(#until-silence)") or "")
            page.check("#until-silence")
            page.click("#record")
            wait_state(page, "recording")
            for _ in range(3):  # the take ends without a click on Stop (patient on a busy machine)
                with contextlib.suppress(AssertionError):
                    wait_for(page, "window.micrecPage.last !== null")
                    break
            summary = page.evaluate("window.micrecPage.last")
            wait_state(page, "stopped")
        finally:
            context.close()
    assert summary["error"] is None
    data = ffmpeg_decode(takes / summary["take"])[:, 0].astype(np.float64)
    envelope = np.array([np.abs(data[i:i + 480]).max() for i in range(0, len(data) - 480, 480)])
    voiced = np.flatnonzero(envelope > 0.05 * envelope.max())
    assert len(voiced) and voiced[0] * 480 / RATE < 1.0  # the phrases are in the take
    tail = (len(data) - (voiced[-1] + 1) * 480) / RATE
    assert 1.8 < tail < 2.4  # and it ended 2 s after the last word (the page's setting)
