"""Helpers for the micrec.web tests: an in-process server and a plain WebSocket client.

No tests here; ``test_web_*.py`` import from it (``from test_web_helpers import ...``).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

#: Seconds any single wait on the server may take before a test fails (not a timing check).
WAIT = 20.0


@dataclass
class LiveServer:
    """A uvicorn server on 127.0.0.1 with an ephemeral port, in a thread of this process."""

    app: Any
    directory: Path
    events: list[Any] = field(default_factory=list)
    port: int = 0
    #: SO_SNDBUF of the listening socket, which accepted connections inherit (0: the kernel's).
    send_buffer: int = 0
    _server: Any = None
    _thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> LiveServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.send_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", ws_max_size=1 << 20, lifespan="off",
                                ws_per_message_deflate=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + WAIT
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(WAIT)

    def token(self, page_path: str = "/") -> str:
        """A session token, as a page load gets it."""
        import httpx

        page = httpx.get(self.origin + page_path, timeout=WAIT, trust_env=False).text  # loopback, no proxy
        blob = re.search(r'id="micrec-config">(.*?)</script>', page, re.S)
        assert blob is not None, "the page carries no config"
        return str(json.loads(blob.group(1))["token"])

    def wait_for_stopped(self, name: str) -> Any:
        """The STOPPED event of the take called ``name`` (the server's on_state_changed)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for event in list(self.events):
                if event.data == "stopped" and Path(event.path).name == name:
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no STOPPED event for {name}")


@contextlib.contextmanager
def live_server(directory: Path, send_buffer: int = 0, **options: Any) -> Iterator[LiveServer]:
    """``create_app(directory, **options)`` served on an ephemeral port for the block."""
    from micrec.web import create_app

    events: list[Any] = []
    app = create_app(directory, on_state_changed=events.append, **options)
    server = LiveServer(app, directory, events, send_buffer=send_buffer).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Ended:
    """How a take's connection ended: every JSON message received, and the close frame."""

    messages: list[dict[str, Any]]
    code: int | None
    reason: str

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    @property
    def summary(self) -> dict[str, Any]:
        found = self.of_type("stopped")
        assert found, f"no stopped summary in {self.messages} (close {self.code} {self.reason!r})"
        return found[-1]


class Client:
    """A plain WebSocket client speaking micrec.web's protocol (websockets' sync API)."""

    def __init__(self, server: LiveServer, *, token: str | None = None, origin: str | None = None,
                 url: str | None = None, reconnecting: bool = False) -> None:
        from websockets.sync.client import connect

        token = server.token() if token is None else token
        self.token = token  # names the visitor the take belongs to
        query = f"?token={token}" + ("&reconnect=1" if reconnecting else "")  # as the page's reconnects
        # Entered at once: the connection lives as long as the test's client object.
        self.ws = connect(f"{url or server.ws_url}{query}", origin=origin or server.origin,  # type: ignore[arg-type]
                          open_timeout=WAIT, close_timeout=WAIT, max_size=1 << 20, proxy=None).__enter__()
        self.messages: list[dict[str, Any]] = []

    def start(self, rate: int = 48000, channels: int = 1, **settings: Any) -> dict[str, Any]:
        """Send ``start``; the server's answer (``started``, or ``error`` before a close)."""
        self.ws.send(json.dumps({"type": "start", "rate": rate, "channels": channels, **settings}))
        return self.receive()

    def receive(self) -> dict[str, Any]:
        message = json.loads(self.ws.recv(timeout=WAIT))
        self.messages.append(message)
        return message

    def send_audio(self, samples: npt.NDArray[np.int16], rate: int, frame_ms: float = 20) -> None:
        """Send int16 samples (1-D mono or (frames, channels)) in frames of ``frame_ms``.

        Stops quietly if the server closes meanwhile (``finish`` then reads why).
        """
        from websockets.exceptions import ConnectionClosed

        data = samples.reshape(len(samples), -1)
        step = max(1, int(rate * frame_ms / 1000))
        for start in range(0, len(data), step):
            try:
                self.ws.send(np.ascontiguousarray(data[start:start + step]).astype("<i2").tobytes())
            except ConnectionClosed:
                return

    def command(self, name: str) -> None:
        self.ws.send(json.dumps({"type": name}))

    def finish(self) -> Ended:
        """Read until the server closes; returns everything received and the close frame."""
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                self.receive()
        except ConnectionClosed as closed:
            frame = closed.rcvd
            return Ended(self.messages, frame.code if frame else None, frame.reason if frame else "")

    def stop(self) -> Ended:
        self.command("stop")
        return self.finish()

    def drop(self) -> None:
        """Vanish without a close frame, like a crashed tab or a pulled network cable."""
        self.ws.socket.shutdown(socket.SHUT_RDWR)
        self.ws.socket.close()
