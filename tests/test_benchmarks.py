"""Smoke tests of the benchmark harness (benchmarks/): its judges, one short live row, the report.

The full benchmark is run by hand (``benchmarks/run.py``); here each piece runs once, briefly,
and the result's structure and audio are checked. No timing is asserted.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bench_files import has_audio
from bench_signal import TONE_HZ, analyse, tone_period

RATE = 44100


def _tone(seconds: int) -> np.ndarray:
    return np.tile(np.frombuffer(tone_period(RATE, 2), dtype="<i2").reshape(-1, 2), (seconds, 1))


def test_analyse_finds_no_dropout_in_a_clean_tone() -> None:
    report = analyse(_tone(2), RATE)
    assert report.dropouts == 0
    assert report.frequency == pytest.approx(TONE_HZ, abs=2)
    assert report.peak_dbfs == pytest.approx(-6.0, abs=0.1)
    assert report.seconds == pytest.approx(2.0)


@pytest.mark.parametrize("cut", ["skip", "silence"])
def test_analyse_counts_each_dropout(cut: str) -> None:
    tone = _tone(3)
    first, second = slice(int(0.8 * RATE), int(0.8 * RATE) + 300), slice(2 * RATE, 2 * RATE + 700)
    if cut == "skip":  # samples lost: the phase jumps
        damaged = np.concatenate([tone[: first.start], tone[first.stop: second.start], tone[second.stop:]])
    else:  # samples replaced by silence: the envelope dips
        damaged = tone.copy()
        damaged[first] = 0
        damaged[second] = 0
    assert analyse(damaged, RATE).dropouts == 2


def test_has_audio_tells_headers_from_audio(tmp_path: Path) -> None:
    for suffix in (".wav", ".flac", ".ogg"):
        path = tmp_path / f"take{suffix}"
        subtype = "OPUS" if suffix == ".ogg" else "PCM_16"
        rate = 48000 if suffix == ".ogg" else RATE
        with sf.SoundFile(path, "w", rate, 2, subtype) as f:
            f.flush()
            assert not has_audio(path), suffix
            f.write(_tone(1))
        assert has_audio(path), suffix
    assert not has_audio(tmp_path / "missing.wav")


@pytest.mark.pulse
def test_one_live_row_and_the_report(tmp_path: Path) -> None:
    if shutil.which("pulseaudio") is None:
        pytest.skip("PulseAudio is not installed")
    from bench_report import write_report
    from bench_tools import TOOLS
    from run import MAIN, parse_args, run_live, run_offline

    args = parse_args(["--quick", "--seconds", "1.5", "--tools", "micrec-api", "--encoders", "wav",
                       "--no-voice", "--offline-seconds", "1"])
    assert [t.key for t in TOOLS if t.key in args.tools] == ["micrec-api"]
    rows = run_live(args, tmp_path)
    assert len(rows) == 1
    row = rows[0]
    assert row["tool"] == "micrec-api" and row["config"] == MAIN.label and row["runs"] == 1
    assert (row["codec"], row["rate"], row["channels"]) == ("pcm_s16le", 44100, 2)
    assert row["ffmpeg_ok"] == "1/1" and row["sndfile_ok"] == "1/1"
    assert row["frequency"] == pytest.approx(TONE_HZ, abs=5)
    assert row["peak_dbfs"] == pytest.approx(-6.0, abs=0.5)
    assert 0.5 < row["seconds"] < 3.0
    for key in ("cpu_steady", "cpu_total", "rss_mb", "first_sample_s", "first_audio_s", "stop_s"):
        assert isinstance(row[key], float) and row[key] > 0, key

    offline = run_offline(args)
    assert offline[0]["encoder"] == "wav" and offline[0]["dsp_off"] > 1
    results = {"command": "test", "date": "today", "runs": 1, "seconds": 1.5, "import_ms": 1.0,
               "load_before": (1.0, 1.0, 1.0), "load_after": (1.0, 1.0, 1.0),
               "machine": {k: "x" for k in ("cpu", "memory", "os", "python", "pulseaudio", "ffmpeg", "sox",
                                            "arecord")},
               "live": rows, "offline": offline, "offline_seconds": 1}
    text = write_report(results, tmp_path).read_text()
    assert "| E. micrec API | wav |" in text and "## Targets" in text and "## Offline throughput" in text
