"""Write faults keep their cause: a full disk, a deleted output file, a removed directory.

The full disk is a real one: a small tmpfs mounted for the test (CI runs as root; elsewhere
the test is skipped). Every file left behind is judged with ffmpeg (and libsndfile for WAV
and FLAC): it holds what the error message says was recorded, to within the flush interval.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import micrec
from micrec import AudioEncoder, AudioRecorder, AudioRecorderState
from micrec.backends import TestBackend
from micrec.encoders import encoder_class, unavailable_reason

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, tone

pytestmark = pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries")

TONE_HZ = 1000
WAIT = 60.0
#: One per encoder: (encoder, extension).
TAKES = [("wav", "wav"), ("flac", "flac"), ("pcm16bits", "pcm"), ("aacLc", "m4a"), ("aacHe", "aac"),
         ("aacEld", "m4a"), ("opus", "ogg"), ("amrNb", "3gp"), ("amrWb", "amr")]


class Events:
    def __init__(self) -> None:
        self.items: list[micrec.AudioRecorderStateChangeEvent] = []
        self.stopped = threading.Event()

    def __call__(self, event: micrec.AudioRecorderStateChangeEvent) -> None:
        self.items.append(event)
        if event.data == AudioRecorderState.STOPPED:
            self.stopped.set()


def file_rate(encoder: str) -> int:
    cls = encoder_class(AudioEncoder(encoder))
    assert cls is not None
    return cls.admitted_rate(48000)


def recorder(encoder: str, events: Events, *, realtime: bool) -> AudioRecorder:
    reason = unavailable_reason(AudioEncoder(encoder))
    if reason is not None:
        pytest.skip(reason)
    rate = file_rate(encoder)
    backend = TestBackend(tone(TONE_HZ, 1.0, rate), rate, realtime=realtime, after_end="loop")
    return AudioRecorder(audio_encoder=encoder, sample_rate=rate, channels_num=1, bit_rate=64000,
                         on_state_changed=events, backend=backend)


def decode(path: Path, rate: int) -> np.ndarray:
    if path.suffix == ".pcm":
        return ffmpeg_decode(path, channels=1, input_format=["-f", "s16le", "-ar", str(rate), "-ac", "1"])
    return ffmpeg_decode(path)


def stopped_error(events: Events) -> BaseException:
    assert events.stopped.wait(WAIT), "the take did not end"
    stopped = [e for e in events.items if e.data == AudioRecorderState.STOPPED]
    assert len(stopped) == 1
    assert stopped[0].error is not None, "STOPPED without the error"
    return stopped[0].error


def seconds_in(message: str) -> float:
    found = re.search(r"([0-9.]+) s recorded", message) or re.search(r"after ([0-9.]+) s", message)
    assert found, message
    return float(found.group(1))


# -- a full disk -------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 192 KiB tmpfs (needs root; skipped otherwise)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(disk)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        assert os.path.ismount(disk)  # never fill the real disk
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize(("encoder", "ext"), TAKES)
def test_a_full_disk_ends_the_take_with_its_cause(small_disk: Path, encoder: str, ext: str) -> None:
    events = Events()
    rec = recorder(encoder, events, realtime=False)
    path = small_disk / f"take.{ext}"
    rec.start_recording(path)
    error = stopped_error(events)

    assert isinstance(error, micrec.OutputError) and isinstance(error, OSError), repr(error)
    assert error.errno == errno.ENOSPC and error.filename == str(path)
    assert "the disk is full" in str(error) and "ENOSPC" in str(error)
    assert rec.last_error is error and not rec.is_recording()
    kept = seconds_in(str(error))
    rate = file_rate(encoder)
    decoded = decode(path, rate)
    assert kept - 1.0 <= len(decoded) / rate <= kept + 0.1, f"{len(decoded) / rate:.2f} s decoded, {kept} s said"
    assert abs(dominant_frequency(decoded, rate) - TONE_HZ) < 20
    if ext in ("wav", "flac"):
        with sf.SoundFile(path) as f:  # it trusts the header, updated at the last flush
            read = f.read(dtype="int16")
        assert kept - 1.0 <= len(read) / rate <= len(decoded) / rate
        assert np.array_equal(read, decoded[:len(read), 0])


# -- the output file deleted, or its directory removed -----------------------------------------
@pytest.mark.parametrize(("encoder", "ext"), TAKES)
@pytest.mark.parametrize("remove", ["file", "directory"])
def test_a_deleted_output_file_ends_the_take(tmp_path: Path, encoder: str, ext: str, remove: str) -> None:
    events = Events()
    rec = recorder(encoder, events, realtime=True)
    directory = tmp_path / "takes"
    directory.mkdir()
    path = directory / f"take.{ext}"
    rec.start_recording(path)
    deadline = time.monotonic() + WAIT
    while rec.duration_ms < 300:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    if remove == "file":
        path.unlink()
    else:
        shutil.rmtree(directory)
    error = stopped_error(events)

    assert isinstance(error, micrec.OutputError) and error.errno == errno.ENOENT, repr(error)
    assert ("was deleted" if remove == "file" else "removed with its directory") in str(error)
    assert seconds_in(str(error)) >= 0.3
    assert not path.exists()


# -- the interpreter exits with the take open --------------------------------------------------
EXIT_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from micrec import AudioRecorder
    from micrec.backends import TestBackend
    encoder, path, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    t = np.arange(round(seconds * rate)) / rate
    signal = np.round(0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    backend = TestBackend(signal, rate, realtime=False, after_end="stop")
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=rate, channels_num=1,
                        on_state_changed=lambda e: print(e.data, flush=True), backend=backend)
    rec.start_recording(path)
    backend.wait_done(30)
    # returns without stop_recording()
""")
EXIT_SECONDS = 2.27
#: What a codec may add to a take's end (a part-filled last frame) and, for fragmented MP4
#: read by FFmpeg 5.1, at its start (the priming, which that ffmpeg does not drop).
CODEC_PADDING = {"aacLc": 0.05, "aacHe": 0.17, "aacEld": 0.03, "opus": 0.03, "amrNb": 0.03, "amrWb": 0.03}
BLOCK_SECONDS = 0.05


