"""micrec.web under hostile or broken clients: the server never falls over, never leaves a file for
a refused take, saves every accepted one, and keeps serving everyone else.

Seeded random input (so a failure replays), bounded in count and time, on 127.0.0.1 only. Every
accepted take is judged by decoding its file with ffprobe/ffmpeg.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from test_web_helpers import WAIT, Client, Ended, LiveServer, live_server

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, tone

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
pytestmark = pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries")

from micrec.web import Limits  # noqa: E402

RATE = 48000
START_TIMEOUT = 2.0
LIMITS = Limits(start_timeout=START_TIMEOUT, idle_seconds=5.0, drop_seconds=0.5)  # a dropped take waits 0.5 s
FULL_START = {"type": "start", "rate": RATE, "channels": 1, "audio_encoder": "wav", "sample_rate": RATE,
              "channels_num": 1, "bit_rate": 64000, "auto_gain": False, "suppress_noise": False,
              "cancel_echo": False}
REFUSAL_CODES = {1007, 1008, 1009, 1013}


class ErrorLog(logging.Handler):
    """Collects ERROR records of the server's loggers (an exception in the app is one)."""

    # Not "micrec": a session logs the fault that ended its take there, which is expected here.
    LOGGERS = ("uvicorn", "uvicorn.error", "micrec.web", "asyncio", "websockets")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    for name in ErrorLog.LOGGERS:
        logging.getLogger(name).addHandler(handler)
    try:
        yield handler
    finally:
        for name in ErrorLog.LOGGERS:
            logging.getLogger(name).removeHandler(handler)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, errors: ErrorLog) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("fuzz"), limits=LIMITS) as srv:
        yield srv


@pytest.fixture(scope="module")
def token(server: LiveServer) -> str:
    return server.token()  # one page load; a token serves any number of connections


