"""Memory stays flat however long the take: a 10-minute take ends within 10 MB of a 10-second one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from micrec import AudioRecorder
    from micrec.backends import TestBackend
    seconds, path, encoder = float(sys.argv[1]), sys.argv[2], sys.argv[3]
    rate = 44100
    one = (np.random.default_rng(1).integers(-8000, 8000, (rate, 2))).astype(np.int16)
    backend = TestBackend(one, rate, realtime=False, after_end="loop", block_frames=882)
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=rate, channels_num=2, backend=backend)
    rec.start_recording(path)
    import time
    while rec.duration_ms < seconds * 1000:
        time.sleep(0.01)
    rec.stop_recording()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB
""")


def peak_rss_kib(seconds: float, path: Path, encoder: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(seconds), str(path), encoder],
                         capture_output=True, text=True, timeout=300, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("encoder,suffix", [("wav", ".wav"), ("flac", ".flac")])
def test_ten_minutes_cost_no_more_memory_than_ten_seconds(tmp_path: Path, encoder: str, suffix: str) -> None:
    short = peak_rss_kib(10, tmp_path / f"short{suffix}", encoder)
    long = peak_rss_kib(600, tmp_path / f"long{suffix}", encoder)
    assert long - short < 10 * 1024, f"10 s: {short} KiB, 10 min: {long} KiB"
    assert (tmp_path / f"long{suffix}").stat().st_size > (tmp_path / f"short{suffix}").stat().st_size * 20