@pytest.mark.parametrize(("encoder", "ext"), TAKES)
def test_interpreter_exit_finalizes_an_open_take(tmp_path: Path, encoder: str, ext: str) -> None:
    if unavailable_reason(AudioEncoder(encoder)) is not None:
        pytest.skip(str(unavailable_reason(AudioEncoder(encoder))))
    rate = file_rate(encoder)
    path = tmp_path / f"take.{ext}"
    result = subprocess.run([sys.executable, "-c", EXIT_CHILD, encoder, str(path), str(rate), str(EXIT_SECONDS)],
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["recording", "stopped"], result.stdout  # the handler ran at exit
    decoded = decode(path, rate)
    seconds = len(decoded) / rate
    padding = CODEC_PADDING.get(encoder, 0.0)
    assert EXIT_SECONDS - BLOCK_SECONDS <= seconds <= EXIT_SECONDS + BLOCK_SECONDS + padding, f"{seconds:.3f} s"
    if ext in ("wav", "flac"):
        with sf.SoundFile(path) as f:  # the header says it all: the file was finalized
            assert f.frames == len(decoded)
    if ext == "flac":
        assert ffprobe(path).duration == pytest.approx(seconds, abs=1e-3)


# -- EDQUOT, EIO, EROFS: the kernel fails the file's writes ---------------------------------------
# No quota-enabled or failing disk can be made here without block devices; a seccomp filter
# installed in the recording child makes the kernel fail every write to the output file's
# descriptor with the chosen errno, under the real libraries (libsndfile, FFmpeg, os.write).
INJECT_CHILD = textwrap.dedent("""
    import ctypes, json, os, sys, threading, time
    import numpy as np
    from micrec import AudioRecorder
    from micrec.backends import TestBackend
    encoder, path, rate, code = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    t = np.arange(rate) / rate
    signal = np.round(0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    ended = threading.Event()
    events = []
    def on_state(e):
        events.append(e)
        if e.data == "stopped":
            ended.set()
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=rate, channels_num=1, bit_rate=64000,
                        on_state_changed=on_state, backend=TestBackend(signal, rate, after_end="loop"))
    rec.start_recording(path)
    while rec.duration_ms < 1200:
        time.sleep(0.02)
    fds = [int(fd) for fd in os.listdir("/proc/self/fd")
           if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(path)]
    assert len(fds) == 1, fds
    def jump(k, jt, jf):
        return (0x15, jt, jf, k)
    program = [(0x20, 0, 0, 4), jump(0xC000003E, 0, 9), (0x20, 0, 0, 0),
               jump(1, 4, 0), jump(18, 3, 0), jump(20, 2, 0), jump(296, 1, 0), jump(328, 0, 3),
               (0x20, 0, 0, 16), jump(fds[0], 0, 1), (0x06, 0, 0, 0x00050000 | code), (0x06, 0, 0, 0x7FFF0000)]
    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]
    filters = (Filter * len(program))(*[Filter(*f) for f in program])
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    # seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC): every thread of the process
    assert libc.syscall(317, 1, 1, ctypes.byref(Program(len(program), filters))) == 0, ctypes.get_errno()
    assert ended.wait(30), "the take did not end"
    error = events[-1].error
    print(json.dumps({"type": type(error).__name__, "oserror": isinstance(error, OSError),
                      "errno": getattr(error, "errno", None), "message": str(error)}), flush=True)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="the seccomp filter is written for Linux on x86-64")
@pytest.mark.parametrize("code", [errno.EDQUOT, errno.EIO, errno.EROFS], ids=errno.errorcode.get)
@pytest.mark.parametrize(("encoder", "ext"), TAKES)
def test_a_failing_disk_ends_the_take_with_its_cause(tmp_path: Path, encoder: str, ext: str, code: int) -> None:
    import json

    if unavailable_reason(AudioEncoder(encoder)) is not None:
        pytest.skip(str(unavailable_reason(AudioEncoder(encoder))))
    rate = file_rate(encoder)
    path = tmp_path / f"take.{ext}"
    result = subprocess.run([sys.executable, "-c", INJECT_CHILD, encoder, str(path), str(rate), str(code)],
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout)
    assert (seen["type"], seen["oserror"], seen["errno"]) == ("OutputError", True, code), seen
    assert errno.errorcode[code] in seen["message"], seen["message"]
    kept = seconds_in(seen["message"])
    assert kept >= 1.2
    decoded = decode(path, rate)
    assert kept - 1.0 <= len(decoded) / rate <= kept + 0.1, f"{len(decoded) / rate:.2f} s decoded, {kept} s said"
    assert abs(dominant_frequency(decoded, rate) - TONE_HZ) < 20
