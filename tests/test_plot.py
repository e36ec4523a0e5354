"""micrec.plot: the numbers of a picture (on known signals) and the PNG of every format micrec writes.

The takes are written by micrec itself (from the test backend) and read back by micrec.plot's
decoders; each PNG is opened again and its pixels checked where the waveform, the silence and
the clipping must be.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from micrec import AudioEncoder, AudioRecorder, InvalidConfigError
from micrec.backends import TestBackend
from micrec.cli import main
from micrec.plot import analyse, analyse_take, open_take, plot_take, read_take, title_of
from micrec.plot.analysis import analyse_blocks, clipped_mask, envelope, find_silences, level_dbfs
from micrec.plot.draw import COLORS, layout

from audio import tone

RATE = 48000


def overdriven(freq: float, seconds: float, gain: float) -> np.ndarray:
    """A sine ``gain`` times full scale, clipped at 16 bits as a converter would."""
    t = np.arange(int(seconds * RATE)) / RATE
    return np.clip(np.round(gain * 32767 * np.sin(2 * np.pi * freq * t)), -32768, 32767).astype(np.int16)


# -- the numbers -----------------------------------------------------------------------------
def test_envelope_is_the_min_and_max_of_each_column() -> None:
    saw = (np.arange(1000) % 100 / 100).astype(np.float32)  # each 100-sample column: 0 .. 0.99
    stereo = np.stack([saw, -saw], axis=1)
    low, high = envelope(stereo, 10)
    assert low.shape == high.shape == (10, 2)
    assert np.allclose(low[:, 0], 0) and np.allclose(high[:, 0], 0.99)
    assert np.allclose(low[:, 1], -0.99) and np.allclose(high[:, 1], 0)


def test_envelope_of_uneven_columns_covers_every_sample_once() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 1001).astype(np.float32)
    low, high = envelope(x, 7)
    edges = np.arange(8) * 1001 // 7
    for c in range(7):
        part = x[edges[c]:edges[c + 1]]
        assert (low[c, 0], high[c, 0]) == (part.min(), part.max())


def test_envelope_with_more_columns_than_samples_and_empty() -> None:
    x = np.array([0.5, -0.25, 1.0], dtype=np.float32)
    low, high = envelope(x, 6)  # each column shows the sample under it: no gaps
    assert list(high[:, 0]) == [0.5, 0.5, -0.25, -0.25, 1.0, 1.0]
    assert np.array_equal(low, high)
    low, high = envelope(np.zeros((0, 2), dtype=np.float32), 4)
    assert low.shape == (4, 2) and not low.any() and not high.any()
    with pytest.raises(ValueError, match="columns"):
        envelope(x, 0)


def test_level_of_known_signals() -> None:
    half_sine = tone(1000, 1.0, RATE, amplitude=0.5) / 32768
    levels = level_dbfs(half_sine, RATE, 0.05)
    assert len(levels) == 20
    assert levels == pytest.approx(-9.03, abs=0.05)  # RMS of a 0.5 sine: 0.5/sqrt(2)
    assert level_dbfs(np.zeros(4800), RATE).tolist() == [-120.0, -120.0]
    assert len(level_dbfs(np.zeros(4801), RATE)) == 3  # the last, shorter window counts


def test_silences_and_clipping() -> None:
    levels = np.array([-10, -70, -70, -70, -10, -70, -10, -70, -70, -70, -70], dtype=float)
    assert find_silences(levels, 0.1, -50, 0.3) == [pytest.approx((0.1, 0.4)), pytest.approx((0.7, 1.1))]
    x = np.zeros((100, 2), dtype=np.float32)
    x[10, 0], x[20, 1], x[30, 0] = 32767 / 32768, -1.0, 32766 / 32768
    assert clipped_mask(x).sum() == 2


def test_analyse_a_take_with_a_tone_a_gap_and_clipping() -> None:
    signal = np.concatenate([tone(440, 1.0, RATE, 0.5), np.zeros(RATE // 2, np.int16),
                             overdriven(440, 0.5, 1.2)])
    samples = (signal / 32768).astype(np.float32).reshape(-1, 1)
    a = analyse(samples, RATE, 200)
    assert a.duration == 2.0
    assert a.peak_db == 0.0  # -32768 is full scale
    assert a.clipped == int(np.sum(np.abs(signal.astype(np.int32)) >= 32767))
    assert a.clipped > 0
    clipped_columns = np.flatnonzero(a.clipped_columns[:, 0])
    assert clipped_columns.min() >= 150 and clipped_columns.max() == 199
    assert a.silences == [pytest.approx((1.0, 1.5))]
    assert a.high[:100, 0].max() == pytest.approx(0.5, abs=0.001)


def test_block_by_block_is_the_same_as_whole() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.0, 1.0, (100_003, 2)).astype(np.float32)
    x[777, 1] = 1.0
    whole = analyse(x, RATE, 333)
    parts = [x[i:i + 4096] for i in range(0, len(x), 4096)]
    chunked = analyse_blocks(parts, RATE, 2, len(x), 333)
    for name in ("low", "high", "clipped_columns"):
        assert np.array_equal(getattr(whole, name), getattr(chunked, name)), name
    assert np.allclose(whole.level_db, chunked.level_db, atol=1e-9)  # sums in another order
    assert (whole.clipped, whole.peak_db, whole.frames) == (chunked.clipped, chunked.peak_db, chunked.frames)
    # A length that was an estimate: extra samples land in the last column, missing ones leave
    # the last columns at zero.
    longer = analyse_blocks(parts, RATE, 2, len(x) - 500, 333)
    assert longer.frames == len(x) and longer.high[-1, 0] == x[-800:, 0].max()
    shorter = analyse_blocks(parts, RATE, 2, len(x) + 5000, 333)
    assert shorter.high[-1, 0] == 0 and shorter.high[0, 0] == whole.high[0, 0]


# -- the pictures ----------------------------------------------------------------------------
TONE_S, GAP_S = 1.0, 0.6
SIGNAL = np.concatenate([tone(440, TONE_S, RATE, 0.5), np.zeros(int(GAP_S * RATE), np.int16),
                         tone(440, 0.8, RATE, 0.5)])

# (encoder, file name, the format label micrec.plot gives it)
FORMATS = [
    ("wav", "take.wav", "WAV 16-bit PCM"),
    ("flac", "take.flac", "FLAC 16-bit PCM"),
    ("pcm16bits", "take.pcm", "raw PCM16"),
    ("opus", "take.ogg", "Opus in Ogg"),
    ("opus", "take.webm", "Opus in WebM"),
    ("aacLc", "take.m4a", "AAC-LC in MP4"),
    ("aacLc", "take.aac", "AAC-LC in ADTS"),
    ("aacHe", "take-he.m4a", "HE-AAC in MP4"),
    ("aacEld", "take-eld.m4a", "AAC-ELD in MP4"),
    ("amrNb", "take.amr", "AMR-NB"),
    ("amrNb", "take.3gp", "AMR-NB in 3GP"),
    ("amrWb", "take.awb", "AMR-WB"),
]


def record(tmp_path: Path, encoder: str, name: str) -> Path:
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=RATE, channels_num=1,
                        backend=TestBackend(SIGNAL, RATE, realtime=False, after_end="stop"))
    if not rec.is_supported_encoder(encoder):
        pytest.skip(f"{encoder} cannot be recorded here")
    path = tmp_path / name
    rec.start_recording(path)
    assert isinstance(rec.backend, TestBackend) and rec.backend.wait_done(60)
    assert rec.stop_recording() == str(path)
    return path


def wave_rows(image: Image.Image, x: int, top: int, bottom: int) -> list[int]:
    return [y for y in range(top, bottom) if image.getpixel((x, y)) in (COLORS["wave"], COLORS["clip"])]


@pytest.mark.parametrize("encoder,name,label", FORMATS, ids=[f[1] for f in FORMATS])
def test_every_format_is_drawn(tmp_path: Path, encoder: str, name: str, label: str) -> None:
    path = record(tmp_path, encoder, name)
    raw = {"rate": RATE, "channels": 1} if encoder == "pcm16bits" else {}
    take = read_take(path, **raw)  # type: ignore[arg-type]
    assert take.format.startswith(label)
    expected_rate = {"amrNb": 8000, "amrWb": 16000}.get(encoder, RATE)
    # FFmpeg decodes a mono HE-AAC stream as stereo (parametric stereo is implicit in it).
    assert take.rate == expected_rate and take.channels == (2 if encoder == "aacHe" else 1)
    assert take.duration == pytest.approx(len(SIGNAL) / RATE, abs=0.1)
    # Counted from the packets: within the codec's delay (HE-AAC's is the longest, ~0.1 s).
    assert open_take(path, **raw).frames == pytest.approx(take.frames, abs=0.11 * take.rate)  # type: ignore[arg-type]
    assert analyse_take(open_take(path, **raw), 900, 420).frames == take.frames  # type: ignore[arg-type]

    width, height = 900, 420
    png = plot_take(path, tmp_path / f"{name}.png", width=width, height=height, **raw)  # type: ignore[arg-type]
    image = Image.open(png)
    assert image.format == "PNG" and image.size == (width, height)
    image = image.convert("RGB")
    box = layout(width, height, take.channels)
    lane = box.lanes[0]
    seconds = take.duration

    def column(t: float) -> int:
        return lane.left + int(t / seconds * box.columns)

    # In the tone: the waveform spans the lane's middle +- half of its half-height (amplitude 0.5).
    rows = wave_rows(image, column(0.5), lane.top, lane.bottom)
    extent = (max(rows) - min(rows)) / (lane.height - 1)
    assert extent == pytest.approx(0.5, abs=0.15)  # lossy codecs change a tone's peak by up to ~2 dB
    assert (max(rows) + min(rows)) / 2 == pytest.approx(lane.middle, abs=3)
    # In the gap: the zero line only, on the silence shade.
    gap = column(TONE_S + GAP_S / 2)
    assert len(wave_rows(image, gap, lane.top, lane.bottom)) <= 3
    assert image.getpixel((gap, lane.top + 5)) == COLORS["silence"]
    assert image.getpixel((column(0.5), lane.top + 5)) == COLORS["lane"]
    # The level lane: filled under the tone (-9 dBFS), not in the gap.
    level_rows = [y for y in range(box.level.top, box.level.bottom)
                  if image.getpixel((column(0.5), y)) in (COLORS["level"], COLORS["level_fill"])]
    assert min(level_rows) == pytest.approx(box.level.top + 9.03 / 80 * (box.level.height - 1), abs=4)
    # The silence is found where it is (lossy codecs smear its edges by a few tens of ms).
    analysis = analyse(take.samples, take.rate, box.columns)
    assert len(analysis.silences) == 1
    start, end = analysis.silences[0]
    assert start == pytest.approx(TONE_S, abs=0.12) and end == pytest.approx(TONE_S + GAP_S, abs=0.12)
    title = title_of(take, analysis)
    assert label in title and f"{take.duration:.2f} s" in title
    peak = float(title.split("peak ")[1].split(" dBFS")[0])
    # The title's peak is the decoded file's own (micrec.plot rounds it to 0.1 dB) ...
    assert peak == pytest.approx(20 * np.log10(np.abs(take.samples).max()), abs=0.051)
    # ... and near the tone's -6 dBFS. Lossy codecs move a tone's peak; AMR-NB's moves with the
    # resampler's last-bit rounding, which depends on block boundaries: -5.8 to -4.4 in 30 takes.
    codec_change = {"wav": 0.3, "flac": 0.3, "pcm16bits": 0.3, "amrNb": 2.5, "amrWb": 2.5}.get(encoder, 1.5)
    assert peak == pytest.approx(-6.0, abs=codec_change)


def test_a_stereo_picture_with_clipping(tmp_path: Path) -> None:
    loud = overdriven(300, 1.0, 1.5)
    stereo = np.stack([loud, tone(300, 1.0, RATE, 0.25)], axis=1)
    import soundfile as sf

    path = tmp_path / "clip.wav"
    sf.write(path, stereo, RATE, subtype="PCM_16")
    png = plot_take(path, width=600, height=400)
    assert png == tmp_path / "clip.wav.png"
    image = Image.open(png).convert("RGB")
    box = layout(600, 400, 2)
    # A column is 1.9 ms, shorter than a period of 300 Hz: look at a few of them together.
    xs = range(box.lanes[0].left + box.columns // 2, box.lanes[0].left + box.columns // 2 + 4)
    left_colors = {image.getpixel((x, y)) for x in xs for y in range(box.lanes[0].top, box.lanes[0].bottom)}
    right_rows = [y for x in xs for y in wave_rows(image, x, box.lanes[1].top, box.lanes[1].bottom)]
    assert COLORS["clip"] in left_colors and COLORS["wave"] not in left_colors
    assert all(image.getpixel((x, y)) != COLORS["clip"] for x in xs for y in right_rows)
    assert (max(right_rows) - min(right_rows)) / (box.lanes[1].height - 1) == pytest.approx(0.25, abs=0.03)


def test_cli_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = record(tmp_path, "pcm16bits", "take.pcm")
    out = tmp_path / "pic.png"
    assert main(["plot", str(path), "-o", str(out), "--rate", str(RATE), "--channels", "1",
                 "--size", "640x360"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert Image.open(out).size == (640, 360)
    assert main(["plot", str(path)]) == 1
    err = capsys.readouterr().err
    assert "--rate" in err and "raw PCM16" in err
    assert main(["plot", str(tmp_path / "missing.wav")]) == 1
    assert "no file at" in capsys.readouterr().err
    assert main(["plot", str(path), "--size", "big"]) == 2
    (tmp_path / "junk.ogg").write_bytes(b"not audio at all" * 10)
    with pytest.raises(InvalidConfigError, match=r"junk\.ogg"):
        read_take(tmp_path / "junk.ogg")
    with pytest.raises(InvalidConfigError, match=r"size|pixels"):
        plot_take(path, width=10, height=10, rate=RATE, channels=1)


def test_missing_pillow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    path = tmp_path / "t.wav"
    sf.write(path, tone(440, 0.2, RATE), RATE)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r"micrec\[plot\]"):
        plot_take(path)
    assert not (tmp_path / "t.wav.png").exists()


def test_encoders_listed_here_are_all_the_encoders() -> None:
    assert {f[0] for f in FORMATS} == {e.value for e in AudioEncoder}
