"""micrec.web's pure parts (tokens, origins, protocol, the socket stream) and ``micrec serve``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from micrec.errors import InvalidConfigError
from micrec.web.backend import SocketBackend
from micrec.web.errors import LimitExceededError, ProtocolViolationError
from micrec.web.protocol import Limits, close_reason, parse_command, parse_start, split_frame
from micrec.web.security import TokenSigner, origin_allowed
from micrec.web.takes import DirectoryStore, Usage
from test_web_helpers import WAIT


class FakeSink:
    def __init__(self) -> None:
        self.blocks: list[Any] = []
        self.errors: list[BaseException] = []

    def push(self, block: Any, *, wait: bool = False) -> None:
        self.blocks.append(block)

    def overflow(self, frames: int = 0) -> None:
        raise AssertionError("no overflow expected")

    def fail(self, error: BaseException) -> None:
        self.errors.append(error)


def test_tokens_expire_and_resist_tampering() -> None:
    now = [1_000_000.0]
    signer = TokenSigner(b"k" * 32, ttl=60, clock=lambda: now[0])
    token = signer.issue()
    assert signer.check(token) is None
    assert TokenSigner(b"k" * 32, clock=lambda: now[0]).check(token) is None  # another worker with the same secret
    assert "invalid" in (TokenSigner(b"x" * 32).check(token) or "")
    nonce, issued, signature = token.split(".")
    later = TokenSigner(b"k" * 32, clock=lambda: now[0] + 3600).issue().split(".")[1]
    assert later != issued
    assert "invalid" in (signer.check(f"{nonce}.{later}.{signature}") or "")  # a moved timestamp
    assert "invalid" in (signer.check(f"{nonce}x.{issued}.{signature}") or "")  # another nonce
    assert "invalid" in (signer.check("no-dots-at-all") or "")
    now[0] += 61
    assert "expired" in (signer.check(token) or "")
    assert signer.issue() != signer.issue()


@pytest.mark.parametrize(("origin", "host", "allowed", "ok"), [
    ("http://127.0.0.1:8000", "127.0.0.1:8000", (), True),
    ("http://localhost:8000", "127.0.0.1:8000", (), False),
    ("http://127.0.0.1:8001", "127.0.0.1:8000", (), False),
    ("https://app.example", "127.0.0.1:8000", ("https://app.example",), True),
    (None, "127.0.0.1:8000", (), False),
    ("null", "127.0.0.1:8000", (), False),
    ("file://127.0.0.1:8000", "127.0.0.1:8000", (), False),
])
def test_origin_check(origin: str | None, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_protocol_parsing_names_the_bad_value() -> None:
    limits = Limits()
    start = parse_start('{"type": "start", "rate": 44100, "channels": 2, "sample_rate": 16000, "path": "/etc"}',
                        limits)
    assert (start.rate, start.channels, start.settings) == (44100, 2, {"sample_rate": 16000})  # no path
    with pytest.raises(LimitExceededError) as info:
        parse_start('{"type": "start", "rate": 7999, "channels": 1}', limits)
    assert (info.value.name, info.value.value) == ("rate", 7999)
    with pytest.raises(ProtocolViolationError, match="first message must be start"):
        parse_start('{"type": "stop"}', limits)
    assert parse_command('{"type": "pause"}') == "pause"
    assert split_frame(b"\0" * 8, 2, limits) == 2
    with pytest.raises(LimitExceededError) as too_big:
        split_frame(b"\0" * (limits.max_frame_bytes + 2), 1, limits)
    assert too_big.value.close_code == 1009
    assert len(close_reason("é" * 200).encode()) <= 123


def test_socket_stream_reblocks_frames_into_50ms_blocks() -> None:
    sink = FakeSink()
    stream = SocketBackend(48000, 2).open(_spec(), sink)
    stream.start()
    sent = np.arange(2 * 3000, dtype=np.int16).reshape(-1, 2)
    for start in range(0, 3000, 128):  # AudioWorklet-sized frames
        part = sent[start:start + 128]
        stream.feed(part.tobytes(), len(part))
    assert [len(b) for b in sink.blocks] == [2400]
    stream.flush()  # what a pause or stop hands over
    assert [len(b) for b in sink.blocks] == [2400, 600]
    got = np.concatenate(sink.blocks)
    assert np.array_equal(got, sent) and got.flags.writeable
    assert stream.recorded_frames == 3000


def test_socket_stream_drops_paused_frames_and_enforces_limits() -> None:
    now = [0.0]
    backend = SocketBackend(8000, 1, Limits(max_take_seconds=1.0, burst_seconds=0.5), clock=lambda: now[0])
    sink = FakeSink()
    stream = backend.open(_spec(), sink)
    stream.start()
    stream.paused = True
    stream.feed(b"\1\0" * 1000, 1000)
    assert stream.recorded_frames == 0 and stream.received_frames == 1000
    stream.paused = False
    stream.feed(b"\1\0" * 1000, 1000)
    with pytest.raises(LimitExceededError, match="ahead of real time"):
        stream.feed(b"\1\0" * 4000, 4000)  # 0.75 s of audio in 0 s of wall time
    now[0] = 100.0
    with pytest.raises(LimitExceededError, match="limit of 1 s"):
        stream.feed(b"\1\0" * 8000, 8000)
    assert stream.recorded_frames == 8000  # cut at exactly the limit
    assert sum(len(b) for b in sink.blocks) == 8000


def test_take_store_names_files_and_finds_only_its_own(tmp_path: Path) -> None:
    from micrec import AudioEncoder

    store = DirectoryStore(tmp_path / "new")
    path = store.new_take(AudioEncoder.FLAC, "alice")
    assert path.parent == store.directory and path.suffix == ".flac"
    path.write_bytes(b"x")  # as the recorder does: truncated in place, the owner stays
    (store.directory / "notes.txt").write_text("x")
    assert [t.name for t in store.list("alice")] == [path.name]
    assert store.list("bob") == []
    found = store.open(path.name, "alice")
    assert found is not None and found.path == path and b"".join(found.read()) == b"x"
    assert store.open(path.name, "bob") is None
    assert store.usage("alice") == Usage(1, 1, 1) and store.usage("bob") == Usage(0, 0, 1)
    for name in ("notes.txt", "../" + path.name, f"{path.name}/..", "", path.name.upper()):
        assert store.open(name, "alice") is None


def test_micrec_serve_serves_the_page(tmp_path: Path) -> None:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    takes = tmp_path / "recs"
    proc = subprocess.Popen([sys.executable, "-m", "micrec", "serve", "--port", str(port), "--dir", str(takes),
                             "--encoder", "flac"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        page = None
        deadline = time.monotonic() + WAIT
        while page is None and time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=WAIT)
            except httpx.TransportError:
                time.sleep(0.1)
        assert page is not None and page.status_code == 200
        assert '"audio_encoder": "flac"' in page.text and takes.is_dir()
        assert "default-src 'self'" in page.headers["content-security-policy"]
        script = httpx.get(f"http://127.0.0.1:{port}/static/worklet.js", timeout=WAIT)
        assert "javascript" in script.headers["content-type"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=WAIT)[0].decode()
    assert f"http://127.0.0.1:{port}/" in output


def _spec() -> Any:
    from micrec.backends import StreamSpec

    return StreamSpec(None, 48000, 1, 960)


def test_micrec_serve_refuses_an_unusable_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from micrec.cli import main

    (tmp_path / "file").write_text("x")
    assert main(["serve", "--dir", str(tmp_path / "file" / "takes")]) == 1
    assert "cannot use" in capsys.readouterr().err


def test_micrec_serve_hands_workers_the_environment_secret_store_and_quotas(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from micrec.cli import _build_parser
    from micrec.web.cli import _environment

    parser = _build_parser()
    args = parser.parse_args(["serve", "--store", "s3://takes/voices", "--max-visitor-takes", "20",
                              "--max-visitor-bytes", "200M", "--max-store-bytes", "1.5G"])
    secret = "ab" * 32
    monkeypatch.setenv("MICREC_WEB_SECRET", secret)
    env = _environment(args)
    assert env["MICREC_WEB_SECRET"] == secret  # every host and restart must share it
    assert env["MICREC_WEB_STORE"] == "s3://takes/voices"
    assert json.loads(env["MICREC_WEB_LIMITS"]) == {"max_visitor_takes": 20, "max_visitor_bytes": 200 << 20,
                                                    "max_store_bytes": int(1.5 * (1 << 30))}
    monkeypatch.delenv("MICREC_WEB_SECRET")
    assert len(bytes.fromhex(_environment(args)["MICREC_WEB_SECRET"])) == 32  # random without it
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--max-visitor-bytes", "lots"])


def test_app_from_env_reads_the_quotas_and_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from micrec.web.app import app_from_env
    from micrec.web.takes import DirectoryStore

    monkeypatch.setenv("MICREC_WEB_DIR", str(tmp_path))
    monkeypatch.setenv("MICREC_WEB_LIMITS", '{"max_visitor_takes": 3}')
    monkeypatch.setenv("MICREC_WEB_STORE", "")
    server = app_from_env().state.micrec
    assert server.config.limits.max_visitor_takes == 3 and isinstance(server.store, DirectoryStore)
    monkeypatch.setenv("MICREC_WEB_STORE", "ftp://host/x")
    with pytest.raises(InvalidConfigError, match="ftp://host/x"):
        app_from_env()


def test_visitor_cookie_is_signed_and_lasts_30_days() -> None:
    from micrec.web.security import VisitorCookie

    now = [1_000_000.0]
    cookie = VisitorCookie(b"k" * 32, clock=lambda: now[0])
    value = cookie.value("visitor1")
    assert cookie.visitor(value) == "visitor1"
    assert VisitorCookie(b"x" * 32).visitor(value) is None  # another secret
    assert cookie.visitor("visitor2" + value[len("visitor1"):]) is None  # forged
    assert VisitorCookie(b"k" * 32, clock=lambda: now[0] + 29 * 86400).visitor(value) == "visitor1"
    assert VisitorCookie(b"k" * 32, clock=lambda: now[0] + 31 * 86400).visitor(value) is None
    signer = TokenSigner(b"k" * 32)
    assert signer.visitor(signer.issue("visitor1")) == ("visitor1", None)
    assert cookie.visitor(signer.issue("visitor1")) is None  # a token is not a cookie (another salt)


def test_directory_store_keeps_the_owner_in_a_sidecar_without_xattrs(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from micrec import AudioEncoder

    def no_xattrs(*args: Any) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", no_xattrs)
    monkeypatch.setattr(os, "getxattr", no_xattrs)
    store = DirectoryStore(tmp_path)
    path = store.new_take(AudioEncoder.WAV, "alice")
    assert not path.exists()  # the recorder creates it; a refused take leaves nothing
    path.write_bytes(b"RIFF")
    store.opened(path)
    assert (tmp_path / f".{path.name}.owner").read_text() == "alice"
    store.finish(path)
    assert [t.name for t in DirectoryStore(tmp_path).list("alice")] == [path.name]  # another process
    assert DirectoryStore(tmp_path).list("bob") == []
