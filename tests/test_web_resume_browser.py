"""A take that survives a dropped connection, in a real browser through a proxy that cuts it.

Debian's chromium (Playwright) records a fake microphone that plays band-limited noise: every
100 ms of it is unlike any other, so each 100 ms window of the server's file can be found in
the fed signal by cross-correlation (chromium resamples, so not bit-exact). A TCP proxy written
here (asyncio, 127.0.0.1) stands between page and server; it aborts every connection in the
middle of a take, refuses new ones for a few seconds, then lets them through again. The file
must hold the fed signal continuous across the cut: no gap, nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from test_web_browser import (
    CHROMIUM,
    chromium_with_mic,
    open_page,
    wait_for,
    wait_recorded,
    wait_state,
    write_fake_mic,
)
from test_web_helpers import WAIT, live_server

from audio import FeedTrack, ffmpeg_decode, ffprobe, have_ffmpeg, track_feed

pytest.importorskip("starlette")
pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]

from micrec import DeviceLostError  # noqa: E402
from micrec.web import Limits  # noqa: E402

RATE = 48000
MIC_SECONDS = 60  # longer than any take here: chromium pauses when it loops the file
#: Seconds the proxy refuses every connection: longer than the page's first retries.
OUTAGE_SECONDS = 3.0
#: Largest step between consecutive 100 ms windows of a continuous take (chromium's resampler
#: smears a window's position by a sample or two).
STEP_TOLERANCE = 48  # 1 ms
#: Chromium's fake microphone itself now and then repeats, skips or garbles about 10 ms (seen in
#: one run of three on a busy machine, and in the page's own copy of what it captured, so before
#: micrec). A take may show two such steps, or two windows that match the feed only in part; a
#: lost or repeated page frame is 20 ms, and a cut without resuming is seconds.
FAKE_MIC_GLITCH = 480 + 48
FAKE_MIC_GLITCHES = 2


def mic_signal(seconds: float = MIC_SECONDS, rate: int = RATE) -> npt.NDArray[np.int16]:
    """White noise low-passed below 12 kHz at about -12 dBFS: no two windows alike, nothing a resampler cuts."""
    rng = np.random.default_rng(2112)
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, int(seconds * rate)))
    spectrum[np.fft.rfftfreq(int(seconds * rate), 1 / rate) > 12000] = 0
    samples = np.fft.irfft(spectrum, int(seconds * rate))
    return np.round(samples / np.abs(samples).max() * 0.25 * 32767).astype(np.int16)


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to ``target`` that can cut every connection and refuse new ones."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.open = True
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Abort every connection (a reset, no close frame) and refuse new ones until :meth:`restore`."""
        self._call(self._cut())

    def restore(self, target: int | None = None) -> None:
        """Let connections through again (to another server's port, if given)."""
        self.target = target or self.target
        self.open = True

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(WAIT)

    async def _cut(self) -> None:
        self.open = False
        for writer in list(self._writers):
            writer.transport.abort()

    async def _shut(self) -> None:
        self._server.close()
        await self._cut()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))
            for w in (writer, up_writer):
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            writer.write_eof()


@pytest.fixture(scope="module")
def feed() -> npt.NDArray[np.int16]:
    return mic_signal()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, feed: npt.NDArray[np.int16]) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("chromium-resume")
    with chromium_with_mic(base, write_fake_mic(base / "noise.wav", RATE, feed)) as context:
        yield context


KEPT_FRAMES = """() => { const kept = window.micrecPage.recorder.kept;
    const bytes = new Uint8Array(kept.reduce((n, f) => n + f.byteLength, 0));
    let at = 0, text = "";
    for (const f of kept) { bytes.set(new Uint8Array(f.buffer), at); at += f.byteLength; }
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text); }"""


def start_take(page: Any) -> None:
    """Record at the page's own rate (so the WAV holds the samples it sent, bit-exact), keeping a copy."""
    rate = page.evaluate("(async () => { const c = new AudioContext(); const r = c.sampleRate; await c.close(); "
                         "return r; })()")
    page.select_option("#sample-rate", str(rate))
    page.evaluate("window.micrecPage.recorderOptions = { keep_frames: true }")
    page.click("#record")
    wait_state(page, "recording")


def page_audio(page: Any) -> npt.NDArray[np.int16]:
    """Every frame the page captured for the take, in order."""
    import base64

    return np.frombuffer(base64.b64decode(page.evaluate(KEPT_FRAMES)), dtype="<i2")


