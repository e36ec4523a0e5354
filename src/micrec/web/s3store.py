"""Takes in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, SeaweedFS...), with boto3.

The recorder writes each take to a local spool file as usual (crash-safe, flushed every
0.5 s). While it records, a background thread copies what is new to the bucket every
:data:`SYNC_SECONDS`, so a server killed mid-take loses at most that much of it:

``PREFIX.pending/OWNER/NAME/c-OFFSET``
    the bytes appended since the previous copy (one object per copy, OFFSET zero-padded);
``PREFIX.pending/OWNER/NAME/head``
    the file's first bytes as they are now (the container's header, which encoders rewrite
    at every flush: WAV sizes, FLAC's sample count), rewritten at every copy, which also
    tells other servers the take is alive.

S3 multipart parts must be at least 5 MiB (54 s of 48 kHz mono WAV), so a copy every 5 s
cannot be a part; each is an object of its own. When the take ends, the spool file is
uploaded whole as ``PREFIX OWNER/NAME`` (boto3's managed transfer: multipart over 8 MiB) with
the owner in its metadata (``x-amz-meta-owner``), then the pending objects and the spool file
are deleted. A take whose pending objects have not been touched for ``stale_seconds`` (its
server died) is recovered by whichever server looks next: it concatenates the copies, lays
the latest head over them, and uploads the result as the take. Every server looks at start
and every :data:`RECOVER_SECONDS`, and aborts multipart uploads under the prefix that are
older than ``stale_seconds`` (a final upload cut short; its pending objects are still there).

Every server that shares the bucket and the secret lists a visitor's takes from
``PREFIX OWNER/`` and serves them with ranged GETs.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._lazy import require
from ..errors import InvalidConfigError, OutputError
from ..types import AudioEncoder
from .takes import DirectoryStore, StoredTake, Take, Usage, is_take_name, read_range

__all__ = ["HEAD_BYTES", "RECOVER_SECONDS", "SYNC_SECONDS", "S3Store", "parse_s3_url"]

log = logging.getLogger("micrec.web")

#: Seconds between two copies of an open take to the bucket (the most a killed server loses,
#: plus the encoder's 0.5 s flush and one upload's time; the contract says at most 5 s).
SYNC_SECONDS = 2.0
#: Seconds between two looks for takes that a dead server left pending.
RECOVER_SECONDS = 30.0
#: Leading bytes of a take rewritten at every copy: the container headers micrec's encoders
#: update while recording all lie within them (WAV/RF64 header, FLAC STREAMINFO).
HEAD_BYTES = 8192
_PENDING = ".pending/"
#: Seconds the store's total bytes (for ``max_store_bytes``) are reused before it is listed again.
TOTAL_SECONDS = 10.0
_UPLOADERS = 8


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` → ``(bucket, "PREFIX/")`` (the prefix empty or ending in ``/``).

    Raises
    ------
    InvalidConfigError
        Not an ``s3://`` URL with a bucket name.
    """
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise InvalidConfigError(f"store {url!r} is not s3://BUCKET/PREFIX", value=url, name="store")
    bucket, _, prefix = url[5:].partition("/")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


