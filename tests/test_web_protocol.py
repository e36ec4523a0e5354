"""micrec.web over a plain WebSocket client: takes, pause, limits, faults and security.

A real uvicorn server runs in this process on 127.0.0.1 (ephemeral port); every file it writes
is judged with ffprobe/ffmpeg, not with micrec's own libraries.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from test_web_helpers import WAIT, Client, LiveServer, live_server

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, noise, peak_dbfs, rms_dbfs, tone

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
pytestmark = pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries")

from micrec import DeviceLostError  # noqa: E402
from micrec.web import Limits  # noqa: E402
from micrec.web.errors import LimitExceededError, ProtocolViolationError  # noqa: E402

RATE = 48000
FRAME_TOLERANCE_S = 0.021  # one 20 ms pipeline block


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("takes")) as srv:
        yield srv


def take_path(server: LiveServer, ended_or_name: object) -> Path:
    name = ended_or_name if isinstance(ended_or_name, str) else ended_or_name.summary["take"]  # type: ignore[attr-defined]
    return server.directory / name


def files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


# -- takes that work ------------------------------------------------------------------------
def test_take_is_resampled_and_remixed_into_the_configured_format(server: LiveServer) -> None:
    client = Client(server)
    started = client.start(44100, 2, audio_encoder="flac", sample_rate=48000, channels_num=1)
    assert started["type"] == "started" and started["sample_rate"] == 48000
    assert re.fullmatch(r"take-\d{8}-\d{6}-[0-9a-f]{6}\.flac", started["take"])
    stereo = np.column_stack([tone(440, 1.5, 44100), tone(440, 1.5, 44100)])
    client.send_audio(stereo, 44100)
    ended = client.stop()

    assert (ended.code, ended.summary["error"], ended.summary["overflows"]) == (1000, None, 0)
    assert [m["state"] for m in ended.of_type("state")] == ["recording", "stopped"]
    path = take_path(server, ended)
    probe = ffprobe(path)
    assert (probe.codec, probe.rate, probe.channels) == ("flac", 48000, 1)
    assert probe.duration == pytest.approx(1.5, abs=FRAME_TOLERANCE_S)
    assert probe.duration == pytest.approx(ended.summary["duration_ms"] / 1000, abs=FRAME_TOLERANCE_S)
    audio = ffmpeg_decode(path)
    assert dominant_frequency(audio, 48000) == pytest.approx(440, abs=3)
    assert peak_dbfs(audio) == pytest.approx(-6.0, abs=0.3)
    assert server.wait_for_stopped(path.name).error is None


CODEC_NAMES = {"aacLc": "aac", "aacHe": "aac", "aacEld": "aac", "amrNb": "amr_nb", "amrWb": "amr_wb",
               "opus": "opus", "flac": "flac", "wav": "pcm_s16le", "pcm16bits": None}


@pytest.mark.parametrize("codec", list(CODEC_NAMES))
def test_every_encoder_records_a_browser_stream(server: LiveServer, codec: str) -> None:
    from micrec import AudioEncoder
    from micrec.encoders import unavailable_reason

    reason = unavailable_reason(AudioEncoder(codec))
    if reason is not None:
        pytest.skip(reason)
    client = Client(server)
    started = client.start(44100, 1, audio_encoder=codec, sample_rate=48000, channels_num=1)
    client.send_audio(tone(1000, 1.0, 44100), 44100)
    path = take_path(server, client.stop())
    rate = started["sample_rate"]  # the encoder's nearest admitted rate (AMR: 8 or 16 kHz)
    if CODEC_NAMES[codec] is None:  # raw PCM: no header to probe
        audio = ffmpeg_decode(path, input_format=["-f", "s16le", "-ar", str(rate), "-ac", "1"])
    else:
        probe = ffprobe(path)
        assert (probe.codec, probe.rate) == (CODEC_NAMES[codec], rate)
        audio = ffmpeg_decode(path)
    assert len(audio) / rate == pytest.approx(1.0, abs=0.12)  # lossy codecs pad to whole frames
    assert dominant_frequency(audio, rate) == pytest.approx(1000, abs=5)


def test_wav_at_the_client_rate_is_bit_exact(server: LiveServer) -> None:
    client = Client(server)
    client.start(RATE, 1, audio_encoder="wav", sample_rate=RATE, channels_num=1)
    rng = np.random.default_rng(7)
    sent = rng.integers(-20000, 20000, RATE, dtype=np.int16)
    client.send_audio(sent, RATE, frame_ms=7)  # frames that do not line up with the blocks
    ended = client.stop()
    received = ffmpeg_decode(take_path(server, ended)).ravel()
    assert np.array_equal(received, sent)


def test_level_messages_report_the_amplitude(server: LiveServer) -> None:
    client = Client(server)
    client.start(RATE, 1)
    client.send_audio(tone(1000, 1.0, RATE, amplitude=0.25), RATE)
    level = None
    while level is None:  # levels are sent every 0.1 s while the take is open
        message = client.receive()
        level = message if message["type"] == "level" and message["current"] > -160 else None
    ended = client.stop()
    assert level["max"] == pytest.approx(-12.0, abs=0.3)
    assert ended.summary["error"] is None


def test_paused_audio_is_left_out(server: LiveServer) -> None:
    client = Client(server)
    client.start(RATE, 1, audio_encoder="wav", sample_rate=RATE)
    client.send_audio(tone(440, 0.5, RATE), RATE)
    client.command("pause")
    client.send_audio(tone(3000, 0.5, RATE), RATE)  # sent while paused: must not be recorded
    client.command("resume")
    client.send_audio(tone(660, 0.5, RATE), RATE)
    ended = client.stop()

    assert [m["state"] for m in ended.of_type("state")] == ["recording", "paused", "recording", "stopped"]
    audio = ffmpeg_decode(take_path(server, ended)).ravel()
    assert len(audio) / RATE == pytest.approx(1.0, abs=FRAME_TOLERANCE_S)
    first, second = audio[: RATE // 2 - 480], audio[RATE // 2 + 480:]
    assert dominant_frequency(first, RATE) == pytest.approx(440, abs=3)
    assert dominant_frequency(second, RATE) == pytest.approx(660, abs=3)
    spectrum = np.abs(np.fft.rfft(audio.astype(float)))
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    assert spectrum[np.abs(freqs - 3000) < 20].max() < spectrum.max() / 1000


def test_dsp_flags_process_the_take_as_a_local_recorder_does(server: LiveServer, tmp_path: Path) -> None:
    """suppress_noise + auto_gain: the web take equals a local AudioRecorder's with the same flags."""
    pytest.importorskip("pywebrtc_audio")
    from micrec import AudioRecorder
    from micrec.backends import TestBackend

    signal = (tone(440, 1.5, RATE, amplitude=0.1) + noise(1.5, RATE, amplitude=3000)).astype(np.int16)
    local = AudioRecorder(sample_rate=RATE, channels_num=1, suppress_noise=True, auto_gain=True,
                          backend=TestBackend(signal, rate=RATE, realtime=False, after_end="stop"))
    local.start_recording(tmp_path / "local.wav")
    assert local.backend.wait_done(WAIT)  # type: ignore[union-attr]
    local.stop_recording()
    client = Client(server)
    started = client.start(RATE, 1, sample_rate=RATE, suppress_noise=True, auto_gain=True, cancel_echo=True)
    assert started["server_dsp"] == ["auto_gain", "suppress_noise"]  # echo: the browser's job
    client.send_audio(signal, RATE)
    web = ffmpeg_decode(take_path(server, client.stop())).ravel()
    reference = ffmpeg_decode(tmp_path / "local.wav").ravel()
    assert len(web) == len(reference) == len(signal)
    assert np.array_equal(web, reference)
    change = rms_dbfs(web[-RATE // 2:].astype(np.int32) - signal[-RATE // 2:])
    assert change > -30, f"the flags changed nothing ({change:.1f} dBFS)"


# -- refusals before a take -----------------------------------------------------------------
@pytest.mark.parametrize(("token", "reason"), [("", "no session token"),
                                               ("abc.123.forged", "invalid session token")])
def test_bad_token_is_refused(server: LiveServer, token: str, reason: str) -> None:
    before = files(server.directory)
    client = Client(server, token=token)
    ended = client.finish()
    assert (ended.code, ended.of_type("error")[0]["code"]) == (1008, 1008)
    assert reason in ended.reason
    assert files(server.directory) == before


def test_forged_signature_of_a_real_token_is_refused(server: LiveServer) -> None:
    token = server.token()
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert "invalid session token" in Client(server, token=forged).finish().reason


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1", "null"])
def test_foreign_origin_is_refused(server: LiveServer, origin: str) -> None:
    ended = Client(server, origin=origin).finish()
    assert ended.code == 1008 and "origin" in ended.reason and "not allowed" in ended.reason


def test_foreign_host_header_is_refused(server: LiveServer) -> None:
    """DNS rebinding: a page whose name resolves to 127.0.0.1 gets no page and no token."""
    import httpx

    response = httpx.get(server.origin + "/", headers={"Host": "evil.example"}, timeout=WAIT)
    assert response.status_code == 400


@pytest.mark.parametrize(("start", "code", "reason"), [
    ({"rate": 192001, "channels": 1}, 1008, "rate 192001 Hz is outside 8000..96000"),
    ({"rate": 48000, "channels": 3}, 1008, "channels 3 is outside 1..2"),
    ({"rate": "48000", "channels": 1}, 1007, "whole number 'rate'"),
    ({"rate": 48000, "channels": 1, "audio_encoder": "mp3"}, 1008, "audio_encoder 'mp3' is not one of"),
    ({"rate": 48000, "channels": 1, "sample_rate": 4000}, 1008, "sample_rate=4000 is outside"),
])
def test_bad_start_is_refused_and_leaves_no_file(server: LiveServer, start: dict[str, object], code: int,
                                                 reason: str) -> None:
    before = files(server.directory)
    client = Client(server)
    client.ws.send(json.dumps({"type": "start", **start}))
    ended = client.finish()
    assert ended.code == code
    assert reason in ended.reason and reason in ended.of_type("error")[0]["message"]
    assert files(server.directory) == before


def test_audio_before_start_is_refused(server: LiveServer) -> None:
    client = Client(server)
    client.ws.send(b"\x00\x00" * 100)
    ended = client.finish()
    assert ended.code == 1007 and "must be a text start message" in ended.reason


# -- faults during a take: the file is finalized and STOPPED carries the error --------------
def _take_then(server: LiveServer, seconds: float = 0.5) -> Client:
    client = Client(server)
    client.start(RATE, 1, audio_encoder="wav", sample_rate=RATE)
    client.send_audio(tone(440, seconds, RATE), RATE)
    return client


def _assert_finalized(server: LiveServer, ended_name: str, seconds: float) -> None:
    path = server.directory / ended_name
    probe = ffprobe(path)
    assert probe.duration == pytest.approx(seconds, abs=FRAME_TOLERANCE_S)
    assert dominant_frequency(ffmpeg_decode(path), RATE) == pytest.approx(440, abs=3)


def test_oversized_frame_ends_the_take(server: LiveServer) -> None:
    client = _take_then(server)
    client.ws.send(b"\x00\x00" * 20000)  # 40000 bytes > 32 KiB
    ended = client.finish()
    assert ended.code == 1009 and "frame of 40000 bytes is over the limit of 32768" in ended.reason
    assert ended.summary["error"] == ended.reason
    assert ended.of_type("state")[-1] == {"type": "state", "state": "stopped", "error": ended.reason}
    _assert_finalized(server, ended.summary["take"], 0.5)
    event = server.wait_for_stopped(ended.summary["take"])
    assert isinstance(event.error, LimitExceededError) and event.error.value == 40000


@pytest.mark.parametrize("payload", [b"\x01\x02\x03", b""])
def test_malformed_frame_ends_the_take(server: LiveServer, payload: bytes) -> None:
    client = _take_then(server)
    client.ws.send(payload)
    ended = client.finish()
    assert ended.code == 1007 and "malformed frame" in ended.reason
    _assert_finalized(server, ended.summary["take"], 0.5)
    assert isinstance(server.wait_for_stopped(ended.summary["take"]).error, ProtocolViolationError)


@pytest.mark.parametrize(("text", "reason"), [("not json", "not JSON"), ('{"type": "rewind"}', "unknown command")])
def test_malformed_command_ends_the_take(server: LiveServer, text: str, reason: str) -> None:
    client = _take_then(server)
    client.ws.send(text)
    ended = client.finish()
    assert ended.code == 1007 and reason in ended.reason
    _assert_finalized(server, ended.summary["take"], 0.5)


@pytest.mark.parametrize("drop_seconds", [0.0, 0.5])
def test_dropped_connection_finalizes_the_take(tmp_path: Path, drop_seconds: float) -> None:
    with live_server(tmp_path, limits=Limits(drop_seconds=drop_seconds)) as server:
        client = _take_then(server, 0.7)
        name = client.messages[0]["take"]
        # A vanished peer's unread bytes are discarded by the kernel (the close is a RST), so drop
        # only once the server's level messages say it has taken in all 0.7 s.
        while not (client.messages[-1]["type"] == "level" and client.messages[-1]["duration_ms"] >= 700):
            client.receive()
        client.drop()
        event = server.wait_for_stopped(name)  # at once, or once the browser did not come back
        assert isinstance(event.error, DeviceLostError) and "disconnected mid-take" in str(event.error)
        assert ("did not reconnect within the drop limit of 0.5 s" in str(event.error)) == (drop_seconds > 0)
        _assert_finalized(server, name, 0.7)


def test_a_fault_on_the_server_ends_the_take_without_waiting_for_stop(server: LiveServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from micrec import OutputError
    from micrec.encoders.wav import WavEncoder

    real_write, blocks = WavEncoder.write, [0]

    def disk_fills_after_five_blocks(self: WavEncoder, block: np.ndarray) -> None:
        blocks[0] += 1
        if blocks[0] > 5:
            raise OutputError("No space left on device (simulated)", path=self.path)
        real_write(self, block)

    monkeypatch.setattr(WavEncoder, "write", disk_fills_after_five_blocks)
    client = _take_then(server, 0.6)
    ended = client.finish()  # no stop sent: the server ends the take itself
    assert ended.code == 1011 and "No space left on device" in ended.reason
    assert ended.of_type("state")[-1]["state"] == "stopped"
    name = ended.summary["take"]
    assert isinstance(server.wait_for_stopped(name).error, OutputError)
    written = 5 * ended.summary["rate"] * 50 // 1000  # five 50 ms blocks reached the disk
    assert len(ffmpeg_decode(server.directory / name)) == written


def test_stereo_frame_of_odd_width_is_malformed(server: LiveServer) -> None:
    client = Client(server)
    client.start(RATE, 2, channels_num=2)
    client.ws.send(b"\x00" * 6)  # 1.5 stereo frames
    ended = client.finish()
    assert ended.code == 1007 and "2-channel" in ended.reason


# -- limits that need their own server ------------------------------------------------------
def test_take_length_limit_saves_up_to_the_limit(tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(max_take_seconds=0.6)) as srv:
        client = _take_then(srv, 1.0)
        ended = client.finish()
        assert ended.code == 1008 and "limit of 0.6 s; it was saved" in ended.reason
        _assert_finalized(srv, ended.summary["take"], 0.6)


def test_client_faster_than_real_time_is_refused(tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(burst_seconds=1.0)) as srv:
        client = _take_then(srv, 6.0)  # six seconds of audio at once: no microphone does that
        ended = client.finish()
        assert ended.code == 1008 and "ahead of real time" in ended.reason
        duration = ffprobe(tmp_path / ended.summary["take"]).duration
        assert 1.0 <= duration < 6.0


def test_no_start_message_times_out(tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(start_timeout=0.3)) as srv:
        ended = Client(srv).finish()
        assert ended.code == 1008 and "no start message within 0.3 s" in ended.reason


def test_a_silent_client_counts_as_gone_but_a_paused_one_does_not(tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(idle_seconds=0.3)) as srv:
        client = _take_then(srv, 0.5)
        client.command("pause")
        while client.receive() != {"type": "state", "state": "paused", "error": None}:
            pass
        time.sleep(0.6)  # paused: the take stays open however long the silence
        client.command("resume")
        ended = client.finish()  # ... and ends once recording with no audio
        assert ended.code == 1001 and "no audio from the browser for 0.3 s" in ended.reason
        assert [m["state"] for m in ended.of_type("state")][-2:] == ["recording", "stopped"]
        assert isinstance(srv.wait_for_stopped(ended.summary["take"]).error, DeviceLostError)
        _assert_finalized(srv, ended.summary["take"], 0.5)


def test_too_many_takes_are_told_to_retry(tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(max_takes=1)) as srv:
        first = Client(srv)
        first.start(RATE, 1)
        ended = Client(srv).finish()
        assert ended.code == 1013 and "server busy" in ended.reason
        assert first.stop().summary["error"] is None


# -- the takes list and files -----------------------------------------------------------------
def test_takes_are_listed_and_served_only_by_name_and_token(server: LiveServer) -> None:
    import httpx

    client = _take_then(server, 0.3)
    name = client.stop().summary["take"]
    token = client.token  # the visitor who recorded it (another one sees nothing: test_web_store.py)
    listing = httpx.get(f"{server.origin}/api/takes", params={"token": token}, timeout=WAIT).json()
    assert name in [t["name"] for t in listing]
    served = httpx.get(f"{server.origin}/takes/{name}", params={"token": token, "download": "1"},
                       timeout=WAIT)
    assert served.status_code == 200 and served.content == (server.directory / name).read_bytes()
    assert f'filename="{name}"' in served.headers["content-disposition"]
    assert httpx.get(f"{server.origin}/api/takes", timeout=WAIT).status_code == 403
    assert httpx.get(f"{server.origin}/takes/{name}", timeout=WAIT).status_code == 403
    (server.directory / "secret.txt").write_text("not a take")
    for bad in ("secret.txt", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", f"..%2F{server.directory.name}%2F{name}"):
        response = httpx.get(f"{server.origin}/takes/{bad}", params={"token": token}, timeout=WAIT)
        assert response.status_code == 404, bad


def test_workers_sharing_the_secret_accept_each_others_tokens(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """What `micrec serve --workers N` relies on: apps built by app_from_env with one secret."""
    from micrec.web.app import app_from_env

    monkeypatch.setenv("MICREC_WEB_DIR", str(tmp_path))
    monkeypatch.setenv("MICREC_WEB_SECRET", "ab" * 32)
    first, second = LiveServer(app_from_env(), tmp_path).start(), LiveServer(app_from_env(), tmp_path).start()
    try:
        client = Client(second, token=first.token())
        client.start(RATE, 1)
        client.send_audio(tone(440, 0.3, RATE), RATE)
        assert client.stop().summary["error"] is None
        monkeypatch.setenv("MICREC_WEB_SECRET", "cd" * 32)
        other = LiveServer(app_from_env(), tmp_path).start()
        try:
            assert "invalid session token" in Client(other, token=first.token()).finish().reason
        finally:
            other.stop()
    finally:
        first.stop()
        second.stop()


def test_the_app_works_mounted_under_a_prefix(tmp_path: Path) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from micrec.web import create_app

    parent = Starlette(routes=[Mount("/rec", app=create_app(tmp_path))])
    server = LiveServer(parent, tmp_path).start()
    try:
        page = httpx.get(server.origin + "/rec/", timeout=WAIT).text
        assert '<base href="/rec/">' in page
        script = httpx.get(server.origin + "/rec/static/micrec.js", timeout=WAIT)
        assert script.status_code == 200
        client = Client(server, token=server.token("/rec/"), url=f"ws://127.0.0.1:{server.port}/rec/ws")
        client.start(RATE, 1)
        client.send_audio(tone(440, 0.3, RATE), RATE)
        name = client.stop().summary["take"]
        assert (tmp_path / name).is_file()
    finally:
        server.stop()