def captured(page: Any) -> int:
    return int(page.evaluate("window.micrecPage.recorder.sentFrames"))


def cut_for_a_while(page: Any, proxy: CuttingProxy, target: int | None = None) -> None:
    """Cut mid-take; the page keeps capturing and says so; the proxy opens again after the outage."""
    proxy.cut()
    wait_state(page, "reconnecting")
    assert "reconnecting" in page.text_content("#message")  # type: ignore[operator]
    assert page.is_enabled("#stop") and not page.is_enabled("#pause")
    before = captured(page)
    page.wait_for_timeout(OUTAGE_SECONDS * 1000)  # the outage itself (waits below follow the audio)
    assert captured(page) > before, "the page stopped capturing while its connection was down"
    proxy.restore(target)


def record_and_stop(page: Any, ms_after: float) -> dict[str, Any]:
    wait_state(page, "recording")
    wait_recorded(page, captured(page) * 1000 / RATE + ms_after)
    page.click("#stop")
    wait_for(page, "window.micrecPage.last !== null")
    summary: dict[str, Any] = page.evaluate("window.micrecPage.last")
    return summary


def assert_continuous(track: FeedTrack, seconds: float) -> None:
    """The windows follow each other in the feed: no gap, no repeat, every one found."""
    steps = track.steps()
    assert track.skipped <= 2, f"{track.skipped} leading windows match nothing"  # chromium's start-up silence
    assert len(track.positions) * track.window >= (seconds - 0.3) * RATE
    jumps = [(i, int(s)) for i, s in enumerate(steps) if abs(s) > STEP_TOLERANCE]
    glitches = [(i, s) for i, s in jumps if abs(s) <= FAKE_MIC_GLITCH]
    assert len(glitches) == len(jumps) <= FAKE_MIC_GLITCHES, \
        f"gaps (+) or repeats (-) of the feed, in samples, after window i: {jumps}"
    # The first window may hold chromium's start-up (the fake microphone fades in).
    scores = np.array(track.scores[1:])
    assert (scores < 0.9).sum() <= FAKE_MIC_GLITCHES and scores.min() >= 0.5, \
        f"windows unlike the feed: {[(i + 1, round(s, 2)) for i, s in enumerate(scores) if s < 0.9]}"


def test_a_take_cut_mid_way_resumes_as_one_continuous_file(browser: Any, feed: npt.NDArray[np.int16],
                                                          tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(drop_seconds=WAIT)) as server, \
            CuttingProxy(server.port) as proxy, open_page(browser, proxy.origin) as page:
        start_take(page)
        wait_recorded(page, 2000)
        name = page.evaluate("window.micrecPage.recorder.take")
        cut_for_a_while(page, proxy)
        assert not [e for e in server.events if e.data == "stopped"], "the take ended at the cut"
        summary = record_and_stop(page, 2000)
        page_frames = captured(page)
        page_rate = summary["rate"]  # the page's AudioContext rate (44.1 or 48 kHz)
        sent = page_audio(page)

        assert summary["error"] is None and summary["take"] == name
        assert page.evaluate("window.micrecPage.recorder.reconnects") >= 1 and proxy.connections >= 3
        assert server.wait_for_stopped(name).error is None
        assert [p.name for p in tmp_path.iterdir()] == [name]  # one file
        assert summary["frames"] == page_frames  # every frame the page captured, once
        probe = ffprobe(tmp_path / name)
        assert (probe.codec, probe.rate, probe.channels) == ("pcm_s16le", page_rate, 1)
        audio = ffmpeg_decode(tmp_path / name)[:, 0]
        assert len(sent) == page_frames and np.array_equal(audio, sent)  # what the page captured, bit-exact
        assert_continuous(track_feed(ffmpeg_decode(tmp_path / name, rate=RATE)[:, 0], feed), len(audio) / page_rate)


