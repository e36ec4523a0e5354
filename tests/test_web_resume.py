"""Takes that survive a dropped connection (micrec.web.resume), over a plain WebSocket client.

A real uvicorn server runs in this process on 127.0.0.1; the client drops its TCP connection
(no close frame, like a pulled cable), opens a new one and sends ``reconnect``. Every file is
judged with ffmpeg against the noise that was sent: one file, bit-exact, no gap, nothing twice.
The browser's side (the page that buffers and reconnects, through a proxy that cuts the
connection) is in ``test_web_resume_browser.py``.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from test_web_helpers import WAIT, Client, LiveServer, live_server

from audio import ffmpeg_decode, have_ffmpeg, match_feed, noise

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
pytestmark = pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries")

from micrec import DeviceLostError  # noqa: E402
from micrec.web import Limits  # noqa: E402
from micrec.web.errors import LimitExceededError, ProtocolViolationError  # noqa: E402
from micrec.web.protocol import ReconnectRequest, parse_opening  # noqa: E402
from micrec.web.resume import FloodPacer, TicketSigner, part_name  # noqa: E402

RATE = 48000
FEED = noise(8.0, RATE, seed=21)


# -- the rules, alone -------------------------------------------------------------------------
def test_the_flood_allowance_is_exactly_the_backlog() -> None:
    now = [0.0]
    pacer = FloodPacer(RATE, burst_seconds=1.0, clock=lambda: now[0])
    pacer.start()
    now[0] = 2.0
    pacer.check(3 * RATE)  # 1 s ahead: the burst allowed
    with pytest.raises(LimitExceededError, match="ahead of real time"):
        pacer.check(3 * RATE + 1)
    received = 2 * RATE
    pacer.stop()  # the connection dropped: no audio is due while it is down
    now[0] = 7.0
    assert pacer.due_seconds() == 2.0 and pacer.away_seconds() == 5.0
    # The client captured 4 s while away: its backlog is 4 s, and that is the allowance.
    backlog = pacer.bounded_backlog(received, received + 4 * RATE, pacer.away_seconds())
    assert backlog == 4 * RATE
    # A claim beyond what real time allowed (away 5 s, nothing behind, 1 s burst) is capped.
    assert pacer.bounded_backlog(received, received + 60 * RATE, 5.0) == 6 * RATE
    assert pacer.bounded_backlog(received, received - 5, 5.0) == 0
    pacer.grant(received, backlog)
    pacer.start()
    pacer.check(received + backlog + RATE)  # the backlog at once, plus the usual burst
    with pytest.raises(LimitExceededError):
        pacer.check(received + backlog + RATE + 1)  # one frame more is a flood
    now[0] = 8.0  # then real time: one second more
    pacer.check(received + backlog + 2 * RATE)
    with pytest.raises(LimitExceededError):
        pacer.check(received + backlog + 2 * RATE + 1)


def test_no_audio_is_due_while_paused() -> None:
    now = [0.0]
    pacer = FloodPacer(RATE, burst_seconds=0.5, clock=lambda: now[0])
    pacer.start()
    now[0] = 1.0
    pacer.stop()
    now[0] = 100.0  # a long pause earns no credit
    pacer.start()
    with pytest.raises(LimitExceededError):
        pacer.check(int(1.6 * RATE))


def test_tickets_and_part_names() -> None:
    signer = TicketSigner(b"s" * 32)
    ticket = signer.read(signer.issue("take-20261206-201500-0a1b2c-part2.wav", "take-20261206-201500-0a1b2c.wav", 2))
    assert (ticket.name, ticket.first, ticket.part) == ("take-20261206-201500-0a1b2c-part2.wav",
                                                        "take-20261206-201500-0a1b2c.wav", 2)
    with pytest.raises(ProtocolViolationError, match="ticket is invalid"):
        TicketSigner(b"t" * 32).read(signer.issue("a.wav", "a.wav", 1))  # another server's secret
    assert part_name("take-20261206-201500-0a1b2c.wav", 3) == "take-20261206-201500-0a1b2c-part3.wav"
    assert part_name("take-20261206-201500-0a1b2c.flac", 1) == "take-20261206-201500-0a1b2c.flac"


@pytest.mark.parametrize(("message", "error"), [
    ({"ticket": ""}, "reconnect needs the take's ticket"),
    ({"ticket": "x", "sent": 5, "acked": 6}, "0 <= acked <= sent"),
    ({"ticket": "x", "sent": 5.5, "acked": 0}, "whole number 'sent'"),
])
def test_a_bad_reconnect_message_is_refused(message: dict[str, Any], error: str) -> None:
    text = json.dumps({"type": "reconnect", "rate": RATE, "channels": 1, "sent": 0, "acked": 0, **message})
    with pytest.raises(ProtocolViolationError, match=error):
        parse_opening(text, Limits())
    good = parse_opening(json.dumps({"type": "reconnect", "rate": RATE, "channels": 1, "ticket": "x", "sent": 9,
                                     "acked": 4, "paused": True}), Limits())
    assert isinstance(good, ReconnectRequest) and (good.sent, good.acked, good.paused) == (9, 4, True)


# -- over a real server -------------------------------------------------------------------------
def paced(client: Client, samples: np.ndarray, frame_ms: int = 20) -> None:
    """Send ``samples`` in real time, as a microphone would."""
    step = RATE * frame_ms // 1000
    began = time.monotonic()
    for i, start in enumerate(range(0, len(samples), step)):
        client.ws.send(samples[start:start + step].astype("<i2").tobytes())
        time.sleep(max(0.0, began + (i + 1) * frame_ms / 1000 - time.monotonic()))


def acknowledged(client: Client, frames: int) -> int:
    """Read until a level message acknowledges ``frames``; returns the count acknowledged."""
    while True:
        message = client.receive()
        if message["type"] == "level" and message["frames"] >= frames:
            return int(message["frames"])


def reconnect(server: LiveServer, ticket: str, sent: int, acked: int, **fields: Any) -> tuple[Client, dict[str, Any]]:
    client = Client(server)
    client.ws.send(json.dumps({"type": "reconnect", "ticket": ticket, "sent": sent, "acked": acked, "rate": RATE,
                               "channels": 1, **fields}))
    return client, client.receive()


def test_a_dropped_take_resumes_as_one_file_bit_exact(tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(drop_seconds=WAIT)) as server:
        first = Client(server)
        started = first.start(RATE, 1)
        paced(first, FEED[:RATE])
        acked = acknowledged(first, RATE)
        first.drop()
        # Meanwhile the client "captures" 1.5 s more (its backlog); the server waits for it.
        time.sleep(0.3)
        second, answer = reconnect(server, started["ticket"], sent=int(2.5 * RATE), acked=acked)
        assert answer["type"] == "reconnected" and answer["take"] == started["take"] and answer["part"] == 1
        held = answer["frames"]
        assert held == RATE  # everything sent before the drop arrived (it was acknowledged)
        second.send_audio(FEED[held:int(2.5 * RATE)], RATE)  # the backlog, at once
        paced(second, FEED[int(2.5 * RATE):3 * RATE])
        ended = second.stop()
        assert ended.code == 1000 and ended.summary["error"] is None and ended.summary["frames"] == 3 * RATE
        assert server.wait_for_stopped(started["take"]).error is None
        assert [p.name for p in tmp_path.iterdir()] == [started["take"]]
        audio = ffmpeg_decode(tmp_path / started["take"])[:, 0]
        assert np.array_equal(audio, FEED[:3 * RATE])  # no gap, nothing twice


def test_a_visitor_at_the_take_quota_can_resume_the_take_that_reached_it(tmp_path: Path) -> None:
    """The count quota holds back new takes, not a dropped take coming back (the page's ``?reconnect=1``)."""
    with live_server(tmp_path, limits=Limits(drop_seconds=WAIT, max_visitor_takes=1)) as server:
        first = Client(server)
        started = first.start(RATE, 1)
        paced(first, FEED[:RATE // 2])
        acked = acknowledged(first, RATE // 2)
        first.drop()
        # at the quota now (this take): a new take is refused, on a plain socket or on a
        # reconnecting one that starts afresh
        for reconnecting in (False, True):
            refused = Client(server, token=first.token, reconnecting=reconnecting)
            if reconnecting:
                refused.start(RATE, 1)
            ended = refused.finish()
            assert ended.code == 1008 and "quota: you have 1 takes" in ended.reason, ended.reason
        back = Client(server, token=first.token, reconnecting=True)
        back.ws.send(json.dumps({"type": "reconnect", "ticket": started["ticket"], "sent": RATE, "acked": acked,
                                 "rate": RATE, "channels": 1}))
        answer = back.receive()
        assert answer["type"] == "reconnected" and answer["take"] == started["take"], answer
        back.send_audio(FEED[answer["frames"]:RATE], RATE)
        ended = back.stop()
        assert ended.summary["error"] is None
        assert [p.name for p in tmp_path.iterdir()] == [started["take"]]
        assert np.array_equal(ffmpeg_decode(tmp_path / started["take"])[:, 0], FEED[:RATE])


def test_a_reconnect_replaces_a_connection_the_server_thinks_alive(tmp_path: Path) -> None:
    """A network that swallows packets leaves the old socket open on the server: the new one wins."""
    with live_server(tmp_path, limits=Limits(drop_seconds=WAIT)) as server:
        first = Client(server)
        started = first.start(RATE, 1)
        paced(first, FEED[:RATE // 2])
        acked = acknowledged(first, RATE // 2)
        second, answer = reconnect(server, started["ticket"], sent=RATE, acked=acked)  # the first is still open
        assert answer["type"] == "reconnected" and answer["frames"] == RATE // 2
        assert first.finish().code == 1001  # the server let go of the old connection
        second.send_audio(FEED[RATE // 2:RATE], RATE)
        ended = second.stop()
        assert ended.summary["error"] is None
        assert np.array_equal(ffmpeg_decode(tmp_path / started["take"])[:, 0], FEED[:RATE])


def test_a_take_whose_browser_never_returns_is_saved_after_the_drop_limit(tmp_path: Path) -> None:
    with live_server(tmp_path, limits=Limits(drop_seconds=0.5)) as server:
        client = Client(server)
        started = client.start(RATE, 1)
        paced(client, FEED[:RATE])
        acknowledged(client, RATE)
        client.drop()
        event = server.wait_for_stopped(started["take"])
        assert isinstance(event.error, DeviceLostError)
        assert "did not reconnect within the drop limit of 0.5 s" in str(event.error)
        assert np.array_equal(ffmpeg_decode(tmp_path / started["take"])[:, 0], FEED[:RATE])  # what arrived
        # Back too late: the take goes on as its second part, from the last frame acknowledged.
        late, answer = reconnect(server, started["ticket"], sent=int(1.5 * RATE), acked=RATE)
        assert answer["type"] == "reconnected" and answer["part"] == 2 and answer["frames"] == RATE
        assert answer["take"] == part_name(started["take"], 2) and answer["first"] == started["take"]
        late.send_audio(FEED[RATE:int(1.5 * RATE)], RATE)
        assert late.stop().summary["error"] is None
        assert np.array_equal(ffmpeg_decode(tmp_path / answer["take"])[:, 0], FEED[RATE:int(1.5 * RATE)])


def test_a_reconnect_to_another_process_continues_the_take_as_its_second_part(tmp_path: Path) -> None:
    """Two servers sharing the secret (two workers or hosts): the second cannot append to the
    first's file; it records part 2 from the last frame acknowledged, the first saves part 1 at
    its drop limit. Together the parts hold the whole feed, overlapping by what was unacknowledged."""
    secret = secrets.token_bytes(32)
    with live_server(tmp_path / "a", secret=secret, limits=Limits(drop_seconds=1.0)) as a, \
            live_server(tmp_path / "b", secret=secret) as b:
        client = Client(a)
        started = client.start(RATE, 1)
        paced(client, FEED[:RATE])
        acked = acknowledged(client, RATE // 2)  # an early acknowledgement: part 1 holds more
        client.drop()
        other, answer = reconnect(b, started["ticket"], sent=2 * RATE, acked=acked)
        assert (answer["type"], answer["part"], answer["frames"]) == ("reconnected", 2, acked)
        assert answer["take"] == part_name(started["take"], 2) and answer["first"] == started["take"]
        assert answer["sample_rate"] == RATE and answer["audio_encoder"] == "wav"
        other.send_audio(FEED[acked:2 * RATE], RATE)  # the backlog from the acknowledged frame
        paced(other, FEED[2 * RATE:int(2.5 * RATE)])
        assert other.stop().summary["error"] is None
        event = a.wait_for_stopped(started["take"])  # part 1: saved at the drop limit with what arrived
        assert "drop limit of 1 s" in str(event.error)
        part1 = ffmpeg_decode(tmp_path / "a" / started["take"])[:, 0]
        part2 = ffmpeg_decode(tmp_path / "b" / answer["take"])[:, 0]
        assert np.array_equal(part1, FEED[:RATE]) and np.array_equal(part2, FEED[acked:int(2.5 * RATE)])
        assert [m.runs for m in (match_feed(part1, FEED), match_feed(part2, FEED))] == [
            [(0, 0, RATE)], [(0, acked, int(2.5 * RATE) - acked)]]


@pytest.mark.parametrize(("claimed_s", "sent_s", "refused"), [
    (1.5, 2.0, False),  # the backlog and half the burst limit at once: allowed
    (1.5, 3.1, True),  # the backlog and more than the burst limit: a flood
    (0.0, 2.0, True),  # the same burst without a backlog to send: a flood
])
def test_the_resumed_burst_passes_the_flood_limit_by_exactly_the_backlog(
        tmp_path: Path, claimed_s: float, sent_s: float, refused: bool) -> None:
    with live_server(tmp_path, limits=Limits(drop_seconds=WAIT, burst_seconds=1.0)) as server:
        client = Client(server)
        started = client.start(RATE, 1)
        paced(client, FEED[:RATE])
        held = acknowledged(client, RATE)
        client.drop()
        time.sleep(2.0)  # away long enough to have captured the backlog claimed
        second, answer = reconnect(server, started["ticket"], sent=held + int(claimed_s * RATE), acked=held)
        assert answer["frames"] == held
        second.send_audio(FEED[held:held + int(sent_s * RATE)], RATE)
        ended = second.stop()
        assert ("ahead of real time" in ended.reason) == refused, ended.reason
        if not refused:
            audio = ffmpeg_decode(tmp_path / started["take"])[:, 0]
            assert np.array_equal(audio, FEED[:held + int(sent_s * RATE)])


def test_a_reconnect_with_a_forged_ticket_is_refused(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        forged = TicketSigner(b"x" * 32).issue("take-20261206-201500-0a1b2c.wav", "take-20261206-201500-0a1b2c.wav", 1)
        client, answer = reconnect(server, forged, sent=10, acked=0)
        assert answer["type"] == "error" and "ticket is invalid" in answer["message"]
        assert client.finish().code == 1007
        assert list(tmp_path.iterdir()) == []


def test_drop_limit_reaches_every_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from micrec.cli import main
    from micrec.web.app import app_from_env
    from micrec.web.cli import _environment

    with pytest.raises(SystemExit):
        main(["serve", "--drop-limit", "soon"])
    assert "'soon' is not a number of seconds" in capsys.readouterr().err
    args = argparse.Namespace(host="127.0.0.1", allow_host=[], allow_origin=[], dir=str(tmp_path), encoder="wav",
                              rate=48000, channels=1, drop_limit=7.5, store=None, max_visitor_takes=None,
                              max_visitor_bytes=None, max_store_bytes=None)
    for key, value in _environment(args).items():
        monkeypatch.setenv(key, value)
    assert app_from_env().state.micrec.config.limits.drop_seconds == 7.5


def test_a_stop_signal_saves_a_take_that_waits_for_its_browser(tmp_path: Path) -> None:
    """``micrec serve`` (drop limit 60 s) stopped while a take has no connection: saved at once."""
    import signal

    from test_web_shutdown import recording, start_serve

    proc, server = start_serve(tmp_path)
    try:
        client = recording(server, "wav", 440.0)
        client.drop()
        time.sleep(0.5)  # the server notices the drop and waits for the browser
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=WAIT)  # well before the drop limit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in output and "saving 1 open take(s)" in output
    (path,) = tmp_path.iterdir()
    assert len(ffmpeg_decode(path)) == RATE
