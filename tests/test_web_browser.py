"""micrec.web in a real browser: Debian's chromium, driven by Playwright, with a fake microphone.

Chromium plays a WAV this test writes as its microphone (``--use-file-for-fake-audio-capture``);
the page records it through the AudioWorklet and the WebSocket into a file on the in-process
server, which is then judged with ffprobe/ffmpeg. Waits follow the audio the server reports,
not the wall clock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from test_web_helpers import WAIT, LiveServer, live_server

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, peak_dbfs, tone

CHROMIUM = "/usr/bin/chromium"
FAKE_MIC_HZ = 1000
pytest.importorskip("starlette")
pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                       reason="needs Debian's chromium (apt-get install chromium)"),
]
HEADLESS_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = WAIT * 1000


def write_fake_mic(path: Path, rate: int = 48000, samples: np.ndarray | None = None) -> Path:
    """The fake microphone's WAV: ``samples`` (mono int16), by default 4 s of the 1 kHz tone."""
    if samples is None:
        samples = tone(FAKE_MIC_HZ, 4.0, rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("browser-takes")) as srv:
        yield srv


@contextlib.contextmanager
def chromium_with_mic(base: Path, mic: Path) -> Iterator[Any]:
    """A headless chromium (a fresh profile in ``base``) whose microphone plays the WAV ``mic``."""
    from playwright.sync_api import sync_playwright

    args = [*HEADLESS_FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}"]
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(base / "profile"), executable_path=CHROMIUM, headless=True, args=args, timeout=WAIT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless chromium whose microphone plays a 1 kHz tone at half scale."""
    base = tmp_path_factory.mktemp("chromium")
    with chromium_with_mic(base, write_fake_mic(base / "mic.wav")) as context:
        yield context


@contextlib.contextmanager
def open_page(browser: Any, origin: str) -> Iterator[Any]:
    """The recorder page at ``origin``; it must raise no error."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(origin + "/", timeout=WAIT_MS)
    try:
        yield page
    finally:
        page.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    with open_page(browser, server.origin) as page:
        yield page


def wait_for(page: Any, expression: str) -> None:
    """Poll a JS expression until true (the page's CSP forbids eval, which wait_for_function uses)."""
    for _ in range(int(WAIT / 0.05)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"still false after {WAIT} s: {expression}")


def recorded_ms(page: Any) -> float:
    return float(page.evaluate("window.micrecPage.recorder ? window.micrecPage.recorder.sentFrames * 1000 "
                               "/ window.micrecPage.recorder.context.sampleRate : 0"))


def wait_recorded(page: Any, ms: float) -> None:
    """Wait until the page has sent ``ms`` of audio since its take began (audio time)."""
    wait_for(page, f"""(() => {{ const r = window.micrecPage.recorder;
        return r && r.context && r.sentFrames * 1000 / r.context.sampleRate >= {ms}; }})()""")


def wait_state(page: Any, state: str) -> None:
    wait_for(page, f"document.getElementById('state').textContent === '{state}'")


def finish(page: Any) -> dict[str, Any]:
    page.click("#stop")
    wait_for(page, "window.micrecPage.last !== null")
    summary: dict[str, Any] = page.evaluate("window.micrecPage.last")
    return summary