@pytest.fixture(autouse=True)
def server_stays_well(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: no error logged, the server thread alive, every take finalized and closed."""
    yield
    if "server" not in request.fixturenames:
        return
    server: LiveServer = request.getfixturevalue("server")
    errors: ErrorLog = request.getfixturevalue("errors")
    state = server.app.state.micrec
    deadline = time.monotonic() + WAIT
    while state.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not state.connections, f"{len(state.connections)} connections still open"
    assert server._thread is not None and server._thread.is_alive()
    assert not errors.records, errors.text()
    taken = {Path(e.path).name for e in server.events if e.data == "recording"}
    stopped = {Path(e.path).name for e in server.events if e.data == "stopped"}
    assert taken == stopped, f"takes never stopped: {taken - stopped}"
    assert {p.name for p in server.directory.iterdir()} == taken  # no file for a refused take


def files(server: LiveServer) -> set[str]:
    return {p.name for p in server.directory.iterdir()}


def send_quietly(client: Client, message: str | bytes) -> bool:
    """Send, or False if the server closed the connection already."""
    from websockets.exceptions import ConnectionClosed

    try:
        client.ws.send(message)
    except ConnectionClosed:
        return False
    return True


def assert_refused(ended: Ended, before: set[str], server: LiveServer) -> None:
    assert ended.code in REFUSAL_CODES, (ended.code, ended.reason)
    assert ended.reason
    assert not ended.of_type("started")
    assert files(server) == before


def assert_saved(server: LiveServer, name: str, seconds: float | None = None, frequency: float | None = None,
                 tolerance: float = 0.021) -> None:
    """The take's file is finalized (decodes whole) and its STOPPED event was sent."""
    event = server.wait_for_stopped(name)
    path = server.directory / name
    if path.suffix == ".pcm":
        audio = np.fromfile(path, dtype="<i2")
        rate = RATE
    else:
        probe = ffprobe(path)
        audio, rate = ffmpeg_decode(path), probe.rate
    if seconds is not None:
        assert len(audio) / rate == pytest.approx(seconds, abs=tolerance), (name, event.error)
    if frequency is not None:
        assert dominant_frequency(audio, rate) == pytest.approx(frequency, abs=3)


def a_normal_take(server: LiveServer, token: str, frequency: float = 440.0) -> None:
    client = Client(server, token=token)
    assert client.start(RATE, 1, audio_encoder="wav", sample_rate=RATE)["type"] == "started"
    client.send_audio(tone(frequency, 0.4, RATE), RATE)
    ended = client.stop()
    assert (ended.code, ended.summary["error"]) == (1000, None)
    assert_saved(server, ended.summary["take"], 0.4, frequency)


# -- the first message --------------------------------------------------------------------------
def random_first_messages(rng: random.Random) -> Iterator[str | bytes]:
    full = json.dumps(FULL_START)
    for _ in range(12):
        yield rng.randbytes(rng.randint(0, 3000))
    for _ in range(8):
        yield "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 200)))
    for _ in range(10):
        yield full[: rng.randint(0, len(full) - 1)]  # truncated JSON
    yield from ("", "[]", "1", "null", '"start"', "{}", '{"type": 5}', '{"type": null}', '{"type": ["start"]}',
                '{"type": "stop"}', '{"type": "pause"}', "[" * 200_000, '{"a":' * 50_000, "9" * 5000,
                '{"type": "start", "rate": 1e400, "channels": 1}', '{"type": "start", "rate": NaN, "channels": 1}',
                '{"type": "start", "rate": -48000, "channels": 1}', '{"type": "start", "rate": 48000, "channels": 0}',
                '{"type": "start", "rate": 48000, "channels": 1, "sample_rate": ' + "9" * 4000 + "}")


def test_random_first_messages_are_refused_and_leave_no_file(server: LiveServer, token: str) -> None:
    rng = random.Random(1101)
    for message in random_first_messages(rng):
        before = files(server)
        client = Client(server, token=token)
        assert send_quietly(client, message)
        ended = client.finish()
        assert_refused(ended, before, server)
        error = ended.of_type("error")
        assert error and len(error[0]["message"]) < 300, error  # a readable reason, not an echo
    a_normal_take(server, token)


WRONG_TYPES: list[tuple[str, Any]] = [
    *[("rate", v) for v in ("48000", 48000.5, None, [], {}, True)],
    *[("channels", v) for v in ("1", 1.0, None, [1], {"n": 1}, False)],
    *[("audio_encoder", v) for v in (1, None, [], {}, True, "", "WAV", "x" * 500_000)],
    *[(key, v) for key in ("sample_rate", "channels_num", "bit_rate")
      for v in ("48000", 48000.5, None, [], {}, True, -1, 0)],
    *[(key, 10**30) for key in ("sample_rate", "channels_num")],
    *[(key, v) for key in ("auto_gain", "suppress_noise", "cancel_echo") for v in ("no", 0, 1, None, [], {})],
    *[("until_silence", v) for v in ("2", True, [], {}, -1, 0)],
]


@pytest.mark.parametrize(("key", "value"), WRONG_TYPES, ids=[f"{k}={str(v)[:12]}" for k, v in WRONG_TYPES])
def test_a_start_with_a_field_of_the_wrong_type_is_refused(server: LiveServer, token: str, key: str,
                                                          value: Any) -> None:
    before = files(server)
    client = Client(server, token=token)
    client.ws.send(json.dumps({**FULL_START, key: value}))
    ended = client.finish()
    assert_refused(ended, before, server)
    assert key in ended.reason and len(ended.reason.encode()) <= 123


def test_oversized_messages_are_refused(server: LiveServer, token: str) -> None:
    before = files(server)
    client = Client(server, token=token)
    client.ws.send(json.dumps({**FULL_START, "padding": "x" * (1 << 20)}))  # over uvicorn's 1 MiB ws_max_size
    ended = client.finish()
    # uvicorn closes with 1009 at once; when that lands while the client is still writing, the
    # reset that follows can beat the close frame to the client (code None).
    assert ended.code in (1009, None) and files(server) == before
    # Under the limit, a start that is mostly padding is just a start: the padding is ignored.
    client = Client(server, token=token)
    client.ws.send(json.dumps({**FULL_START, "padding": "x" * 900_000}))
    assert client.receive()["type"] == "started"
    client.send_audio(tone(440, 0.2, RATE), RATE)
    client.ws.send(b"\x00" * (1 << 20) + b"\x00\x00")  # an audio frame over ws_max_size
    ended = client.finish()
    assert ended.code in (1009, None)
    # Saved, with what uvicorn handed over: it drops the frames that came in the same read as
    # the oversized one (its sans-I/O protocol stops at the parser error).
    name = ended.messages[0]["take"]
    assert_saved(server, name)
    assert len(ffmpeg_decode(server.directory / name)) <= 0.2 * RATE


# -- during a take --------------------------------------------------------------------------------
def test_random_sessions_save_every_accepted_take(server: LiveServer, token: str) -> None:
    from micrec import AudioEncoder
    from micrec.encoders import unavailable_reason

    rng = random.Random(1105)
    codecs = [c for c in ("wav", "flac", "pcm16bits", "opus", "aacLc") if unavailable_reason(AudioEncoder(c)) is None]
    for _ in range(20):
        channels = rng.choice((1, 2))
        rate = rng.choice((8000, 16000, 44100, 48000, 96000))
        client = Client(server, token=token)
        started = client.start(rate, channels, audio_encoder=rng.choice(codecs), sample_rate=RATE,
                               channels_num=1)
        assert started["type"] == "started", started
        name, dropped, sent_frames = started["take"], False, rate // 50
        client.ws.send(rng.randbytes(sent_frames * 2 * channels))  # some audio first (see test_an_empty_take...)
        for _ in range(rng.randint(1, 25)):
            op = rng.choice(("audio", "audio", "audio", "empty", "odd", "text", "bytes", "pause", "resume",
                             "stop", "drop", "start-again"))
            if op == "audio":
                frames = rng.randint(1, 4000)
                message: str | bytes = rng.randbytes(frames * 2 * channels)
                sent_frames += frames
            elif op == "empty":
                message = b""
            elif op == "odd":
                message = rng.randbytes(rng.randrange(1, 4000, 2) if channels == 1 else rng.randint(1, 3) + 4 * 50)
            elif op == "text":
                message = "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 50)))
            elif op == "bytes":
                message = rng.randbytes(rng.randint(1, 40000))
                if len(message) <= LIMITS.max_frame_bytes and len(message) % (2 * channels) == 0:
                    sent_frames += len(message) // (2 * channels)  # by chance a valid frame
            elif op == "drop":
                client.drop()
                dropped = True
                break
            elif op == "start-again":
                message = json.dumps(FULL_START)
            else:
                message = json.dumps({"type": op})
            if not send_quietly(client, message):
                break
        if dropped:
            assert_saved(server, name)
            continue
        send_quietly(client, json.dumps({"type": "stop"}))
        ended = client.finish()
        assert ended.code in {1000, 1007, 1008, 1009}, (ended.code, ended.reason)
        assert ended.summary["take"] == name
        recorded = ended.summary["duration_ms"] / 1000
        assert ended.summary["frames"] <= sent_frames
        tolerance = 0.021 if not name.endswith((".opus", ".ogg", ".m4a", ".aac")) else 0.12
        assert_saved(server, name, recorded, tolerance=tolerance)
    a_normal_take(server, token)


def test_a_pause_resume_storm_records_exactly_the_resumed_audio(server: LiveServer, token: str) -> None:
    client = Client(server, token=token)
    client.start(RATE, 1, audio_encoder="wav", sample_rate=RATE)
    chunk = tone(600, 0.01, RATE)  # 6 whole periods: the chunks join without a seam
    for _ in range(100):
        client.command("pause")
        client.ws.send(tone(3000, 0.01, RATE).tobytes())  # paused: left out
        client.command("resume")
        client.ws.send(chunk.tobytes())
    for _ in range(50):
        client.command("resume")  # resume while recording, pause while paused: no effect
    ended = client.stop()
    assert (ended.summary["error"], ended.summary["overflows"]) == (None, 0)
    states = [m["state"] for m in ended.of_type("state")]
    assert states == ["recording"] + ["paused", "recording"] * 100 + ["stopped"]
    audio = ffmpeg_decode(server.directory / ended.summary["take"]).ravel()
    assert len(audio) == 100 * len(chunk)
    assert np.array_equal(audio, np.tile(chunk, 100))  # exactly the resumed chunks, in order


# -- many and slow clients ------------------------------------------------------------------------
async def _hold_without_start(server: LiveServer, token: str, count: int) -> list[tuple[int | None, str]]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def one() -> tuple[int | None, str]:
        async with connect(f"{server.ws_url}?token={token}", origin=server.origin, proxy=None,  # type: ignore[arg-type]
                           open_timeout=WAIT, close_timeout=WAIT, ping_interval=None) as ws:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 3 * WAIT)
            except ConnectionClosed as closed:
                return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")

    return list(await asyncio.gather(*(one() for _ in range(count))))


