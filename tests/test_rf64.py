"""WAV switches to RF64 past 4 GiB (needs ~4.5 GB of free disk; skipped where there is less)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from micrec import AudioRecorder
from micrec.backends import TestBackend

from audio import ffprobe

RATE = 192000
FOUR_GIB = 4 * 1024**3


@pytest.mark.slow
def test_wav_past_four_gib_is_rf64(tmp_path: Path) -> None:
    if shutil.disk_usage(tmp_path).free < 6 * 1024**3:
        pytest.skip("needs 6 GB of free disk")
    second = np.random.default_rng(5).integers(-20000, 20000, (RATE, 2), dtype=np.int16)
    # 4 bytes a frame: 5600 s at 192 kHz stereo is just past 4 GiB.
    frames = FOUR_GIB // 4 + RATE * 10
    signal_seconds = frames / RATE
    backend = TestBackend(second, RATE, realtime=False, after_end="loop", block_frames=RATE)
    rec = AudioRecorder(sample_rate=RATE, channels_num=2, backend=backend)
    path = tmp_path / "huge.wav"
    rec.start_recording(path)
    import time

    while rec.duration_ms < signal_seconds * 1000:
        time.sleep(0.05)
    rec.stop_recording()
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        assert head == b"RF64"
        assert path.stat().st_size > FOUR_GIB
        probe = ffprobe(path)
        assert probe.codec == "pcm_s16le" and probe.rate == RATE
        assert probe.duration > FOUR_GIB / 4 / RATE
        with open(path, "rb") as f:  # the last second is the signal, intact
            f.seek(-RATE * 4, 2)
            tail = np.frombuffer(f.read(), dtype="<i2").reshape(-1, 2)
        assert len(tail) == RATE and np.abs(tail).max() > 10000
    finally:
        path.unlink(missing_ok=True)


def test_short_wav_is_plain_riff(tmp_path: Path) -> None:
    tone = np.zeros((4800, 1), dtype=np.int16)
    rec = AudioRecorder(sample_rate=48000, channels_num=1,
                        backend=TestBackend(tone, 48000, realtime=False, after_end="stop"))
    rec.start_recording(tmp_path / "small.wav")
    assert isinstance(rec.backend, TestBackend)
    rec.backend.wait_done(10)
    rec.stop_recording()
    assert (tmp_path / "small.wav").read_bytes()[:4] == b"RIFF"


@pytest.mark.parametrize(("name", "suffix"), [("WavEncoder", ".wav"), ("FlacEncoder", ".flac")])
def test_libsndfile_writers_take_any_block_layout_bit_exact(tmp_path: Path, name: str, suffix: str) -> None:
    """C-contiguous native int16 goes to sf_writef_short as it is; other layouts and byte orders are copied first."""
    import subprocess

    from micrec.encoders import flac, wav

    cls = getattr(wav if name == "WavEncoder" else flac, name)
    rng = np.random.default_rng(7)
    audio = rng.integers(-32768, 32767, (12000, 2), dtype=np.int16, endpoint=True)
    path = tmp_path / f"take{suffix}"
    encoder = cls(str(path), 48000, 2, 0)
    encoder.write(audio[:4000])  # contiguous: the direct call
    encoder.write(np.asfortranarray(audio[4000:8000]))  # not C-contiguous
    encoder.write(audio[8000:10000].astype(np.int16))
    encoder.write(audio[10000:].astype(">i2"))  # int16 in the other byte order
    encoder.close()
    assert encoder.frames_written == len(audio)
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-"], capture_output=True,
                             check=True).stdout
    assert np.array_equal(np.frombuffer(decoded, dtype=np.int16).reshape(-1, 2), audio)
