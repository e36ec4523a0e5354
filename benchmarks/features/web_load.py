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

Bounded: at most ``--max-clients`` clients per step and ``--budget`` seconds in all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RATE = 48000
FRAME_MS = 20
FRAME = RATE * FRAME_MS // 1000
_SERVER_START_TIMEOUT = 30.0
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", default="wav,opus", help="comma-separated (default wav,opus)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of every take (default 10)")
    parser.add_argument("--start", type=int, default=8, help="clients in the first step (default 8)")
    parser.add_argument("--max-clients", type=int, default=256, help="most clients in a step (default 256)")
    parser.add_argument("--max-lag", type=float, default=1.0, help="seconds a client may fall behind (default 1)")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the whole run (default 900)")
    parser.add_argument("--json", type=Path, help="also write the steps here")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)  # internal: the server process
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- the server process ------------------------------------------------------------------------
def serve(directory: str, port: int) -> None:
    import uvicorn

    from micrec.web import Limits, create_app

    app = create_app(directory, limits=Limits(max_takes=10_000))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 20,
                ws_per_message_deflate=False)  # PCM does not compress; deflate only costs CPU


class Server:
    """The server subprocess, with its CPU time read from /proc."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.directory = directory
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(directory), "--port", str(self.port)])
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
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=_STOP_TIMEOUT)


# -- the load generator --------------------------------------------------------------------------
async def one_take(server: Server, token: str, encoder: str, seconds: float, frame: bytes,
                   begin: float) -> dict[str, Any]:
    """Stream one paced take; returns the server's summary plus this client's figures."""
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{server.port}/ws?token={token}"
    async with connect(url, origin=server.origin, max_size=1 << 20, open_timeout=60,  # type: ignore[arg-type]
                       close_timeout=_STOP_TIMEOUT) as ws:
        await ws.send(json.dumps({"type": "start", "rate": RATE, "channels": 1, "audio_encoder": encoder,
                                  "sample_rate": RATE, "channels_num": 1}))
        started = json.loads(await ws.recv())
        if started.get("type") != "started":
            return {"error": started.get("message", str(started)), "lag": 0.0, "client_lag": 0.0, "sent": 0}
        reader = asyncio.create_task(_collect(ws, begin))
        frames, lag = max(1, round(seconds * 1000 / FRAME_MS)), 0.0
        for k in range(frames):
            due = begin + k * FRAME_MS / 1000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag = max(lag, -delay)
            await ws.send(frame)
        await ws.send(json.dumps({"type": "stop"}))
        summary = await asyncio.wait_for(reader, _STOP_TIMEOUT)
    return {**summary, "client_lag": lag, "sent": frames * FRAME}


async def _collect(ws: Any, begin: float) -> dict[str, Any]:
    """The summary, with ``lag``: the most the server's intake trailed the audio sent."""
    summary: dict[str, Any] = {"error": "no summary"}
    lag = 0.0
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "level":
            # audio sent by now (one frame in flight allowed) minus audio the server has taken in
            sent_s = time.monotonic() - begin - FRAME_MS / 1000
            lag = max(lag, sent_s - message["duration_ms"] / 1000)
        elif message.get("type") == "stopped":
            summary = message
    return {**summary, "lag": lag}


async def run_step(server: Server, encoder: str, clients: int, seconds: float) -> list[dict[str, Any]]:
    token = server.token()
    t = np.arange(FRAME) / RATE
    frame = np.round(16000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()  # 50 Hz-periodic tone
    begin = time.monotonic() + 1.0  # everyone connected before the clock starts
    takes = [one_take(server, token, encoder, seconds, frame, begin + 0.0003 * i) for i in range(clients)]
    results = await asyncio.gather(*takes, return_exceptions=True)
    return [r if isinstance(r, dict) else {"error": repr(r), "lag": 0.0, "client_lag": 0.0, "sent": 0}
            for r in results]


def measure(server: Server, encoder: str, clients: int, seconds: float, max_lag: float) -> Step:
    cpu0, own0, wall0 = server.cpu_seconds(), time.process_time(), time.monotonic()
    results = asyncio.run(run_step(server, encoder, clients, seconds))
    wall = time.monotonic() - wall0
    server_cpu, client_cpu = (server.cpu_seconds() - cpu0) / wall, (time.process_time() - own0) / wall
    failed = [r for r in results if r.get("error")]
    overflows = sum(int(r.get("overflows", 0)) for r in results)
    missing = sum(max(0, r["sent"] - int(r.get("frames", 0))) for r in results if not r.get("error"))
    lag = max((r["lag"] for r in results), default=0.0)
    client_lag = max((r["client_lag"] for r in results), default=0.0)
    note = _check_files(server.directory, results, seconds)
    ok = not failed and not overflows and not missing and max(lag, client_lag) <= max_lag and not note
    if failed:
        note = f"{len(failed)} takes failed, e.g. {failed[0]['error']}"
    return Step(encoder, clients, ok, len(failed), overflows, missing, round(lag, 3), round(client_lag, 3),
                round(server_cpu, 2), round(client_cpu, 2), round(os.getloadavg()[0], 1), note)


def _check_files(directory: Path, results: list[dict[str, Any]], seconds: float) -> str:
    """Decode a few takes with ffprobe: the duration must be what was sent (within a block)."""
    names = [r["take"] for r in results if r.get("take")][:3]
    note = ""
    for name in names:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                              str(directory / name)], capture_output=True, text=True, timeout=60)
        duration = float(out.stdout.strip() or "nan")
        if not abs(duration - seconds) <= 0.03:
            note = f"{name}: duration {duration} s, expected {seconds} s"
    for path in directory.iterdir():  # keep the disk small between steps
        path.unlink()
    return note


def search(server: Server, encoder: str, args: argparse.Namespace, deadline: float) -> list[Step]:
    """Double N until a step fails, then bisect; stops at the budget."""
    steps: list[Step] = []
    good, bad, n = 0, None, args.start
    while time.monotonic() + args.seconds * 2 < deadline:
        step = measure(server, encoder, n, args.seconds, args.max_lag)
        steps.append(step)
        print(json.dumps(step.__dict__), flush=True)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` stops the server
    if args.serve:
        serve(args.serve, args.port)
        return 0
    deadline = time.monotonic() + args.budget
    all_steps: list[Step] = []
    for encoder in args.encoders.split(","):
        with tempfile.TemporaryDirectory(prefix="micrec-web-load-") as tmp:
            server = Server(Path(tmp))
            try:
                all_steps += search(server, encoder, args, deadline)
            finally:
                server.close()
    print(f"\n{'encoder':<8} {'sustained':>9} {'first failing':>13}  (48 kHz mono, {args.seconds:g} s takes, "
          f"{os.cpu_count()} cores)")
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