def test_200_connections_that_never_start_do_not_keep_others_out(server: LiveServer, token: str) -> None:
    before = files(server)
    result: list[tuple[int | None, str]] = []
    holder = threading.Thread(target=lambda: result.extend(asyncio.run(_hold_without_start(server, token, 200))))
    holder.start()
    try:
        deadline = time.monotonic() + WAIT
        while len(server.app.state.micrec.connections) < 200 and holder.is_alive():
            assert time.monotonic() < deadline, "the 200 connections did not open"
            time.sleep(0.02)
        a_normal_take(server, token, 520.0)  # while all 200 wait
    finally:
        holder.join(3 * WAIT)
    assert len(result) == 200
    assert set(result) == {(1008, f"no start message within {START_TIMEOUT:g} s")}
    assert len(files(server) - before) == 1  # the normal take only


def test_a_client_that_stops_reading_is_dropped_and_its_take_saved(tmp_path: Path, errors: ErrorLog,
                                                                   caplog: pytest.LogCaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from websockets.sync.client import connect

    import micrec.web.handler as handler

    monkeypatch.setattr(handler, "SEND_TIMEOUT", 1.0)
    # The server's socket buffer is kept small, so that its sends back up into its own queue after
    # some 200 kB that the client never reads. (Shrinking the client's receive buffer instead
    # makes loopback TCP drop the segments that carry the server's ACKs: the client's own sends
    # then stall in retransmission back-off, which is not what a browser that stops reading does.)
    with live_server(tmp_path, send_buffer=4096, limits=LIMITS) as server, \
            caplog.at_level(logging.INFO, logger="micrec.web"):
        token = server.token()
        ws = connect(f"{server.ws_url}?token={token}", origin=server.origin, proxy=None, max_queue=1,
                     open_timeout=WAIT, close_timeout=1, ping_interval=None).__enter__()
        ws.send(json.dumps({**FULL_START, "audio_encoder": "flac"}))
        name = json.loads(ws.recv(timeout=WAIT))["take"]
        audio = tone(700, 1.0, RATE)
        for start in range(0, RATE // 2, 960):
            ws.send(audio[start:start + 960].tobytes())
        dropped = f"{name}: the client stopped reading"

        def logged_dropped() -> bool:
            return any(dropped in m for m in caplog.messages)

        # Rounds of 2000 state messages (about 130 kB) that nobody reads, until the server's
        # sends back up for longer than SEND_TIMEOUT: how much the kernel's buffers absorb
        # first varies from run to run (loopback's receive window grows on its own).
        deadline = time.monotonic() + WAIT
        while not logged_dropped():
            assert time.monotonic() < deadline, "the server kept sending to a client that never reads"
            for _ in range(1000):
                ws.send('{"type": "pause"}')
                ws.send('{"type": "resume"}')
            wait_until = time.monotonic() + 3 * handler.SEND_TIMEOUT
            while not logged_dropped() and time.monotonic() < wait_until:
                time.sleep(0.05)
        for start in range(RATE // 2, RATE, 960):
            ws.send(audio[start:start + 960].tobytes())
        a_normal_take(server, token, 800.0)  # meanwhile, others are served
        ws.send('{"type": "stop"}')
        assert_saved(server, name, 1.0, 700)
        deadline = time.monotonic() + WAIT
        while any(t.name == name for t in server.app.state.micrec.connections):
            assert time.monotonic() < deadline, "the server still holds the connection of a client that never reads"
            time.sleep(0.05)
        assert not errors.records, errors.text()
        ws.close_socket()


@pytest.mark.parametrize("codec", ["wav", "flac", "aacLc", "opus"])
def test_an_empty_take_is_still_a_valid_file(server: LiveServer, token: str, codec: str) -> None:
    from micrec import AudioEncoder
    from micrec.encoders import unavailable_reason

    reason = unavailable_reason(AudioEncoder(codec))
    if reason is not None:
        pytest.skip(reason)
    client = Client(server, token=token)
    assert client.start(RATE, 1, audio_encoder=codec, sample_rate=RATE)["type"] == "started"
    ended = client.stop()
    assert ended.summary["duration_ms"] == 0
    path = server.directory / ended.summary["take"]
    ffprobe(path)  # readable, and empty
    assert len(ffmpeg_decode(path)) == 0
