"""micrec.flet: flet-audio-recorder's API on micrec, driven as a Flet app drives it.

The apps in flet_example_app.py run on a real ``flet`` Session and Page whose client is a
stand-in that records what would be sent to it (msgpack-encoded, as on the wire); buttons are
clicked through ``Session.dispatch_event``, as when the Flet client reports a click. Audio
comes from the private PulseAudio server's virtual microphones and is judged with ffprobe /
ffmpeg (or bit for bit, for PCM16); a few error and fault cases use micrec's TestBackend.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import http.server
import importlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import flet as ft
import msgpack
import numpy as np
import pytest
from flet.controls.base_control import BaseControl
from flet.messaging.connection import Connection
from flet.messaging.protocol import MessageAction, configure_encode_object_for_msgpack
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

import flet_example_app
import micrec.flet as far
from micrec import InvalidConfigError, MicrecError, StateError
from micrec.backends import TestBackend
from micrec.vmic import VirtualMicrophone

from audio import dominant_frequency, ffmpeg_decode, ffprobe, find_offset, noise, tone

ENCODE = configure_encode_object_for_msgpack(BaseControl)
PCM_48K_MONO = far.AudioRecorderConfiguration(encoder=far.AudioEncoder.PCM16BITS, sample_rate=48000,
                                              channels=1, device=far.InputDevice(id="vmic_a", label="A"))


# -- a Flet session whose client records what it is sent -----------------------------------------
class RecordingClient(Connection):
    """A Flet connection that keeps every message, encoded and decoded as on the wire."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.pubsubhub = PubSubHub(loop=loop)
        self.messages: list[Any] = []
        self.threads: set[str] = set()

    def send_message(self, message: Any) -> None:
        self.threads.add(threading.current_thread().name)
        wire = msgpack.packb([message.action, message.body], default=ENCODE)
        self.messages.append(msgpack.unpackb(wire, strict_map_key=False))

    def strings(self, prefix: str) -> list[str]:
        """Every string starting with ``prefix`` that reached the client, in order."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, str) and value.startswith(prefix):
                found.append(value)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(self.messages)
        return found

    def crashed(self) -> bool:
        return any(m[0] == MessageAction.SESSION_CRASHED for m in self.messages)


class App:
    """A running Flet app: its page, its session and the client stand-in."""

    def __init__(self, main: Callable[[ft.Page], Any]) -> None:
        self.client = RecordingClient(asyncio.get_running_loop())
        self.session = Session(self.client)
        self.session.attach_connection(self.client)
        self.page = self.session.page
        msgpack.packb(self.session.get_page_patch(), default=ENCODE)  # the client's first page
        ft.context.reset_auto_update()
        main(self.page)

    def button(self, text: str) -> ft.Button:
        for control in self.page.controls:
            if isinstance(control, ft.Button) and control.content == text:
                return control
        raise AssertionError(f"no button {text!r}")

    async def click(self, text: str) -> None:
        await self.session.dispatch_event(self.button(text)._i, "click", None)
        assert not self.client.crashed(), self.client.messages[-1]


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 120))


def pcm(path: str | Path, rate: int = 48000, channels: int = 1) -> np.ndarray:
    return ffmpeg_decode(path, channels=channels,
                         input_format=["-f", "s16le", "-ar", str(rate), "-ac", str(channels)])


def skipped_seconds(feed: np.ndarray, data: np.ndarray, rate: int = 48000) -> float:
    """How much of ``feed`` a recording of it leaves out; asserts that it holds little else.

    The recording must copy the feed bit for bit, in order, apart from what the sound server
    does when the player feeding the virtual microphone falls behind on a busy machine:
    digital silence, and (rarely) a few milliseconds that match nothing. The feed goes on
    where it stopped after those, so they skip (almost) nothing; they may make up at most a
    tenth of the recording.
    """
    skipped, expected, position, unmatched = 0, None, 0, 0
    while position < len(data):
        if not data[position:position + 16].any():  # silence from the server, not from the feed
            nonzero = np.flatnonzero(data[position:])
            position += int(nonzero[0]) if len(nonzero) else len(data) - position
            continue
        probe = data[position:position + 4800]
        offset = find_offset(feed, probe)
        span = min(len(data) - position, len(feed) - offset)
        mismatch = np.flatnonzero(data[position:position + span] != feed[offset:offset + span])
        length = int(mismatch[0]) if len(mismatch) else span
        if length < min(len(probe), 16):  # a glitch: step over it
            unmatched += min(480, len(data) - position)
            position += 480
            continue
        if expected is not None:
            skipped += offset - expected
        expected = offset + length
        position += length
    assert unmatched < len(data) / 10, f"{unmatched} of {len(data)} samples are not the feed's"
    return skipped / rate


async def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """The test leaves no temporary take of micrec.flet behind."""
    pattern = os.path.join(tempfile.gettempdir(), "micrec-flet-*")
    before = set(glob.glob(pattern))
    yield
    assert set(glob.glob(pattern)) <= before


# -- the apps, clicked ---------------------------------------------------------------------------
@pytest.mark.pulse
def test_official_example_runs_with_only_the_import_changed(vmic: VirtualMicrophone, in_tmp: Path) -> None:
    vmic.play_tone(440.0, 20)

    async def scenario() -> tuple[App, dict[str, float]]:
        app = App(flet_example_app.main)
        marks: dict[str, float] = {}
        await app.click("Get Audio Recording Permission Status")
        await app.click("WAV Encoder Support")
        marks["start"] = time.monotonic()
        await app.click("Start Audio Recorder")
        await asyncio.sleep(1.5)
        await app.click("Pause Recording")
        marks["paused"] = time.monotonic()
        await asyncio.sleep(1.0)
        marks["resume"] = time.monotonic()
        await app.click("Resume Recording")
        await asyncio.sleep(1.0)
        await app.click("Stop Audio Recorder")
        marks["stop"] = time.monotonic()
        await app.click("List Devices")
        return app, marks

    app, marks = run(scenario)
    client = app.client
    # The label went through every state, and each change reached the client, in order.
    assert client.strings("State: ") == ["State: stopped", "State: recording", "State: paused",
                                         "State: recording", "State: stopped"]
    assert client.threads == {"MainThread"}  # handlers ran on the app's loop, not micrec's threads
    assert client.strings("Audio Recording Permission status: ") == ["Audio Recording Permission status: True"]
    assert client.strings("WAV supported: ") == ["WAV supported: True"]
    path = in_tmp / flet_example_app.OUTPUT_PATH
    assert client.strings("Stopped recording. Output Path: ") == [
        f"Stopped recording. Output Path: {flet_example_app.OUTPUT_PATH}"]
    devices = client.strings("Input Devices: ")[-1]
    assert "vmic_a:Virtual mic A" in devices and "vmic_b:Virtual mic B" in devices
    # The file: Flet's default configuration, the tone, and not the paused second.
    probe = ffprobe(path)
    assert (probe.codec, probe.rate, probe.channels) == ("pcm_s16le", 44100, 2)
    recorded = (marks["stop"] - marks["start"]) - (marks["resume"] - marks["paused"])
    assert 1.5 < probe.duration < recorded + 0.2
    data = ffmpeg_decode(path)
    assert dominant_frequency(data[4410:], 44100) == pytest.approx(440, abs=3)


@pytest.mark.pulse
def test_flet_0_27_app_runs_unchanged(vmic: VirtualMicrophone, in_tmp: Path) -> None:
    feed = noise(12.0, 48000, seed=21)
    vmic.play_samples(feed, 48000)

    async def scenario() -> App:
        app = App(flet_example_app.main_0_27)
        await app.click("Start Audio Recorder")
        await asyncio.sleep(1.0)
        await app.click("Pause Recording")
        await asyncio.sleep(0.8)
        await app.click("Resume Recording")
        await asyncio.sleep(1.0)
        await app.click("Stop Audio Recorder")
        await app.click("List Devices")
        await app.click("WAV Encoder Support")
        await app.click("Get Audio Recording Permission Status")
        await asyncio.sleep(0.1)  # the last state change is delivered after the sync handler
        return app

    app = run(scenario)
    assert app.client.strings("State: ") == ["State: stopped", "State: recording", "State: paused",
                                             "State: recording", "State: stopped"]
    # get_input_devices() returned 0.27's {id: label} dict
    assert "'vmic_a': 'Virtual mic A'" in app.client.strings("Input Devices: ")[-1]
    # the client was sent flet-audio-recorder's control type (its Dart service), and no micrec type
    assert [v for v in _dicts(app.client.messages) if v.get("_c") == "AudioRecorder"]
    assert not [v for v in _dicts(app.client.messages) if "Micrec" in str(v.get("_c"))]
    # property-style settings took effect: 48 kHz mono WAV, the microphone's samples bit for bit
    path = in_tmp / flet_example_app.OUTPUT_PATH
    probe = ffprobe(path)
    assert (probe.codec, probe.rate, probe.channels) == ("pcm_s16le", 48000, 1)
    assert 0.5 < skipped_seconds(feed, ffmpeg_decode(path)[:, 0]) < 1.6  # the paused time is left out


def _dicts(value: Any) -> Iterator[dict[Any, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


def test_recorder_is_a_flet_service_of_flet_audio_recorders_type() -> None:
    async def scenario() -> tuple[App, far.AudioRecorder, list[Any]]:
        app = App(lambda page: page.add(ft.Text("hello")))
        start = len(app.client.messages)
        ft.context.page  # noqa: B018 - the app's page is the current one, as in a handler
        rec = far.AudioRecorder(on_state_change=print)  # registers itself, as every Flet 1.0 service
        added = app.client.messages[start:]
        app.page.services.append(rec)  # what Flet's docs say to write: harmless
        app.page.update()
        app.page.add(ft.Text("still fine"))
        return app, rec, added

    app, rec, added = run(scenario)
    assert isinstance(rec, ft.Service) and rec.page is app.page
    sent = [d for d in _dicts(added) if d.get("_c") == "AudioRecorder"]
    assert len(sent) == 1 and sent[0]["on_state_change"] is True and "on_stream" not in sent[0]
    assert app.client.strings("still fine") == ["still fine"]


# -- streaming -----------------------------------------------------------------------------------
@pytest.mark.pulse
@pytest.mark.parametrize("rate", [48000, 44100])  # as the microphone, and resampled
def test_stream_chunks_equal_the_file_bit_for_bit(vmic: VirtualMicrophone, tmp_path: Path, rate: int) -> None:
    feed = noise(10.0, 48000, seed=22)
    vmic.play_samples(feed, 48000)
    path = tmp_path / "take.pcm"
    config = far.AudioRecorderConfiguration(encoder=far.AudioEncoder.PCM16BITS, sample_rate=rate, channels=1,
                                            device=far.InputDevice(id="vmic_a", label="A"))
    events: list[far.AudioRecorderStreamEvent] = []
    states: list[far.AudioRecorderStateChangeEvent] = []
    loop_threads: set[str] = set()

    async def on_stream(e: far.AudioRecorderStreamEvent) -> None:  # a coroutine handler
        loop_threads.add(threading.current_thread().name)
        events.append(e)

    async def scenario() -> str | None:
        rec = far.AudioRecorder(configuration=config, on_stream=on_stream, on_state_change=states.append)
        assert await rec.start_recording(str(path)) is True
        await wait_for(lambda: sum(len(e.chunk) for e in events) >= 96000)
        await rec.pause_recording()
        assert await rec.is_paused() and await rec.is_recording()
        await asyncio.sleep(0.5)
        await rec.resume_recording()
        assert not await rec.is_paused()
        count = len(events)
        await wait_for(lambda: len(events) > count + 10)
        result = await rec.stop_recording()
        await asyncio.sleep(0.05)  # let the last coroutine handlers run
        assert not await rec.is_recording()
        return result

    assert run(scenario) == str(path)
    assert [e.data for e in states] == ["recording", "paused", "recording", "stopped"]
    assert [e.state for e in states][-1] is far.AudioRecorderState.STOPPED
    assert all(e.path == str(path) and e.error is None and e.control is not None for e in states)
    assert loop_threads == {"MainThread"}
    assert [e.sequence for e in events] == list(range(len(events)))
    assert [e.bytes_streamed for e in events] == list(np.cumsum([len(e.chunk) for e in events]))
    streamed = b"".join(e.chunk for e in events)
    assert streamed == path.read_bytes()
    if rate == 48000:  # the microphone's signal, as ffmpeg reads it, minus the paused half second
        assert 0.3 < skipped_seconds(feed, pcm(path)[:, 0]) < 1.5


@pytest.mark.pulse
def test_stream_without_output_path_leaves_no_file(vmic: VirtualMicrophone, no_leftovers: None) -> None:
    vmic.play_tone(1000.0, 10)
    chunks: list[bytes] = []
    states: list[far.AudioRecorderStateChangeEvent] = []

    async def scenario() -> str | None:
        rec = far.AudioRecorder(configuration=PCM_48K_MONO, on_stream=lambda e: chunks.append(e.chunk),
                                on_state_change=lambda e: states.append(e))
        await rec.start_recording()
        await wait_for(lambda: sum(map(len, chunks)) >= 144000)
        return await rec.stop_recording()

    assert run(scenario) is None  # as in Flet: a stream has no file to return
    assert states[0].path and not os.path.exists(states[0].path)
    data = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert dominant_frequency(data[4800:], 48000) == pytest.approx(1000, abs=3)


def test_stream_includes_what_the_resampler_held_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "resampled.pcm"
    chunks: list[bytes] = []

    async def scenario() -> None:
        backend = TestBackend(tone(440, 3, 48000), 48000, realtime=False, after_end="stop")
        config = far.AudioRecorderConfiguration(encoder=far.AudioEncoder.PCM16BITS, sample_rate=44100, channels=1)
        rec = far.AudioRecorder(configuration=config, on_stream=lambda e: chunks.append(e.chunk), backend=backend)
        await rec.start_recording(str(path))
        assert await asyncio.to_thread(backend.wait_done, 30)
        await rec.stop_recording()

    run(scenario)
    assert b"".join(chunks) == path.read_bytes()
    assert len(path.read_bytes()) // 2 == pytest.approx(3 * 44100, abs=2205)  # the last (50 ms) block is padded


def test_cancel_of_a_stream_deletes_it(no_leftovers: None) -> None:
    async def scenario() -> list[str]:
        rec = far.AudioRecorder(configuration=PCM_48K_MONO, on_stream=lambda: None,  # zero-argument handler
                                backend=TestBackend({"vmic_a": tone(440, 5, 48000)}, 48000))
        await rec.start_recording()
        await asyncio.sleep(0.2)
        await rec.cancel_recording()
        return [await rec.is_recording_async()]

    assert run(scenario) == [False]


# -- upload --------------------------------------------------------------------------------------
class UploadServer:
    """A local HTTP server that stores what it is sent, or answers with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _store(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST = _store

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/uploads/take.pcm"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> UploadServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def record_and_upload(settings: far.AudioRecorderUploadSettings, output_path: str | None,
                      **rec_kw: Any) -> tuple[str | None, list[far.AudioRecorderUploadEvent], list[bytes]]:
    uploads: list[far.AudioRecorderUploadEvent] = []
    chunks: list[bytes] = []

    async def on_upload(e: far.AudioRecorderUploadEvent) -> None:
        uploads.append(e)

    async def scenario() -> str | None:
        rec = far.AudioRecorder(configuration=PCM_48K_MONO, on_upload=on_upload,
                                on_stream=lambda e: chunks.append(e.chunk), **rec_kw)
        await rec.start_recording(output_path, upload=settings)
        await wait_for(lambda: sum(map(len, chunks)) >= 96000 * 1.5)
        result = await rec.stop_recording()
        await asyncio.sleep(0.05)
        return result

    return run(scenario), uploads, chunks


