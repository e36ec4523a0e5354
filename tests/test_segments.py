"""segment_seconds: one take as {stem}-0001{suffix}, {stem}-0002{suffix}, … without a gap.

The joins are judged sample by sample: the lossless segments put end to end must be the take
(the same blocks written to one file), on the test backend and on the real sound server.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from micrec import AudioRecorder, AudioRecorderStateChangeEvent, InvalidConfigError
from micrec.backends import TestBackend
from micrec.encoders.segmented import segment_path
from micrec.vmic import VirtualMicrophone

from audio import ffmpeg_decode, ffprobe, have_ffmpeg, match_feed, noise, tone

RATE = 48000
LOSSLESS = [("wav", ".wav"), ("flac", ".flac"), ("pcm16bits", ".pcm")]


def read_pcm16(path: str | Path, channels: int) -> np.ndarray:
    if Path(path).suffix == ".pcm":
        return np.fromfile(path, dtype="<i2").reshape(-1, channels)
    data, _ = sf.read(path, dtype="int16", always_2d=True)
    return data


def wait_until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def record_offline(tmp_path: Path, encoder: str, suffix: str, signal: np.ndarray, name: str,
                   **settings: object) -> AudioRecorder:
    channels = signal.shape[1] if signal.ndim > 1 else 1
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=RATE, channels_num=channels,
                        backend=TestBackend(signal, RATE, realtime=False, after_end="stop", block_frames=1100),
                        **settings)  # type: ignore[arg-type]
    rec.start_recording(tmp_path / f"{name}{suffix}")
    assert isinstance(rec.backend, TestBackend)
    assert rec.backend.wait_done(30)
    wait_until_stable(rec)
    return rec


def wait_until_stable(rec: AudioRecorder) -> None:
    """Until blocks already delivered are written (the length stops growing)."""
    last = -1.0
    while rec.duration_ms != last:
        last = rec.duration_ms
        time.sleep(0.1)


@pytest.mark.parametrize("encoder,suffix", LOSSLESS)
def test_lossless_segments_put_end_to_end_are_the_take(tmp_path: Path, encoder: str, suffix: str) -> None:
    signal = np.stack([noise(2.2, RATE, seed=5), noise(2.2, RATE, seed=6)], axis=1)
    whole = record_offline(tmp_path, encoder, suffix, signal, "whole")
    whole_path = whole.stop_recording()
    assert whole.segment_paths == []
    rec = record_offline(tmp_path, encoder, suffix, signal, "take", segment_seconds=0.5)
    last = rec.stop_recording()
    expected = [str(tmp_path / f"take-{n:04d}{suffix}") for n in range(1, 6)]
    assert rec.segment_paths == expected
    assert last == expected[-1]
    assert not (tmp_path / f"take{suffix}").exists()
    parts = [read_pcm16(p, 2) for p in expected]
    assert [len(p) for p in parts] == [24000] * 4 + [len(signal) - 96000]  # the last one shorter
    joined = np.concatenate(parts)
    assert whole_path is not None
    assert np.array_equal(joined, read_pcm16(whole_path, 2))  # bit-exact, no sample lost or repeated
    assert np.array_equal(joined, signal)


def test_every_full_segment_is_finalized_while_the_take_goes_on(tmp_path: Path) -> None:
    rec = AudioRecorder(audio_encoder="flac", sample_rate=RATE, channels_num=1, segment_seconds=0.5,
                        backend=TestBackend(tone(440, 30, RATE), RATE))
    rec.start_recording(tmp_path / "live.flac")
    wait_until(lambda: len(rec.segment_paths) >= 3)
    first, second = rec.segment_paths[:2]
    # Readable as complete files by another library while the recorder still runs.
    assert sf.info(first).frames == 24000 and sf.info(second).frames == 24000
    rec.stop_recording()


def test_seek_works_within_the_open_segment_and_says_why_not_before_it(tmp_path: Path) -> None:
    ramp = (np.arange(RATE * 9) % 30000).astype(np.int16)
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, segment_seconds=1.0,
                        backend=TestBackend(ramp, RATE, after_end="stop"))
    rec.start_recording(tmp_path / "s.wav")
    wait_until(lambda: rec.duration_ms >= 1600)
    rec.pause()
    wait_until_stable(rec)  # blocks queued before the pause are still written
    open_start = (len(rec.segment_paths) - 1) * 1000  # ms; a busy machine may be past the first join
    with pytest.raises(InvalidConfigError, match="segment") as info:
        rec.seek(open_start - 500)  # in a finalized segment
    assert info.value.name == "position_milliseconds"
    target = open_start + int(rec.duration_ms - open_start) // 2
    rec.seek(target)
    assert rec.duration_ms == target
    rec.resume()
    wait_until(lambda: rec.duration_ms >= open_start + 2500)
    rec.stop_recording()
    joined = np.concatenate([read_pcm16(p, 1)[:, 0] for p in rec.segment_paths])
    cut = RATE * target // 1000
    assert len(rec.segment_paths) >= 3
    assert np.array_equal(joined[:cut], ramp[:cut])
    assert joined[cut] != ramp[cut]  # resumed audio follows the cut, across the join that comes next
    assert np.all(np.diff(joined[cut:].astype(np.int32)) % 30000 == 1)  # the rest runs on unbroken


def test_pause_and_resume_across_a_join_and_events_carry_the_segment_paths(tmp_path: Path) -> None:
    events: list[AudioRecorderStateChangeEvent] = []
    ramp = (np.arange(RATE * 8) % 30000).astype(np.int16)
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, segment_seconds=1.0, on_state_changed=events.append,
                        backend=TestBackend(ramp, RATE, after_end="stop"))
    rec.start_recording(tmp_path / "p.wav")
    wait_until(lambda: rec.duration_ms >= 700)
    rec.pause()
    time.sleep(0.4)
    rec.resume()
    wait_until(lambda: rec.duration_ms >= 2300)
    last = rec.stop_recording()
    rec.wait_for_events(5)
    assert [e.data for e in events] == ["recording", "paused", "recording", "stopped"]
    assert events[0].path == str(tmp_path / "p-0001.wav") and events[-1].path == last
    joined = np.concatenate([read_pcm16(p, 1)[:, 0] for p in rec.segment_paths])
    steps = np.diff(joined.astype(np.int32)) % 30000
    assert np.count_nonzero(steps != 1) == 1  # one jump (the pause), none at the joins


def test_cancel_deletes_every_segment(tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, segment_seconds=0.2,
                        backend=TestBackend(tone(440, 10, RATE), RATE))
    rec.start_recording(tmp_path / "c.wav")
    wait_until(lambda: len(rec.segment_paths) >= 3)
    rec.cancel_recording()
    assert list(tmp_path.iterdir()) == []
    assert rec.segment_paths == []


@pytest.mark.parametrize("value", [0, -1.0, "2", True, float("inf")])
def test_bad_segment_lengths_raise_naming_the_value(tmp_path: Path, value: object) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, segment_seconds=value,  # type: ignore[arg-type]
                        backend=TestBackend(tone(440, 1, RATE), RATE))
    with pytest.raises(InvalidConfigError, match="segment_seconds") as info:
        rec.start_recording(tmp_path / "x.wav")
    assert info.value.name == "segment_seconds"
    assert list(tmp_path.iterdir()) == []


def test_segment_names() -> None:
    assert segment_path("/a/take.m4a", 12) == Path("/a/take-0012.m4a")
    assert segment_path("take", 1) == Path("take-0001")


@pytest.mark.skipif(not have_ffmpeg(), reason="needs ffmpeg")
@pytest.mark.parametrize("encoder,suffix,codec", [("aacLc", ".m4a", "aac"), ("opus", ".ogg", "opus"),
                                                  ("amrWb", ".awb", "amr_wb")])
def test_lossy_segments_each_decode_and_keep_the_take_length(tmp_path: Path, encoder: str, suffix: str,
                                                             codec: str) -> None:
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=RATE, channels_num=1)
    if not rec.is_supported_encoder(encoder):
        pytest.skip(f"{encoder} is not supported here")
    signal = tone(440, 3.3, RATE, amplitude=0.3)
    rec = record_offline(tmp_path, encoder, suffix, signal, "lossy", segment_seconds=1.0)
    rec.stop_recording()
    assert len(rec.segment_paths) == 4
    rate = ffprobe(rec.segment_paths[0]).rate
    total = 0.0
    for path in rec.segment_paths:
        assert ffprobe(path).codec == codec
        total += len(ffmpeg_decode(path)) / rate
    # Nothing is lost; each file carries its own priming/padding (docs/segments.md): < 50 ms a file.
    assert 3.3 - 0.005 <= total <= 3.3 + 0.05 * len(rec.segment_paths)


@pytest.mark.pulse
@pytest.mark.parametrize("encoder,suffix", LOSSLESS)
def test_segments_on_the_real_stack_are_the_captured_blocks_bit_exact(vmic: VirtualMicrophone, tmp_path: Path,
                                                                      encoder: str, suffix: str) -> None:
    feed = noise(6.0, RATE, seed=17)
    vmic.play_samples(feed, RATE, mic="vmic_a")
    blocks: list[np.ndarray] = []
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=RATE, channels_num=1, device="vmic_a",
                        segment_seconds=0.7, on_audio=lambda b: blocks.append(b.copy()))
    time.sleep(0.3)
    rec.start_recording(tmp_path / f"real{suffix}")
    wait_until(lambda: rec.duration_ms >= 2600)
    last = rec.stop_recording()
    parts = [read_pcm16(p, 1)[:, 0] for p in rec.segment_paths]
    assert last == rec.segment_paths[-1] and len(parts) >= 4  # more on a busy machine (written by the stop)
    assert all(len(p) == round(0.7 * RATE) for p in parts[:-1]) and 0 < len(parts[-1]) <= round(0.7 * RATE)
    joined = np.concatenate(parts)
    assert np.array_equal(joined, np.concatenate(blocks)[:, 0])  # what was captured, split without loss
    match = match_feed(joined, feed)
    assert match.bad_samples == 0  # and it is the microphone's feed, bit for bit
    assert match.matched > 0.8 * len(joined)


@pytest.mark.pulse
def test_the_cli_writes_segments_and_names_them(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    import subprocess
    import sys

    vmic.play_tone(440.0, 8)
    out = tmp_path / "cli.flac"
    result = subprocess.run([sys.executable, "-m", "micrec", "record", str(out), "-r", "48000", "-c", "1",
                             "--segment", "0.5", "--duration", "1.2", "-q"],
                            capture_output=True, text=True, timeout=60, env=vmic.env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    names = [tmp_path / f"cli-{n:04d}.flac" for n in (1, 2, 3)]
    assert f"wrote 3 segments {names[0]} .. {names[2]}" in result.stdout
    assert [sf.info(p).frames for p in names] == [24000, 24000, 9600]
    assert not out.exists()
    bad = subprocess.run([sys.executable, "-m", "micrec", "record", str(out), "--segment", "0"],
                         capture_output=True, text=True, timeout=60, env=vmic.env)
    assert bad.returncode == 2 and "--segment" in bad.stderr and "positive" in bad.stderr
