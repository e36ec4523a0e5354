"""Soak: a one-hour take fed faster than real time, and a hundred short takes in one process.

The hour is recorded at 8 kHz mono through the test backend (as fast as the pipeline takes
it), paused and resumed at about every second of audio (the loop polls the written length)
and cut back half a second (``seek``) at every sixtieth pause; ``duration=3600`` makes the
take end by itself at exactly one hour. The file must be exactly one hour long (libsndfile and
ffprobe) and the process's resident memory flat. The short takes cycle through every encoder;
threads and open file descriptors must not grow.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from micrec import AudioEncoder, AudioRecorder
from micrec.backends import TestBackend
from micrec.encoders import encoder_class, unavailable_reason
from micrec.errors import StateError

from audio import ffprobe, have_ffmpeg, tone

RATE = 8000
HOUR = 3600
WAIT = 120.0
#: Resident memory the hour may add after its first ten minutes (allocator noise, caches).
RSS_GROWTH_LIMIT = 8 * 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident size from /proc")
@pytest.mark.skipif(not have_ffmpeg(), reason="needs ffprobe")
def test_an_hour_with_pauses_and_seeks_is_exact_and_flat(tmp_path: Path) -> None:
    backend = TestBackend(tone(440, 1.0, RATE), RATE, realtime=False, after_end="loop")
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, backend=backend)
    path = tmp_path / "hour.wav"
    rec.start_recording(path, duration=HOUR)
    pauses = seeks = 0
    next_mark, rss_at_ten_minutes, peak_rss = 1000.0, 0, 0
    deadline = time.monotonic() + WAIT
    while rec.is_recording():
        assert time.monotonic() < deadline, f"the hour did not end ({rec.duration_ms / 1000:.0f} s written)"
        if rec.duration_ms < next_mark:
            time.sleep(0.0005)
            continue
        rec.pause_recording()
        if not rec.is_recording():
            break
        pauses += 1
        if pauses % 60 == 0:
            try:
                rec.seek(rec.duration_ms - 500)
            except StateError:
                break  # blocks queued before the pause completed the hour: checked below
            seeks += 1
        rec.resume_recording()
        next_mark = rec.duration_ms + 1000
        if rss_at_ten_minutes == 0 and rec.duration_ms >= 600_000:
            rss_at_ten_minutes = rss_bytes()
        peak_rss = max(peak_rss, rss_bytes())
    rec.stop_recording()  # it ended by itself, at the hour
    assert rec.last_error is None
    # About every second: the feed runs some 100 times real time, so the loop lands late, and
    # later on a busy machine (1826 pauses in one CI run).
    assert pauses > 1000 and seeks > 15, (pauses, seeks)

    with sf.SoundFile(path) as f:
        assert (f.frames, f.samplerate) == (HOUR * RATE, RATE)
    assert ffprobe(path).duration == pytest.approx(HOUR, abs=1 / RATE)
    assert path.stat().st_size - HOUR * RATE * 2 in range(44, 200)  # plain RIFF/WAVE: a header, the data
    assert peak_rss - rss_at_ten_minutes < RSS_GROWTH_LIMIT, (
        f"resident memory grew by {(peak_rss - rss_at_ten_minutes) / 2**20:.1f} MiB after the first ten minutes")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_hundred_short_takes_leave_no_threads_or_descriptors(tmp_path: Path) -> None:
    codecs = [c for c in AudioEncoder if unavailable_reason(c) is None]
    rec = AudioRecorder(channels_num=1, backend=TestBackend(tone(440, 1.0, 48000), 48000, realtime=False,
                                                               after_end="loop"))

    def take(n: int) -> None:
        codec = codecs[n % len(codecs)]
        cls = encoder_class(codec)
        assert cls is not None
        rec.audio_encoder = codec
        rec.sample_rate = cls.admitted_rate(48000)
        path = tmp_path / f"take{n}{cls.extensions[0]}"
        rec.start_recording(path, duration=0.2)
        deadline = time.monotonic() + WAIT
        while rec.is_recording():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        rec.stop_recording()
        assert rec.last_error is None, rec.last_error
        assert rec.wait_for_events(WAIT)
        path.unlink()

    for n in range(len(codecs)):  # every encoder once: its libraries are loaded and cached
        take(n)
    gc.collect()
    threads, fds = threading.active_count(), open_fds()
    for n in range(len(codecs), 100):
        take(n)
    gc.collect()
    assert threading.active_count() <= threads, [t.name for t in threading.enumerate()]
    assert open_fds() <= fds, sorted(os.listdir("/proc/self/fd"))
    assert np.isfinite(rec.get_amplitude().max)