@dataclass
class _Open:
    """A take being recorded here: what of its spool file is in the bucket already."""

    path: Path
    owner: str
    uploaded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class S3Store:
    """Takes in ``s3://BUCKET/PREFIX``; credentials and endpoint from the ``AWS_*`` environment.

    Parameters
    ----------
    url : str
        ``s3://BUCKET/PREFIX`` (the prefix may be empty).
    spool : path
        Local directory for the takes being recorded (created if missing).
    client : optional
        A boto3 S3 client (default: ``boto3.client("s3")``, which reads ``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``...).
    sync_seconds, stale_seconds, recover_seconds : float
        Copy interval of open takes; how long pending objects must be untouched before another
        server recovers them (keep it well above ``sync_seconds``: a live server's take must not
        be taken for a dead one's); how often to look for such takes.

    Raises
    ------
    ImportError
        boto3 is missing (``pip install 'micrec[s3]'``).
    InvalidConfigError
        ``url`` is not an ``s3://`` URL.
    OutputError
        The bucket cannot be reached with these credentials (the message says why).
    """

    def __init__(self, url: str, spool: str | os.PathLike[str] = "recordings", *, client: Any = None,
                 sync_seconds: float = SYNC_SECONDS, stale_seconds: float = 30.0,
                 recover_seconds: float = RECOVER_SECONDS) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = url
        self.spool = DirectoryStore(spool)
        self.sync_seconds, self.stale_seconds, self.recover_seconds = sync_seconds, stale_seconds, recover_seconds
        self.client = client if client is not None else _client()
        self._check_bucket()
        self._open: dict[str, _Open] = {}
        self._total = (0, -TOTAL_SECONDS - 1.0)  # (bytes, monotonic time listed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(_UPLOADERS, thread_name_prefix="micrec-s3")
        self._thread = threading.Thread(target=self._run, name="micrec-s3-sync", daemon=True)
        self._thread.start()

    # -- recording ----------------------------------------------------------------------------
    def new_take(self, codec: AudioEncoder, owner: str, name: str | None = None) -> Path:
        path = self.spool.new_take(codec, owner, name)
        with self._lock:
            self._open[path.name] = _Open(path, owner)
        return path

    def opened(self, path: Path) -> None:
        self.spool.opened(path)

    def finish(self, path: Path) -> None:
        """Upload the finished take whole, then drop its pending objects and spool file.

        A failed upload is logged and left to recovery (the pending objects stay, and so does
        the spool file).
        """
        with self._lock:
            take = self._open.get(path.name)
        self.spool.finish(path)
        if take is None:
            return
        if not path.exists():  # the recorder refused to start: nothing was recorded
            with self._lock:
                self._open.pop(path.name, None)
            return
        with take.lock:  # not while a copy of it is on its way
            with self._lock:
                if self._open.get(path.name) is not take:  # finished meanwhile (close() and the route)
                    return
            try:
                self._upload_final(path, take.owner)
            except Exception as exc:  # noqa: BLE001 - the take stays pending; recovery completes it
                log.error("micrec.web: uploading take %s to %s failed (%s); it stays pending and is recovered "
                          "later", path.name, self.url, exc)
                return
            finally:
                with self._lock:
                    self._open.pop(path.name, None)
        self._delete_prefix(self._pending(take.owner, path.name))
        with contextlib.suppress(OSError):
            path.unlink()

    # -- reading ------------------------------------------------------------------------------
    def list(self, owner: str) -> list[Take]:
        takes = {t.name: t for t in self._local(owner)}
        for obj in self._objects(self.prefix + owner + "/"):
            name = obj["Key"].rsplit("/", 1)[-1]
            if is_take_name(name):
                takes[name] = Take(name, obj["Size"], obj["LastModified"].timestamp())
        return sorted(takes.values(), key=lambda t: (t.mtime, t.name), reverse=True)

    def open(self, name: str, owner: str) -> StoredTake | None:
        if not is_take_name(name):
            return None
        with self._lock:
            take = self._open.get(name)
        if take is not None:  # recording here, or its upload not done yet: the spool file
            return self.spool.open(name, owner) if take.owner == owner else None
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(owner, name))
        except self.client.exceptions.ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return StoredTake(name, owner, int(head["ContentLength"]), None, self)

    def read(self, name: str, owner: str, start: int, end: int) -> Iterator[bytes]:
        with self._lock:
            take = self._open.get(name)
        if take is not None:
            yield from read_range(take.path, start, end)
            return
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(owner, name),
                                      Range=f"bytes={start}-{end}")["Body"]
        try:
            yield from body.iter_chunks(1 << 16)
        finally:
            body.close()

    def usage(self, owner: str) -> Usage:
        """The owner's takes (their two prefixes listed); the store's bytes, listed at most every
        :data:`TOTAL_SECONDS` (a whole bucket is many requests)."""
        names: set[str] = set()
        mine = 0
        for prefix in (f"{self.prefix}{owner}/", f"{self.prefix}{_PENDING}{owner}/"):
            for name, size in self._take_objects(prefix):
                names.add(name)
                mine += size
        with self._lock:
            total, when = self._total
        if time.monotonic() - when > TOTAL_SECONDS:
            total = sum(size for _, size in self._take_objects(self.prefix))
            with self._lock:
                self._total = (total, time.monotonic())
        return Usage(len(names), mine, total)

    def _take_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(take name, size) of each object under ``prefix`` that holds a take's bytes."""
        for obj in self._objects(prefix):
            parts = obj["Key"][len(self.prefix):].split("/")
            if parts[0] + "/" == _PENDING:
                parts = parts[1:]
                if parts[-1] == "head":  # a copy of bytes the chunks hold
                    continue
            if len(parts) >= 2 and is_take_name(parts[1]):
                yield parts[1], obj["Size"]

    # -- the background copies ----------------------------------------------------------------
    def _run(self) -> None:
        next_recovery = time.monotonic()
        while not self._stop.wait(self.sync_seconds if next_recovery > time.monotonic() else 0):
            with self._lock:
                takes = list(self._open.values())
            for future in [self._pool.submit(self._sync, take) for take in takes]:
                future.exception()  # each logs its own failure
            if time.monotonic() >= next_recovery:
                next_recovery = time.monotonic() + self.recover_seconds
                try:
                    self.recover()
                except Exception as exc:  # noqa: BLE001 - the store may be down for a while
                    log.warning("micrec.web: looking for takes to recover in %s failed: %s", self.url, exc)

    def _sync(self, take: _Open) -> None:
        """Copy what is new in ``take``'s spool file, then its head (in that order: a head never
        describes more audio than the copies hold)."""
        if not take.lock.acquire(blocking=False):  # being finished
            return
        try:
            with open(take.path, "rb") as file:
                head = file.read(HEAD_BYTES)
                file.seek(take.uploaded)
                new = file.read()
            pending = self._pending(take.owner, take.path.name)
            if new:
                self.client.put_object(Bucket=self.bucket, Key=f"{pending}c-{take.uploaded:015d}", Body=new)
                take.uploaded += len(new)
            self.client.put_object(Bucket=self.bucket, Key=pending + "head", Body=head,
                                   Metadata={"owner": take.owner})
        except FileNotFoundError:
            pass  # finished and removed meanwhile
        except Exception as exc:  # noqa: BLE001 - tried again at the next copy
            log.warning("micrec.web: copying take %s to %s failed: %s", take.path.name, self.url, exc)
        finally:
            take.lock.release()

    # -- recovery -----------------------------------------------------------------------------
    def recover(self) -> int:
        """Complete the pending takes nobody has touched for ``stale_seconds``; returns how many."""
        cutoff = time.time() - self.stale_seconds
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for obj in self._objects(self.prefix + _PENDING):
            parts = obj["Key"][len(self.prefix) + len(_PENDING):].split("/")
            if len(parts) == 3 and is_take_name(parts[1]):
                groups.setdefault((parts[0], parts[1]), []).append(obj)
        with self._lock:
            mine = set(self._open)
        recovered = 0
        for (owner, name), objects in groups.items():
            newest = max(obj["LastModified"].timestamp() for obj in objects)
            if name in mine or newest > cutoff:
                continue
            try:
                recovered += self._recover_one(owner, name, objects)
            except Exception as exc:  # noqa: BLE001 - one take's failure must not hold up the others
                # A store that has just come back answers listings before it serves every object
                # (SeaweedFS: InternalError on a GetObject for a few seconds): the next look retries.
                log.warning("micrec.web: recovering take %s of %s from %s failed (tried again later): %s",
                            name, owner, self.url, exc)
        self._abort_stale_uploads(cutoff)
        return recovered

    def _recover_one(self, owner: str, name: str, objects: builtins.list[dict[str, Any]]) -> bool:
        key = self._key(owner, name)
        if self._exists(key):  # finished; only its clean-up was cut short
            self._delete_prefix(self._pending(owner, name))
            return False
        spool = self.spool.directory / name
        with tempfile.TemporaryFile() as file:
            size = self._assemble(owner, name, objects, file)
            if _stale_file(spool, self.stale_seconds, size):
                # This host recorded it (a failed final upload, or a killed worker): its own file
                # holds everything the copies hold, and up to the last flush more.
                source: Any = open(spool, "rb")  # noqa: SIM115 - closed below
                size = spool.stat().st_size
            else:
                source = file
            with source:
                source.seek(0)
                self.client.upload_fileobj(source, self.bucket, key, ExtraArgs=_object_args(owner, name))
        log.warning("micrec.web: recovered take %s of %s (%d bytes) left pending by a server that stopped",
                    name, owner, size)
        self._delete_prefix(self._pending(owner, name))
        if _stale_file(spool, self.stale_seconds, 0):
            with contextlib.suppress(OSError):
                spool.unlink()
        return True

    def _assemble(self, owner: str, name: str, objects: builtins.list[dict[str, Any]], file: Any) -> int:
        """Write a pending take's copies, the last head laid over them, into ``file``; its size."""
        chunks = sorted((obj["Key"] for obj in objects if obj["Key"].rsplit("/", 1)[-1].startswith("c-")),
                        key=lambda k: int(k.rsplit("-", 1)[-1]))
        for chunk in chunks:
            offset = int(chunk.rsplit("-", 1)[-1])
            if offset != file.tell():  # a copy is missing: keep what is contiguous
                log.warning("micrec.web: recovering take %s: bytes from %d on are missing", name, file.tell())
                break
            file.write(self.client.get_object(Bucket=self.bucket, Key=chunk)["Body"].read())
        size = int(file.tell())
        head = self._get(self._pending(owner, name) + "head")
        if head is not None and size:
            file.seek(0)
            file.write(head[:size])
        return size

    def _abort_stale_uploads(self, cutoff: float) -> None:
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < cutoff:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])

    def close(self) -> None:
        """Stop the copies and recovery, then upload the takes still open here (the app calls
        this at shutdown, after its connections ended: an ASGI server may cancel a route's own
        upload)."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown()
        with self._lock:
            left = [take.path for take in self._open.values()]
        for path in left:
            self.finish(path)

    # -- helpers ------------------------------------------------------------------------------
    def _upload_final(self, path: Path, owner: str) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(owner, path.name),
                                ExtraArgs=_object_args(owner, path.name))

    def _key(self, owner: str, name: str) -> str:
        return f"{self.prefix}{owner}/{name}"

    def _pending(self, owner: str, name: str) -> str:
        return f"{self.prefix}{_PENDING}{owner}/{name}/"

    def _local(self, owner: str) -> builtins.list[Take]:
        with self._lock:
            paths = [t.path for t in self._open.values() if t.owner == owner]
        takes = []
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                takes.append(Take(path.name, stat.st_size, stat.st_mtime))
        return takes

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    def _get(self, key: str) -> bytes | None:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None

    def _delete_prefix(self, prefix: str) -> None:
        keys = [{"Key": obj["Key"]} for obj in self._objects(prefix)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start:start + 1000],
                                                                   "Quiet": True})

    def _check_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise OutputError(f"cannot use bucket {self.bucket!r} of {self.url!r}: {exc}; check AWS_ENDPOINT_URL, "
                              "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and that the bucket exists",
                              path=self.url, name="store") from exc


def _client() -> Any:
    boto3 = require("boto3", extra="s3")
    from botocore.config import Config

    # One connection per uploader thread and a few for the requests the routes make.
    return boto3.client("s3", config=Config(max_pool_connections=_UPLOADERS + 8,
                                            retries={"max_attempts": 3, "mode": "standard"}))


def _stale_file(path: Path, stale_seconds: float, at_least: int) -> bool:
    """Whether ``path`` is a file of ``at_least`` bytes that nobody wrote for ``stale_seconds``."""
    try:
        stat = path.stat()
    except OSError:
        return False
    return stat.st_mtime < time.time() - stale_seconds and stat.st_size >= at_least


def _object_args(owner: str, name: str) -> dict[str, Any]:
    import mimetypes

    return {"Metadata": {"owner": owner, "micrec-name": name},
            "ContentType": mimetypes.guess_type(name)[0] or "application/octet-stream"}


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
