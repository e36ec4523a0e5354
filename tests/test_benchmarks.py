"""Smoke tests of the benchmark harness (benchmarks/): its judges, one short live row, the report.

The full benchmark is run by hand (``benchmarks/run.py``); here each piece runs once, briefly,
and the result's structure and audio are checked. No timing is asserted.
"""

from __future__ import annotations

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


def test_default_run_is_short_and_covers_both_servers() -> None:
    from run import parse_args

    default, full, quick = parse_args([]), parse_args(["--full"]), parse_args(["--quick"])
    assert default.servers == ["pulseaudio", "pipewire"] and quick.servers == ["pulseaudio"]
    assert default.runs * default.seconds < full.runs * full.seconds
    assert default.no_voice and not full.no_voice


def test_quanta_come_from_the_profilers_period_column() -> None:
    from micrec.vmic import _quanta_from_profile

    line = "\t".join(["13007", "955", "0", "{}", "47", "106"])
    text = "\n".join([line.format(10666), line.format(42666), line.format(21333), "garbage", ""])
    assert _quanta_from_profile(text, 48000) == [512, 2048, 1024]


def test_stream_latencies_are_those_of_the_tools_capture_streams() -> None:
    from bench_pipewire import summarize

    from micrec.vmic import stream_latencies_ms

    def node(pid: int, media_class: str, latency: str | None) -> dict[str, object]:
        props: dict[str, object] = {"media.class": media_class, "application.process.id": str(pid)}
        if latency is not None:
            props["node.latency"] = latency
        return {"type": "PipeWire:Interface:Node", "info": {"props": props}}

    dump = [node(10, "Stream/Input/Audio", "4410/44100"), node(10, "Stream/Output/Audio", "256/48000"),
            node(11, "Stream/Input/Audio", "882/44100"), node(10, "Stream/Input/Audio", None),
            {"type": "PipeWire:Interface:Metadata", "props": {}}]
    assert stream_latencies_ms(dump, [10]) == [100.0]
    assert stream_latencies_ms(dump, [10, 11]) == [100.0, 20.0]
    figures = summarize([100.0, 20.0], [2048, 512, 2048], 1)
    assert figures == {"pw_node_latency_ms": 20.0, "pw_quantum": 2048, "pw_quantum_min": 512, "pw_cycles": 3,
                       "pw_xruns": 1}


@pytest.mark.pulse
@pytest.mark.parametrize("server", ["pulseaudio", "pipewire"])
def test_one_live_row_and_the_report(tmp_path: Path, server: str) -> None:
    from micrec.vmic import missing_programs

    if missing_programs(server):
        pytest.skip(f"{server} is not installed")
    from bench_report import write_report
    from bench_tools import TOOLS
    from run import MAIN, parse_args, run_live, run_offline

    args = parse_args(["--quick", "--seconds", "1.5", "--tools", "micrec-api", "--encoders", "wav",
                       "--no-voice", "--offline-seconds", "1"])
    assert [t.key for t in TOOLS if t.key in args.tools] == ["micrec-api"]
    rows = run_live(args, tmp_path, server)
    assert len(rows) == 1
    row = rows[0]
    assert row["tool"] == "micrec-api" and row["config"] == MAIN.label and row["runs"] == 1
    assert row["server"] == server
    if server == "pipewire":  # what the graph did while micrec recorded
        assert row["pw_node_latency_ms"] > 0 and row["pw_cycles"] > 0
        assert row["pw_quantum_min"] in (2 ** n for n in range(4, 14))
        assert isinstance(row["pw_xruns"], int)
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
    assert ("## PipeWire" in text) == (server == "pipewire")
    if server == "pipewire":
        assert "| PipeWire node.latency ms, E. micrec API | wav |" in text
