"""``micrec serve`` stopped by SIGTERM or Ctrl-C with takes in flight: every take is saved and told why.

The real command runs as a subprocess on a free loopback port; plain WebSocket clients record
into it, and the files it leaves are judged with ffprobe/ffmpeg.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_web_helpers import WAIT, Client, LiveServer

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, tone

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
pytestmark = pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries")

from micrec.web.app import SHUTDOWN_REASON  # noqa: E402

RATE = 48000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(directory: Path) -> tuple[subprocess.Popen[str], LiveServer]:
    """``micrec serve`` on a free port, once it answers; and a handle for the test clients."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "micrec", "serve", "--port", str(port), "--dir", str(directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    server = LiveServer(None, directory, port=port)
    deadline = time.monotonic() + 3 * WAIT  # a cold start on a loaded machine: imports, then uvicorn
    while True:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(server.origin + "/", timeout=1).status_code == 200:
                return proc, server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"micrec serve did not answer: {proc.communicate()[0]}")
        time.sleep(0.1)


def recording(server: LiveServer, codec: str, frequency: float) -> Client:
    """A client whose take has 1 s of audio in the server (its level messages say so)."""
    client = Client(server)
    started = client.start(RATE, 1, audio_encoder=codec, sample_rate=RATE, channels_num=1)
    assert started["type"] == "started", started
    client.send_audio(tone(frequency, 1.0, RATE), RATE)
    while not (client.messages[-1]["type"] == "level" and client.messages[-1]["duration_ms"] >= 1000):
        client.receive()
    return client


@pytest.mark.parametrize(("signals", "returncode", "gap"), [
    ((signal.SIGTERM,), -signal.SIGTERM, 0.005),                # uvicorn dies of the signal it got
    ((signal.SIGTERM,) * 3, -signal.SIGTERM, 0.005),            # more while saving (or after: the same)
    ((signal.SIGINT,) * 3, 0, 0.005),                           # Ctrl-C: uvicorn exits with 0
    ((signal.SIGINT,) * 3, 0, 0.03),                            # more once the takes are saved
], ids=["SIGTERM", "SIGTERMx3", "SIGINTx3", "SIGINTx3-later"])
def test_serve_saves_every_open_take_on_a_stop_signal(tmp_path: Path, signals: tuple[signal.Signals, ...],
                                                       returncode: int, gap: float) -> None:
    proc, server = start_serve(tmp_path)
    try:
        takes = {"wav": 440.0, "flac": 660.0, "opus": 880.0}
        clients = {codec: recording(server, codec, freq) for codec, freq in takes.items()}
        waiting = Client(server)  # connected, no start yet
        for signum in signals:
            if proc.poll() is None:
                proc.send_signal(signum)
            time.sleep(gap)
        output, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == returncode, output
    assert "Traceback" not in output and "saving 4 open take(s)" in output

    refused = waiting.finish()
    assert (refused.code, refused.reason) == (1001, SHUTDOWN_REASON)
    assert refused.of_type("error")[0]["message"] == SHUTDOWN_REASON
    names = set()
    for codec, client in clients.items():
        ended = client.finish()
        assert (ended.code, ended.reason) == (1001, SHUTDOWN_REASON), codec
        assert ended.summary["error"] == SHUTDOWN_REASON
        assert ended.of_type("state")[-1]["state"] == "stopped"
        path = tmp_path / ended.summary["take"]
        names.add(path.name)
        probe = ffprobe(path)
        audio = ffmpeg_decode(path)
        assert len(audio) / probe.rate == pytest.approx(1.0, abs=0.021 if codec != "opus" else 0.12), codec
        assert dominant_frequency(audio, probe.rate) == pytest.approx(takes[codec], abs=3), codec
    assert {p.name for p in tmp_path.iterdir()} == names  # nothing for the connection that never started