def test_record_pause_resume_stop_in_chromium(page: Any, server: LiveServer, tmp_path: Path) -> None:
    page.click("#record")
    wait_state(page, "recording")
    wait_recorded(page, 1200)
    track = page.evaluate("window.micrecPage.recorder.media.getAudioTracks()[0].getSettings()")
    page.click("#pause")
    wait_state(page, "paused")
    paused_at = recorded_ms(page)
    page.wait_for_timeout(800)  # audio keeps coming from the fake mic while paused
    assert recorded_ms(page) == paused_at, "the page sent audio while paused"
    page.click("#resume")
    wait_state(page, "recording")
    wait_recorded(page, paused_at + 1000)
    wait_for(page, "document.getElementById('level').textContent !== '-∞ dBFS'")
    level_text = page.text_content("#level")
    shot = _screenshot(page, tmp_path, "recorder-page.png")
    summary = finish(page)
    wait_state(page, "stopped")

    # the browser delivered what the settings asked for: no browser DSP when the flags are off
    assert (track["echoCancellation"], track["noiseSuppression"], track["autoGainControl"]) == (
        False, False, False)
    assert summary["error"] is None and summary["overflows"] == 0
    sent = page.evaluate("window.micrecPage.recorder.sentFrames")
    assert summary["frames"] == sent, "every frame the page sent is in the take"
    path = server.directory / summary["take"]
    probe = ffprobe(path)
    assert (probe.codec, probe.rate, probe.channels) == ("pcm_s16le", 48000, 1)
    assert probe.duration == pytest.approx(summary["duration_ms"] / 1000, abs=0.021)
    assert 2.2 <= probe.duration <= summary["duration_ms"] / 1000 + 0.021
    audio = ffmpeg_decode(path)
    assert dominant_frequency(audio, 48000) == pytest.approx(FAKE_MIC_HZ, abs=5)
    # chromium resamples and mixes the fake file, so the level is close, not exact
    assert peak_dbfs(audio[4800:]) == pytest.approx(-6.0, abs=1.5)
    assert float(level_text.split()[0]) == pytest.approx(-6.0, abs=1.5)  # type: ignore[union-attr]
    assert server.wait_for_stopped(path.name).error is None
    # the takes list shows it with a player and a download link
    page.wait_for_selector(f"#takes li:has-text('{path.name}') audio", timeout=WAIT_MS)
    link = page.get_attribute(f"#takes li:has-text('{path.name}') a", "href")
    assert link == f"takes/{path.name}?download=1"  # the cookie names the visitor: no credential in links
    _screenshot(page, tmp_path, "recorder-takes.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flac_at_16k_stereo_from_chromium(page: Any, server: LiveServer) -> None:
    page.select_option("#encoder", "flac")
    page.select_option("#sample-rate", "16000")
    page.select_option("#channels", "2")
    page.click("#record")
    wait_state(page, "recording")
    wait_recorded(page, 1000)
    summary = finish(page)
    assert summary["error"] is None
    path = server.directory / summary["take"]
    probe = ffprobe(path)
    assert (probe.codec, probe.rate, probe.channels, path.suffix) == ("flac", 16000, 2, ".flac")
    assert probe.duration == pytest.approx(summary["duration_ms"] / 1000, abs=0.021)
    audio = ffmpeg_decode(path)
    assert dominant_frequency(audio, 16000) == pytest.approx(FAKE_MIC_HZ, abs=5)
    assert np.abs(audio[:, 0].astype(int) - audio[:, 1]).max() <= 2  # a mono mic on both channels


def test_dsp_checkboxes_become_getusermedia_constraints(page: Any) -> None:
    pytest.importorskip("pywebrtc_audio")
    page.evaluate("""() => { const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
        window.seenConstraints = [];
        navigator.mediaDevices.getUserMedia = (c) => { window.seenConstraints.push(c); return real(c); }; }""")
    for box in ("#cancel-echo", "#suppress-noise", "#auto-gain"):
        page.check(box)
    page.click("#record")
    wait_state(page, "recording")
    audio = page.evaluate("window.seenConstraints[0].audio")
    assert (audio["echoCancellation"], audio["noiseSuppression"], audio["autoGainControl"]) == (True, True, True)
    wait_recorded(page, 500)
    summary = finish(page)
    assert summary["error"] is None  # the server ran noise suppression and AGC on the take


def test_the_page_shows_why_the_server_refused(page: Any, server: LiveServer) -> None:
    before = {p.name for p in server.directory.iterdir()}
    page.evaluate("window.micrecPage.recorderOptions = { token: 'forged.1.token' }")
    page.click("#record")
    wait_for(page, "document.getElementById('message').textContent !== ''")
    assert "invalid session token: reload the page" in page.text_content("#message")  # type: ignore[operator]
    wait_state(page, "stopped")
    assert page.is_enabled("#record") and not page.is_enabled("#stop")
    assert {p.name for p in server.directory.iterdir()} == before


# The waveform canvases, read back: per pixel column, the fraction of the height drawn in the
# waveform's colour (a sine at half scale spans half the height), -1 for a column left blank.
COLUMN_EXTENTS = """(canvas) => {
    const { width, height } = canvas;
    const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    const extents = [];
    for (let x = 0; x < width; x++) {
        let top = -1, bottom = -1;
        for (let y = 0; y < height; y++) {
            const i = (y * width + x) * 4;
            const wave = data[i + 3] > 200 && Math.abs(data[i] - 31) < 12 && Math.abs(data[i + 1] - 111) < 12
                && Math.abs(data[i + 2] - 180) < 12;
            if (wave) { if (top < 0) top = y; bottom = y; }
        }
        extents.push(top < 0 ? -1 : (bottom - top) / (height - 1));
    }
    return extents;
}"""


def extents(page: Any, selector: str) -> np.ndarray:
    return np.array(page.eval_on_selector(selector, COLUMN_EXTENTS))


def assert_tone_shape(columns: np.ndarray) -> None:
    """Each column shows the half-scale tone or the zero line (chromium pauses between loops of
    the fake microphone's file), and most show the tone."""
    tone_columns = np.abs(columns - 0.5) <= 0.08
    zero_columns = columns <= 0.03
    assert (tone_columns | zero_columns).mean() >= 0.97  # a few columns straddle an edge
    assert tone_columns.mean() >= 0.5


def test_waveforms_live_and_in_the_takes_list(page: Any, server: LiveServer, tmp_path: Path) -> None:
    assert (extents(page, "#live-wave") < 0.05).all()  # nothing but the zero line before a take
    page.click("#record")
    wait_state(page, "recording")
    wait_recorded(page, 1500)
    # Drawn now, and read with the amount of audio sent so far, in one go.
    live_now = page.evaluate(f"""() => {{ window.micrecPage.live.draw();
        return [({COLUMN_EXTENTS})(document.getElementById('live-wave')), window.micrecPage.recorder.sentFrames,
                window.micrecPage.recorder.context.sampleRate]; }}""")
    live, seconds = np.array(live_now[0]), live_now[1] / live_now[2]
    width = len(live)
    # The window is 4 s wide: the audio sent fills the newest seconds/4 of the columns with the
    # half-scale tone (the first block enters at the right and scrolls left); the rest is blank.
    drawn = np.flatnonzero(live >= 0)
    assert len(drawn) == pytest.approx(min(1, seconds / 4) * width, abs=2)
    assert drawn.max() == width - 1 and len(drawn) == drawn.max() - drawn.min() + 1
    assert_tone_shape(live[drawn])
    shot = _screenshot(page, tmp_path, "recorder-waveform.png")
    summary = finish(page)
    assert summary["error"] is None
    name = summary["take"]
    thumb = f"#takes canvas[data-take='{name}']"
    page.wait_for_selector(f"{thumb}[data-source='recorded']", timeout=WAIT_MS)
    recorded = extents(page, thumb)
    assert (recorded >= 0).all()  # the take fills the thumbnail from edge to edge
    assert_tone_shape(recorded)
    _screenshot(page, tmp_path, "recorder-thumbnails.png")

    # Loaded afresh, the page decodes the take itself (Web Audio) for the same picture.
    page.reload(timeout=WAIT_MS)
    page.wait_for_selector(f"{thumb}[data-source='decoded']", timeout=WAIT_MS)
    decoded = extents(page, thumb)
    assert (decoded >= 0).all()
    assert_tone_shape(decoded)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_take_the_browser_cannot_decode_gets_no_preview(page: Any, server: LiveServer) -> None:
    page.select_option("#encoder", "pcm16bits")
    page.click("#record")
    wait_state(page, "recording")
    wait_recorded(page, 300)
    name = finish(page)["take"]
    page.reload(timeout=WAIT_MS)
    thumb = f"#takes canvas[data-take='{name}']"
    page.wait_for_selector(f"{thumb}[data-source='none']", timeout=WAIT_MS)
    assert (extents(page, thumb) < 0.05).all()


def _screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """Save a screenshot (also to $MICREC_WEB_SCREENSHOTS, for a person to look at)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    keep = os.environ.get("MICREC_WEB_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    return shot
