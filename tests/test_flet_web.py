"""micrec.flet in a Flet web app, against Flet's real web client in chromium.

tests/flet_web_app.py (written like flet-audio-recorder's example) runs as ``python
flet_web_app.py``: flet-web serves Flet's stock Flutter client offline, and Debian's chromium,
driven by Playwright, clicks its buttons through Flutter's semantics tree. Chromium's fake
microphone plays a 700 Hz tone while the server's own virtual microphone plays 440 Hz, so a
file that holds 700 Hz holds the visitor's microphone. Lengths are judged against the app's
log of when each call returned or was made (the fake microphone runs on the wall clock), with
tolerances; files are judged with ffprobe/ffmpeg.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from test_web_browser import CHROMIUM, HEADLESS_FLAGS
from test_web_browser import pytestmark as browser_marks

from audio import dominant_frequency, ffmpeg_decode, ffprobe, tone

VISITOR_HZ, SERVER_HZ = 700.0, 440.0
APP = Path(__file__).with_name("flet_web_app.py")
WAIT = 60.0
#: How far a file's length may be from the time between the calls that bound it: the client's
#: chunks come every few tens of ms, and a busy 2-core machine delays events by some more.
LENGTH_TOLERANCE = 0.35
#: A paused take has two more cuts (pause, resume), each made where the client's chunks arrive:
#: seen +0.03 to +0.07 s on a quiet machine and +0.29 s once under load.
PAUSED_TOLERANCE = 0.6

pytest.importorskip("flet_web")
pytestmark = [
    *browser_marks,
    pytest.mark.parametrize("pulse_server", ["pulseaudio"], indirect=True),  # the server's mic: one kind is enough
]


# -- the app, its log and the browser ------------------------------------------------------------
@dataclass
class RunningApp:
    """``flet_web_app.py`` served on a free port, its takes directory and its event log."""

    origin: str
    takes: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    output: Path
    seen: list[dict[str, Any]] = field(default_factory=list)

    def log(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def wait(self, what: str, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for entry in self.log():
                if predicate(entry):
                    return entry
            assert self.process.poll() is None, f"the app exited: {self.output.read_text()[-3000:]}"
            time.sleep(0.05)
        raise AssertionError(f"no {what} in the app's log after {WAIT} s: {self.log()}")

    def returned(self, name: str) -> dict[str, Any]:
        return self.wait(f"{name} returning", lambda e: e["event"] in ("returned", "raised") and e["name"] == name)

    def states(self) -> list[dict[str, Any]]:
        return [e for e in self.log() if e["event"] == "state"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def start_app(tmp_path: Path, vmic: Any) -> Iterator[Callable[..., RunningApp]]:
    """Starts the app (with the server's virtual microphone playing 440 Hz meanwhile)."""
    vmic.play_tone(SERVER_HZ, 60)
    apps: list[RunningApp] = []

    def start(module: str = "micrec.flet", **extra_env: str) -> RunningApp:
        port = _free_port()
        takes = tmp_path / "takes"
        takes.mkdir(exist_ok=True)
        log_path, output = tmp_path / f"log-{len(apps)}.jsonl", tmp_path / f"app-{len(apps)}.out"
        env = {**os.environ, "APP_PORT": str(port), "TAKES_DIR": str(takes), "APP_LOG": str(log_path),
               "FAR_MODULE": module, "FLET_FORCE_WEB_SERVER": "1", **extra_env}
        with output.open("wb") as out:
            process = subprocess.Popen(["timeout", "300", sys.executable, str(APP)], env=env, stdout=out,
                                       stderr=subprocess.STDOUT, cwd=tmp_path)
        app = RunningApp(f"http://127.0.0.1:{port}", takes, log_path, process, output)
        apps.append(app)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                urllib.request.urlopen(app.origin + "/", timeout=2).close()
                return app
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, output.read_text()[-3000:]
                time.sleep(0.1)

    yield start
    for app in apps:
        app.process.terminate()
        try:
            app.process.wait(15)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait(5)


def _write_tone(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(tone(VISITOR_HZ, 30.0, 48000).tobytes())
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


def _browser(pw: Any, base: Path, args: list[str]) -> Any:
    return pw.chromium.launch_persistent_context(str(base / "profile"), executable_path=CHROMIUM, headless=True,
                                                 args=[*HEADLESS_FLAGS, *args], timeout=WAIT * 1000)


@pytest.fixture(scope="module")
def chromium(playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium whose microphone (allowed without a prompt) plays 700 Hz."""
    base = tmp_path_factory.mktemp("chromium")
    mic = _write_tone(base / "visitor.wav")
    context = _browser(playwright, base, ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                                          f"--use-file-for-fake-audio-capture={mic}"])
    yield context
    context.close()


def open_app(browser: Any, app: RunningApp) -> Any:
    """The app's page with Flutter's semantics on, so that its buttons can be clicked by name."""
    page = browser.new_page()
    page.goto(app.origin + "/", timeout=WAIT * 1000)
    app.wait("the app's page", lambda e: e["event"] == "ready")
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=WAIT * 1000)
    placeholder.evaluate("e => e.click()")
    page.get_by_role("button", name="Stop").wait_for(timeout=WAIT * 1000)
    return page


def click(page: Any, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click(timeout=WAIT * 1000)


def assert_visitors_tone(path: Path, seconds: float, tolerance: float = LENGTH_TOLERANCE) -> None:
    """The file holds the visitor's 700 Hz (not the server's 440 Hz), ``seconds`` long."""
    audio = ffmpeg_decode(path)[:, 0]
    length = len(audio) / 48000
    assert abs(length - seconds) < tolerance, f"{path.name}: {length:.2f} s, expected {seconds:.2f} s"
    middle = audio[len(audio) // 4: 3 * len(audio) // 4]
    assert abs(dominant_frequency(middle, 48000) - VISITOR_HZ) < 5
    assert abs(middle.astype(float)).max() > 8000  # the tone at its level, not a trickle of it


def begin(page: Any, app: RunningApp, button: str = "Start WAV", name: str = "take.wav") -> float:
    """Click a start button; when start_recording returned True."""
    click(page, button)
    started = app.returned(f"start {name}")
    assert started["event"] == "returned" and started["result"] is True, started
    return float(started["t"])


def record(page: Any, app: RunningApp, start: str, name: str, seconds: float) -> tuple[float, float]:
    """Start a take, let it run ``seconds``, stop it: (when start returned, when stop was called)."""
    began = begin(page, app, start, name)
    time.sleep(seconds)
    click(page, "Stop")
    stopped = app.returned("stop")
    assert stopped["result"] == str(app.takes / name)
    stop_call = app.wait("stop call", lambda e: e["event"] == "call" and e["name"] == "stop")
    return began, stop_call["t"]


# -- the tests ----------------------------------------------------------------------------------
def test_a_wav_take_of_the_visitors_microphone_lands_on_the_server(chromium: Any, start_app: Any) -> None:
    app = start_app()
    page = open_app(chromium, app)
    click(page, "Permission")
    assert app.returned("has_permission")["result"] is True
    click(page, "Devices")
    assert "InputDevice" in str(app.returned("devices")["result"])  # the browser's, as micrec's InputDevice
    began, ended = record(page, app, "Start WAV", "take.wav", 2.5)
    path = app.takes / "take.wav"
    probe = ffprobe(path)
    assert (probe.codec, probe.rate, probe.channels) == ("pcm_s16le", 48000, 1)
    assert_visitors_tone(path, ended - began)
    states = app.states()
    assert [(s["state"], s["data"], s["error"]) for s in states] == [("recording", "recording", None),
                                                                       ("stopped", "stopped", None)]
    page.close()


def test_a_paused_take_leaves_the_pause_out(chromium: Any, start_app: Any) -> None:
    app = start_app()
    page = open_app(chromium, app)
    began = begin(page, app)
    click(page, "Start Opus")  # a second start while a take is open
    again = app.returned("start take.ogg")
    assert again["event"] == "raised" and again["type"] == "StateError", again
    time.sleep(1.0)
    click(page, "Pause")
    paused = app.wait("pause call", lambda e: e["event"] == "call" and e["name"] == "pause")["t"]
    app.returned("pause")
    time.sleep(1.5)
    click(page, "Resume")
    resumed = app.returned("resume")["t"]
    time.sleep(1.0)
    click(page, "Level")  # micrec's meter, on the server: the tone at half scale is -6 dBFS
    level = app.wait("a level", lambda e: e["event"] == "amplitude")
    assert -7.5 < level["current"] < -5.0 and -7.5 < level["max"] < -5.0, level
    time.sleep(0.5)
    click(page, "Stop")
    assert app.returned("stop")["result"] == str(app.takes / "take.wav")
    stop_call = app.wait("stop call", lambda e: e["event"] == "call" and e["name"] == "stop")["t"]
    assert_visitors_tone(app.takes / "take.wav", (paused - began) + (stop_call - resumed), PAUSED_TOLERANCE)
    assert [s["state"] for s in app.states()] == ["recording", "paused", "recording", "stopped"]
    assert not (app.takes / "take.ogg").exists()
    page.close()


def test_an_opus_take_is_ogg_opus_on_the_server(chromium: Any, start_app: Any) -> None:
    app = start_app()
    page = open_app(chromium, app)
    began, ended = record(page, app, "Start Opus", "take.ogg", 2.5)
    path = app.takes / "take.ogg"
    probe = ffprobe(path)
    assert (probe.codec, probe.rate, probe.channels) == ("opus", 48000, 1)
    assert_visitors_tone(path, ended - began)
    assert [s["state"] for s in app.states()] == ["recording", "stopped"]
    page.close()


def test_on_stream_gets_micrecs_pcm_which_is_the_file(chromium: Any, start_app: Any) -> None:
    app = start_app(APP_STREAM="1")
    page = open_app(chromium, app)
    began, ended = record(page, app, "Start PCM", "take.pcm", 2.0)
    chunks = [e for e in app.log() if e["event"] == "stream"]
    path = app.takes / "take.pcm"
    assert sum(c["size"] for c in chunks) == path.stat().st_size == chunks[-1]["bytes_streamed"]
    assert [c["sequence"] for c in chunks] == list(range(len(chunks)))
    audio = ffmpeg_decode(path, input_format=["-f", "s16le", "-ar", "48000", "-ac", "1"])[:, 0]
    assert abs(len(audio) / 48000 - (ended - began)) < LENGTH_TOLERANCE
    assert abs(dominant_frequency(audio[len(audio) // 4:], 48000) - VISITOR_HZ) < 5
    page.close()


def test_a_tab_closed_mid_take_leaves_the_audio_that_arrived(chromium: Any, start_app: Any) -> None:
    app = start_app()
    page = open_app(chromium, app)
    began = begin(page, app)
    time.sleep(2.0)
    closed = time.monotonic()  # one clock for both processes (CLOCK_MONOTONIC)
    page.close()
    stopped = app.wait("STOPPED", lambda e: e["event"] == "state" and e["state"] == "stopped")
    assert "DeviceLostError" in stopped["error"] and "disconnected" in stopped["error"]
    assert_visitors_tone(app.takes / "take.wav", closed - began)


def test_a_start_that_fails_leaves_nothing_and_the_next_one_works(chromium: Any, start_app: Any) -> None:
    app = start_app()
    page = open_app(chromium, app)
    click(page, "Start MP3")
    raised = app.returned("start take.mp3")
    assert raised["event"] == "raised" and raised["type"] == "InvalidConfigError" and ".mp3" in raised["message"]
    assert not list(app.takes.iterdir()) and app.states() == []
    began, ended = record(page, app, "Start WAV", "take.wav", 1.5)  # the client's recorder was stopped
    assert_visitors_tone(app.takes / "take.wav", ended - began)
    assert [s["state"] for s in app.states()] == ["recording", "stopped"]
    page.close()


def test_a_denied_microphone_is_a_typed_error_and_leaves_nothing(playwright: Any, start_app: Any,
                                                                 tmp_path: Path) -> None:
    browser = _browser(playwright, tmp_path, ["--deny-permission-prompts", "--use-fake-device-for-media-stream"])
    try:
        app = start_app()
        page = open_app(browser, app)
        click(page, "Permission")
        assert app.returned("has_permission")["result"] is False
        click(page, "Start WAV")
        raised = app.returned("start take.wav")
        assert raised["event"] == "raised" and raised["type"] == "PermissionDeniedError", raised
        assert "PermissionError" in raised["bases"] and "denied the microphone" in raised["message"]
        assert not list(app.takes.iterdir()) and app.states() == []
    finally:
        browser.close()


def test_the_official_recorder_in_the_same_harness_gives_a_blob_url(chromium: Any, start_app: Any) -> None:
    """What flet-audio-recorder 1.0.5 itself does here (the comparison in docs/flet.md)."""
    pytest.importorskip("flet_audio_recorder")
    app = start_app("flet_audio_recorder")
    page = open_app(chromium, app)
    begin(page, app)
    time.sleep(1.5)
    click(page, "Stop")
    assert app.returned("stop")["result"].startswith("blob:")
    assert not list(app.takes.iterdir())  # nothing at output_path on the server
    assert [(s["data"], s["has_state"]) for s in app.states()] == [("recording", False), ("stopped", False)]
    page.close()