@pytest.mark.pulse
def test_upload_sends_the_take_after_stop(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(700.0, 10)
    path = tmp_path / "take.pcm"
    with UploadServer() as server:
        settings = far.AudioRecorderUploadSettings(upload_url=server.url, headers={"X-Token": "s3cret"},
                                                   file_name="take.pcm")
        result, uploads, chunks = record_and_upload(settings, str(path))
    assert result == str(path) and path.exists()  # a named file stays
    [(method, url_path, headers, body)] = server.requests
    assert (method, url_path, headers["X-Token"]) == ("PUT", "/uploads/take.pcm", "s3cret")
    assert body == path.read_bytes() == b"".join(chunks)
    assert dominant_frequency(np.frombuffer(body, "<i2")[4800:], 48000) == pytest.approx(700, abs=3)
    progress = [e.progress for e in uploads]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    assert len(progress) >= 3  # in between too: the body goes out in chunks
    assert uploads[-1].bytes_uploaded == len(body)
    assert all(e.error is None and e.file_name == "take.pcm" for e in uploads)


@pytest.mark.pulse
def test_upload_of_a_stream_only_take_uses_post_and_cleans_up(vmic: VirtualMicrophone,
                                                              no_leftovers: None) -> None:
    vmic.play_tone(500.0, 10)
    with UploadServer() as server:
        settings = far.AudioRecorderUploadSettings(upload_url=server.url, method="POST")
        result, uploads, chunks = record_and_upload(settings, None)
    assert result is None
    [(method, _, _, body)] = server.requests
    assert method == "POST" and body == b"".join(chunks)
    assert uploads[-1].progress == 1.0 and not os.path.exists(str(uploads[-1].path))


@pytest.mark.parametrize("status", [500, None])
def test_failed_upload_reports_an_error_and_keeps_the_file(status: int | None) -> None:
    backend = TestBackend({"vmic_a": tone(440, 10, 48000)}, 48000)
    with UploadServer(status or 500) as server:
        url = server.url if status else "http://127.0.0.1:9/nothing-listens-here"
        settings = far.AudioRecorderUploadSettings(upload_url=url, file_name="t.pcm")
        result, uploads, chunks = record_and_upload(settings, None, backend=backend)
    assert result is None
    last = uploads[-1]
    assert last.error and last.progress is None and last.data == last.error
    assert ("HTTP 500" in last.error) if status else ("failed" in last.error)
    kept = Path(str(last.path))
    assert str(kept) in last.error  # the message says where the take is
    try:
        assert kept.read_bytes() == b"".join(chunks)
    finally:
        kept.unlink()
        kept.parent.rmdir()


# -- methods, handlers, errors -------------------------------------------------------------------
@pytest.mark.pulse
def test_devices_and_device_choice(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(440.0, 10, mic="vmic_a")
    vmic.play_tone(1250.0, 10, mic="vmic_b")
    path = tmp_path / "b.wav"

    async def scenario() -> list[far.InputDevice]:
        rec = far.AudioRecorder()
        devices = await rec.get_input_devices()
        chosen = next(d for d in devices if d.id == "vmic_b")
        config = far.AudioRecorderConfiguration(device=chosen, channels=1, sample_rate=44100)
        await rec.start_recording(path, configuration=config, timeout=10)
        await asyncio.sleep(1.5)
        await rec.stop_recording(timeout=10)
        return devices

    devices = run(scenario)
    assert {d.id: d.label for d in devices}["vmic_a"] == "Virtual mic A"
    assert [d.id for d in devices if d.is_default] == ["vmic_a"]
    data = ffmpeg_decode(path)
    assert ffprobe(path).channels == 1
    assert dominant_frequency(data[4410:], 44100) == pytest.approx(1250, abs=3)


def test_handler_kinds_run_on_the_callers_loop_in_order(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    threads: set[int] = set()

    async def coroutine(e: far.AudioRecorderStateChangeEvent) -> None:
        await asyncio.sleep(0)
        seen.append(("coroutine", e.state.value))

    def raises(e: Any) -> None:
        raise RuntimeError("a broken handler")

    async def scenario() -> int:
        backend = TestBackend({"test": tone(440, 5, 48000)}, 48000)
        rec = far.AudioRecorder(configuration=far.AudioRecorderConfiguration(channels=1, sample_rate=48000),
                                on_state_change=coroutine, backend=backend)
        rec.on_state_changed = lambda: threads.add(threading.get_ident())  # 0.27 name, no argument
        await rec.start_recording(str(tmp_path / "a.wav"))
        await rec.pause_recording()
        await rec.resume_recording()
        await rec.stop_recording()
        await asyncio.sleep(0.05)
        rec.on_state_change = raises  # an error in a handler is logged; the take goes on
        rec.on_state_changed = None
        await rec.start_recording(str(tmp_path / "b.wav"))
        assert await rec.stop_recording() == str(tmp_path / "b.wav")
        return threading.get_ident()

    loop_thread = run(scenario)
    assert threads == {loop_thread}
    assert seen == [("coroutine", "recording"), ("coroutine", "paused"), ("coroutine", "recording"),
                    ("coroutine", "stopped")]


def test_flet_validation_and_typed_errors(tmp_path: Path, no_leftovers: None) -> None:
    backend = TestBackend(tone(440, 5, 48000), 48000)

    async def scenario() -> None:
        rec = far.AudioRecorder(backend=backend)
        with pytest.raises(ValueError, match="output_path must be provided") as info:
            await rec.start_recording()
        assert isinstance(info.value, InvalidConfigError) and info.value.name == "output_path"
        streaming = far.AudioRecorder(on_stream=print, backend=backend)  # default encoder: WAV
        with pytest.raises(InvalidConfigError, match=r"require AudioEncoder\.PCM16BITS") as info:
            await streaming.start_recording(str(tmp_path / "s.wav"))
        assert info.value.name == "encoder"
        with pytest.raises(InvalidConfigError, match="upload_url"):
            await rec.start_recording(upload=far.AudioRecorderUploadSettings(upload_url=""),
                                      configuration=far.AudioRecorderConfiguration(
                                          encoder=far.AudioEncoder.PCM16BITS))
        bad = far.AudioRecorderConfiguration(encoder="mp3")  # type: ignore[arg-type]
        with pytest.raises(InvalidConfigError, match="mp3"):
            await rec.start_recording(str(tmp_path / "x.mp3"), configuration=bad)
        with pytest.raises(InvalidConfigError, match="channels_num"):
            await rec.start_recording(str(tmp_path / "c.wav"),
                                      configuration=far.AudioRecorderConfiguration(channels=3))
        with pytest.raises(MicrecError):  # a stream-only take whose start fails leaves no temp file
            await far.AudioRecorder(configuration=far.AudioRecorderConfiguration(
                encoder=far.AudioEncoder.PCM16BITS, device="nope"), on_stream=print,
                backend=backend).start_recording()
        assert await rec.start_recording(str(tmp_path / "ok.wav"))
        with pytest.raises(StateError):
            await rec.start_recording(str(tmp_path / "again.wav"))
        assert await rec.stop_recording() == str(tmp_path / "ok.wav")
        assert await rec.stop_recording() is None
        assert not await rec.is_supported_encoder("mp3")

    run(scenario)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.wav"]  # nothing half-written


def test_timeouts_raise_timeouterror() -> None:
    class SlowBackend(TestBackend):
        def list_devices(self) -> list[far.InputDevice]:
            time.sleep(1.0)
            return super().list_devices()

    async def scenario() -> None:
        rec = far.AudioRecorder(backend=SlowBackend(tone(440, 1, 48000), 48000))
        with pytest.raises(TimeoutError):
            await rec.get_input_devices(timeout=0.05)
        legacy = far.AudioRecorder(on_state_changed=print, backend=SlowBackend(tone(440, 1, 48000), 48000))
        with pytest.raises(TimeoutError):
            legacy.get_input_devices(wait_timeout=0.05)

    run(scenario)


def test_a_fault_ends_the_take_with_an_error_event_and_the_upload_still_goes(tmp_path: Path) -> None:
    states: list[far.AudioRecorderStateChangeEvent] = []
    uploads: list[far.AudioRecorderUploadEvent] = []
    path = tmp_path / "fault.pcm"

    async def scenario() -> str | None:
        backend = TestBackend(tone(440, 5, 48000), 48000, realtime=False, fail_after=1.0)
        config = far.AudioRecorderConfiguration(encoder=far.AudioEncoder.PCM16BITS, channels=1, sample_rate=48000)
        rec = far.AudioRecorder(configuration=config, on_state_change=states.append, on_upload=uploads.append,
                                backend=backend)
        await rec.start_recording(str(path), upload=far.AudioRecorderUploadSettings(upload_url=server.url))
        await wait_for(lambda: len(states) == 2 and bool(uploads) and uploads[-1].progress == 1.0)
        assert not await rec.is_recording()
        return await rec.stop_recording()  # nothing open any more

    with UploadServer() as server:
        assert run(scenario) is None
    assert [e.state for e in states] == [far.AudioRecorderState.RECORDING, far.AudioRecorderState.STOPPED]
    assert isinstance(states[-1].error, MicrecError)
    data = pcm(path)  # the file was finalized with what was captured: the second before the fault
    assert len(data) == 48000 and dominant_frequency(data, 48000) == pytest.approx(440, abs=2)
    assert server.requests[0][3] == path.read_bytes()


def test_events_carry_the_page_of_the_app(tmp_path: Path) -> None:
    pages: list[Any] = []

    async def scenario() -> App:
        def main(page: ft.Page) -> None:
            recorder = far.AudioRecorder(on_state_change=lambda e: pages.append(e.page),
                                         backend=TestBackend(tone(440, 2, 48000), 48000))

            async def record(e: Any) -> None:
                await recorder.start_recording(str(tmp_path / "p.wav"))
                await recorder.stop_recording()

            page.add(ft.Button(content="Record", on_click=record))

        app = App(main)
        await app.click("Record")
        return app

    app = run(scenario)
    assert pages == [app.page, app.page]


def test_0_27_recorder_without_an_event_loop(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    path = str(tmp_path / "plain.wav")

    def on_state(e: far.AudioRecorderStateChangeEvent) -> None:
        seen.append((e.data, threading.current_thread().name))
        if e.data == "paused":
            try:
                rec.resume()  # calling the recorder back from its own handler
            except Exception as exc:  # noqa: BLE001 - collected for the assertion below
                errors.append(exc)

    rec = far.AudioRecorder(audio_encoder="wav", channels_num=1, sample_rate=48000, on_state_changed=on_state,
                            backend=TestBackend(tone(440, 5, 48000), 48000))
    assert rec.start_recording(path, wait_timeout=5) is True
    rec.pause()
    deadline = time.monotonic() + 20
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.stop_recording() == path
    while len(seen) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert errors == []
    assert [state for state, _ in seen] == ["recording", "paused", "recording", "stopped"]
    assert all(thread.startswith("micrec-flet-events") for _, thread in seen)


def test_legacy_settings_map_onto_the_configuration() -> None:
    rec = far.AudioRecorder(audio_encoder=far.AudioEncoder.FLAC, channels_num=1, sample_rate=16000,
                            bit_rate=64000, suppress_noise=True, cancel_echo=True, auto_gain=True)
    assert isinstance(rec, far.AudioRecorder)
    config = rec.configuration
    assert (config.encoder, config.channels, config.sample_rate, config.bit_rate) == ("flac", 1, 16000, 64000)
    assert config.suppress_noise and config.cancel_echo and config.auto_gain
    rec.audio_encoder = far.AudioEncoder.WAV
    assert rec.configuration.encoder is far.AudioEncoder.WAV and rec.audio_encoder is far.AudioEncoder.WAV
    ref: ft.Ref[Any] = ft.Ref()
    modern = far.AudioRecorder(ref=ref, data="x")
    assert ref.current is modern and modern.data == "x" and modern.page is None
    assert asyncio.iscoroutinefunction(modern.start_recording)
    assert not asyncio.iscoroutinefunction(rec.start_recording)
    assert asyncio.iscoroutinefunction(rec.start_recording_async)
    assert far.AudioRecorderUploadSettings(upload_url="u").method == "PUT"
    assert far.AudioRecorderConfiguration().encoder is far.AudioEncoder.WAV


def test_importing_without_flet_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "micrec.flet" or name.startswith("micrec.flet."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "flet", None)  # what an environment without flet looks like
    with pytest.raises(ImportError, match=r"pip install 'micrec\[flet\]'"):
        importlib.import_module("micrec.flet")
    with contextlib.suppress(KeyError):
        monkeypatch.delitem(sys.modules, "micrec.flet")


def _imports_within(package: Path, prefix: str) -> dict[str, set[str]]:
    """Which modules of ``package`` each of its modules imports (at any depth in its code)."""
    import ast

    graph: dict[str, set[str]] = {}
    for source in package.glob("*.py"):
        name = source.stem
        found: set[str] = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix):
                found.add(node.module.removeprefix(prefix).split(".")[0])  # type: ignore[union-attr]
        graph[name] = found & {p.stem for p in package.glob("*.py")}
    return graph


def test_the_flet_modules_import_each_other_in_one_direction() -> None:
    graph = _imports_within(Path(far.__file__).parent, "micrec.flet.")
    graph.pop("__init__")  # the package gathers its modules: it is above them all
    assert "legacy" not in graph["recorder"] and "recorder" in graph["legacy"]

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m)] == []
    legacy = far.AudioRecorder(on_state_changed=print)
    assert type(legacy).__name__ == "LegacyAudioRecorder" and isinstance(legacy, far.AudioRecorder)
    assert type(far.AudioRecorder()) is far.AudioRecorder


# -- micrec's extensions --------------------------------------------------------------------------
def test_segments_are_listed_and_stop_returns_the_last(tmp_path: Path) -> None:
    feed = noise(2.5, 48000, seed=11)
    backend = TestBackend(feed, 48000, realtime=False, after_end="stop")
    rec = far.AudioRecorder(configuration=far.AudioRecorderConfiguration(
        encoder=far.AudioEncoder.WAV, sample_rate=48000, channels=1), segment_seconds=1.0, backend=backend)
    assert rec.segment_seconds == 1.0

    async def scenario() -> str | None:
        await rec.start_recording(str(tmp_path / "take.wav"))
        assert backend.wait_done(30)
        return await rec.stop_recording()

    last = run(scenario)
    paths = rec.segment_paths
    assert [Path(p).name for p in paths] == ["take-0001.wav", "take-0002.wav", "take-0003.wav"]
    assert last == paths[-1]
    joined = np.concatenate([ffmpeg_decode(p)[:, 0] for p in paths])
    assert [len(ffmpeg_decode(p)) for p in paths[:2]] == [48000, 48000]
    assert np.array_equal(joined[:len(feed)], feed), "the segments hold the feed, bit for bit"
    assert not (tmp_path / "take.wav").exists()


def test_extension_settings_reach_the_take_and_readings_are_idle(tmp_path: Path) -> None:
    backend = TestBackend(tone(440, 5, 48000), 48000)
    rec = far.AudioRecorder(system_audio=True, backend=backend)
    assert (rec.system_audio, rec.mix_system_audio, rec.until_silence, rec.wait_for_voice) == (True, False, None, False)
    assert rec.waiting_for_voice is False and rec.seconds_since_voice is None and rec.segment_paths == []
    # The core's own check of system_audio answers: the test backend cannot read an output.
    with pytest.raises(MicrecError, match="system_audio"):
        run(lambda: rec.start_recording(str(tmp_path / "x.wav")))
    assert not (tmp_path / "x.wav").exists()
    rec.system_audio = False
    rec.segment_seconds = 1.0
    with pytest.raises(InvalidConfigError, match="segment_seconds") as info:
        rec.on_stream = lambda e: None
        run(lambda: rec.start_recording(configuration=far.AudioRecorderConfiguration(
            encoder=far.AudioEncoder.PCM16BITS)))
    assert info.value.name == "segment_seconds"


def test_a_take_that_ends_by_itself_after_silence_is_finalized(tmp_path: Path) -> None:
    pytest.importorskip("webrtcvad", reason="the vad extra")
    states: list[Any] = []
    backend = TestBackend(np.zeros(48000 * 5, dtype=np.int16), 48000)
    rec = far.AudioRecorder(configuration=far.AudioRecorderConfiguration(sample_rate=48000, channels=1),
                            until_silence=0.5, backend=backend, on_state_change=lambda e: states.append(e))

    async def scenario() -> None:
        await rec.start_recording(str(tmp_path / "quiet.wav"))
        deadline = time.monotonic() + 30
        while await rec.is_recording():
            assert time.monotonic() < deadline, "the take did not end by itself"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the STOPPED handler runs on this loop

    run(scenario)
    assert [e.data for e in states] == ["recording", "stopped"] and states[-1].error is None
    data = ffmpeg_decode(tmp_path / "quiet.wav")
    assert 0.5 * 48000 <= len(data) <= 1.2 * 48000  # 0.5 s of silence, then the end


# -- client takes (web and mobile apps): the pushed audio's checks --------------------------------
def _client_take(tmp_path: Path, **feed_kwargs: Any) -> tuple[Any, Any, list[Any]]:
    """A micrec take fed by a ClientFeed, as the Flet client's stream feeds it (44100 Hz stereo)."""
    from micrec import AudioRecorder
    from micrec.flet._client import ClientFeed

    feed = ClientFeed(**feed_kwargs)
    events: list[Any] = []
    core = AudioRecorder(backend=feed.backend, sample_rate=44100, channels_num=2, on_state_changed=events.append)
    core.start_recording(tmp_path / "take.wav")
    return feed, core, events


def _ended(core: Any) -> None:
    """Wait until a take's fault has ended it and its events are out."""
    deadline = time.monotonic() + 10
    while core.is_recording():
        assert time.monotonic() < deadline, "the take did not end"
        time.sleep(0.02)
    core.wait_for_events(5)


def test_a_malformed_or_oversized_chunk_ends_the_client_take_cleanly(tmp_path: Path) -> None:
    from micrec import MalformedAudioError

    for bad, why in [(b"\1\0\2", "not a whole number"), (b"", "not a whole number"),
                     (b"\0" * (2 << 20), "over the limit"), ("text", "not PCM16 bytes")]:
        feed, core, events = _client_take(tmp_path)
        good = tone(700, 0.5, 44100)
        feed.feed(np.repeat(good[:, None], 2, axis=1).tobytes())
        feed.feed(bad)
        _ended(core)
        assert [e.state for e in events] == ["recording", "stopped"], why
        assert isinstance(events[-1].error, MalformedAudioError) and why in str(events[-1].error)
        assert isinstance(events[-1].error, ValueError)
        audio = ffmpeg_decode(tmp_path / "take.wav")
        assert np.array_equal(audio[:, 0], good)  # what arrived before it, bit for bit
        feed.feed(b"\0" * 400)  # later chunks of the ended take are dropped
        assert not core.is_recording()


def test_a_client_that_goes_away_or_falls_silent_ends_the_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from micrec import DeviceLostError
    from micrec.flet import _client

    monkeypatch.setattr(_client, "IDLE_SECONDS", 0.5)
    for connected, why in [(lambda: False, "disconnected"), (lambda: True, "sent no audio")]:
        feed, core, events = _client_take(tmp_path)

        async def watch(feed: Any = feed, connected: Any = connected) -> None:
            feed.feed(b"\0\1" * 882)
            feed.watch(connected)
            await wait_for(lambda: feed.ended)

        run(watch)
        _ended(core)
        assert isinstance(events[-1].error, DeviceLostError) and why in str(events[-1].error)
        assert ffprobe(tmp_path / "take.wav").duration > 0.005


def test_a_client_stream_slower_than_its_format_is_refused(tmp_path: Path) -> None:
    from micrec import MalformedAudioError
    from micrec.flet import _client

    now = [0.0]
    feed, core, events = _client_take(tmp_path, clock=lambda: now[0])
    for _ in range(60):  # 22050 frames a second: mono, or half the rate, sent as if stereo 44.1 kHz
        feed.feed(b"\0\0" * 2 * 2205)
        now[0] += 0.1
    _ended(core)
    assert isinstance(events[-1].error, MalformedAudioError) and "wrong speed" in str(events[-1].error)
    assert _client.FORMAT_CHECK_SECONDS < 6