def test_stop_while_reconnecting_sends_the_rest_first(browser: Any, tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(drop_seconds=WAIT)) as server, \
            CuttingProxy(server.port) as proxy, open_page(browser, proxy.origin) as page:
        start_take(page)
        wait_recorded(page, 1000)
        proxy.cut()
        wait_state(page, "reconnecting")
        page.wait_for_timeout(1000)  # captured while the connection is down
        page.click("#stop")
        stopped_at = captured(page)
        page.wait_for_timeout(300)
        assert captured(page) == stopped_at, "the page kept capturing after Stop"
        proxy.restore()
        wait_for(page, "window.micrecPage.last !== null")
        summary = page.evaluate("window.micrecPage.last")
        assert summary["error"] is None and summary["frames"] == stopped_at
        wait_state(page, "stopped")
        assert np.array_equal(ffmpeg_decode(tmp_path / summary["take"])[:, 0], page_audio(page))


def test_a_paused_take_stays_paused_across_a_drop(browser: Any, tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(drop_seconds=WAIT)) as server, \
            CuttingProxy(server.port) as proxy, open_page(browser, proxy.origin) as page:
        start_take(page)
        wait_recorded(page, 1000)
        page.click("#pause")
        wait_state(page, "paused")
        paused_at = captured(page)
        proxy.cut()
        wait_state(page, "reconnecting")
        proxy.restore()
        wait_state(page, "paused")  # back, and still paused on both sides
        assert captured(page) == paused_at
        page.click("#resume")
        summary = record_and_stop(page, 1000)
        assert summary["error"] is None and summary["frames"] == captured(page)
        assert [e.data for e in server.events] == ["recording", "paused", "recording", "stopped"]  # one take
        assert np.array_equal(ffmpeg_decode(tmp_path / summary["take"])[:, 0], page_audio(page))


def test_a_take_whose_page_never_returns_is_saved_after_the_drop_limit(browser: Any, feed: npt.NDArray[np.int16],
                                                                      tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(drop_seconds=1.0)) as server, \
            CuttingProxy(server.port) as proxy, open_page(browser, proxy.origin) as page:
        page.click("#record")
        wait_state(page, "recording")
        wait_recorded(page, 1500)
        name = page.evaluate("window.micrecPage.recorder.take")
        proxy.cut()  # for good
        wait_state(page, "reconnecting")
        acked, page_rate = page.evaluate("[window.micrecPage.recorder.acked, "
                                         "window.micrecPage.recorder.context.sampleRate]")
        event = server.wait_for_stopped(name)
        assert isinstance(event.error, DeviceLostError) and "drop limit of 1 s" in str(event.error)
        audio = ffmpeg_decode(tmp_path / name)[:, 0]
        assert len(audio) >= acked * RATE / page_rate - 48  # at least what the server acknowledged
        assert_continuous(track_feed(audio, feed), len(audio) / RATE)


def test_a_reconnect_that_reaches_another_server_continues_as_a_second_part(
        browser: Any, feed: npt.NDArray[np.int16], tmp_path: Path) -> None:
    secret = secrets.token_bytes(32)
    with live_server(tmp_path / "a", secret=secret, limits=Limits(drop_seconds=1.0)) as a, \
            live_server(tmp_path / "b", secret=secret) as b, \
            CuttingProxy(a.port) as proxy, open_page(browser, proxy.origin) as page:
        page.click("#record")
        wait_state(page, "recording")
        wait_recorded(page, 2000)
        first = page.evaluate("window.micrecPage.recorder.take")
        cut_for_a_while(page, proxy, target=b.port)  # the balancer sends the reconnect elsewhere
        summary = record_and_stop(page, 2000)
        second = summary["take"]
        assert summary["error"] is None and second == first.replace(".wav", "-part2.wav")
        assert "goes on as " + second in page.text_content("#message")  # type: ignore[operator]
        assert "drop limit" in str(a.wait_for_stopped(first).error)  # part 1 saved with what arrived
        assert b.wait_for_stopped(second).error is None
        part1 = ffmpeg_decode(tmp_path / "a" / first)[:, 0]
        part2 = ffmpeg_decode(tmp_path / "b" / second)[:, 0]
        track1, track2 = track_feed(part1, feed), track_feed(part2, feed)
        assert_continuous(track1, len(part1) / RATE)
        assert_continuous(track2, len(part2) / RATE)
        assert track2.skipped == 0  # part 2 is the feed from its first sample
        # Part 2 begins where the page last saw part 1 acknowledged: at or before part 1's end
        # (no gap), overlapping by what part 1 took in after that (under half a second).
        end1 = track1.positions[-1] + track1.window + len(part1) % track1.window
        overlap = end1 - track2.positions[0]
        assert 0 <= overlap <= RATE // 2, overlap
