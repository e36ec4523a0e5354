"""Judging a recorded file from the outside: is there audio in it yet, and does it decode.

:func:`has_audio` reads only container headers (cheap enough to poll every few milliseconds);
:func:`inspect` decodes with the ffmpeg binary and with libsndfile, which micrec's own code
paths do not use for reading.
"""

from __future__ import annotations

import json
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tone import SignalReport, analyse

_TIMEOUT = 60
_SNDFILE_SUFFIXES = (".wav", ".flac", ".ogg", ".opus")


def has_audio(path: Path) -> bool:
    """Whether the file already holds encoded audio, not just headers."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            size = f.seek(0, 2)
    except OSError:
        return False
    suffix = path.suffix.lower()
    if suffix in (".wav", ".wave", ".rf64"):
        return _riff_audio(head, size)
    if suffix == ".flac":
        return _flac_audio(head, size)
    if suffix in (".ogg", ".opus"):
        return _ogg_audio(head)
    if suffix in (".m4a", ".mp4"):
        return _mp4_audio(head, size)
    return size > 0


def _riff_audio(head: bytes, size: int) -> bool:
    pos = 12
    while pos + 8 <= len(head):
        tag, length = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if tag == b"data":
            return size > pos + 8
        pos += 8 + length + (length & 1)
    return False


def _flac_audio(head: bytes, size: int) -> bool:
    if head[:4] != b"fLaC":
        return False
    pos = 4
    while pos + 4 <= len(head):
        last, length = head[pos] & 0x80, int.from_bytes(head[pos + 1:pos + 4], "big")
        pos += 4 + length
        if last:
            return size > pos
    return False


def _ogg_audio(head: bytes) -> bool:
    # Header pages have granule position 0; the first page with audio has a positive one.
    pos = head.find(b"OggS")
    while pos >= 0 and pos + 27 <= len(head):
        granule = struct.unpack("<q", head[pos + 6:pos + 14])[0]
        segments = head[pos + 26]
        table = head[pos + 27:pos + 27 + segments]
        end = pos + 27 + segments + sum(table)
        if len(table) < segments or end > len(head):
            return False
        if granule > 0:
            return True
        pos = end
    return False


def _mp4_audio(head: bytes, size: int) -> bool:
    pos = 0
    while pos + 8 <= len(head):
        length, tag = struct.unpack(">I4s", head[pos:pos + 8])
        if tag == b"mdat":
            return size > pos + 16
        if length == 1 and pos + 16 <= len(head):
            length = struct.unpack(">Q", head[pos + 8:pos + 16])[0]
        if length < 8:
            return False
        pos += length
    return False


@dataclass(frozen=True)
class FileCheck:
    """What independent decoders make of one file."""

    ffmpeg_ok: bool
    sndfile_ok: bool | None  # None: not a format libsndfile reads
    codec: str
    rate: int
    channels: int
    signal: SignalReport | None

    @property
    def seconds(self) -> float:
        return 0.0 if self.signal is None else self.signal.seconds


def inspect(path: Path) -> FileCheck:
    """Probe and decode ``path`` with ffmpeg, and read it with libsndfile where it can."""
    codec, rate, channels = _probe(path)
    samples, ok = _ffmpeg_decode(path, channels) if rate else (None, False)
    report = analyse(samples, rate) if samples is not None and len(samples) else None
    return FileCheck(ok, _sndfile_reads(path), codec, rate, channels, report)


def _probe(path: Path) -> tuple[str, int, int]:
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
                             capture_output=True, timeout=_TIMEOUT, check=True).stdout
        stream = json.loads(out)["streams"][0]
        return str(stream["codec_name"]), int(stream["sample_rate"]), int(stream["channels"])
    except (subprocess.SubprocessError, OSError, KeyError, IndexError, ValueError):
        return "", 0, 0


def _ffmpeg_decode(path: Path, channels: int) -> tuple[np.ndarray | None, bool]:
    """Samples ffmpeg gets out of the file, and whether it did so without an error."""
    try:
        result = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "s16le", "-"],
                                capture_output=True, timeout=_TIMEOUT)
    except (subprocess.SubprocessError, OSError):
        return None, False
    data = np.frombuffer(result.stdout, dtype="<i2")
    samples = data[: len(data) // channels * channels].reshape(-1, channels)
    return samples, result.returncode == 0 and len(samples) > 0


def decode_mono(path: Path, rate: int) -> np.ndarray | None:
    """What ffmpeg reads from ``path``, mixed to mono at ``rate``, as floats in [-1, 1); None if nothing."""
    try:
        result = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-ac", "1", "-ar", str(rate),
                                 "-f", "s16le", "-"], capture_output=True, timeout=_TIMEOUT)
    except (subprocess.SubprocessError, OSError):
        return None
    mono = np.frombuffer(result.stdout[: len(result.stdout) // 2 * 2], dtype="<i2").astype(np.float64) / 32768
    return mono if len(mono) else None


def _sndfile_reads(path: Path) -> bool | None:
    if path.suffix.lower() not in _SNDFILE_SUFFIXES:
        return None
    import soundfile

    try:
        data, _ = soundfile.read(str(path), dtype="int16")
    except Exception:  # noqa: BLE001 - any failure to read is the finding
        return False
    return len(data) > 0
