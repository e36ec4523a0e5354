"""Block pacing and the first flush, on the test backend (the real-stack check is in test_pulse.py)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
import soundfile as sf

import micrec.session
from micrec import AudioRecorder
from micrec._pacing import BlockPacer
from micrec.backends import TestBackend

from audio import tone

RATE = 16000


def _pacer(listeners: list[object]) -> tuple[BlockPacer, list[int]]:
    asked: list[int] = []
    return BlockPacer(asked.append, 1600, 6400, lambda: bool(listeners)), asked


def test_the_pacer_relaxes_after_the_idle_time_and_shortens_at_a_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("micrec._pacing.IDLE_SECONDS", 0.0)
    pacer, asked = _pacer([])
    pacer.block_done()
    assert asked == [6400] and pacer.relaxed
    pacer.block_done()
    assert asked == [6400]  # asked once
    pacer.touch()
    assert asked == [6400, 1600] and not pacer.relaxed
    pacer.touch()
    assert asked == [6400, 1600]


def test_the_pacer_waits_for_the_idle_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("micrec._pacing.IDLE_SECONDS", 3600.0)
    pacer, asked = _pacer([])
    for _ in range(10):
        pacer.block_done()
    assert asked == []


def test_a_block_listener_keeps_or_brings_back_the_short_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("micrec._pacing.IDLE_SECONDS", 0.0)
    listeners: list[object] = [print]
    pacer, asked = _pacer(listeners)
    pacer.block_done()
    assert asked == []
    listeners.clear()
    pacer.block_done()
    assert asked == [6400]
    listeners.append(print)
    pacer.block_done()
    assert asked == [6400, 1600]


def _wav_data_bytes(path: Path) -> int:
    """The length the RIFF header gives the ``data`` chunk (what another reader believes)."""
    raw = path.read_bytes()
    position = 12
    while position + 8 <= len(raw):
        chunk, size = raw[position:position + 4], struct.unpack("<I", raw[position + 4:position + 8])[0]
        if chunk == b"data":
            return int(size)
        position += 8 + size + (size & 1)
    raise AssertionError(f"no data chunk in {raw[:64]!r}")


def test_the_first_block_is_flushed_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With the periodic flush pushed an hour away, only the flush of the first block can have
    # written the header that a reader sees while the take runs.
    monkeypatch.setattr(micrec.session, "FLUSH_INTERVAL", 3600.0)
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, backend=TestBackend(tone(440, 5, RATE), RATE))
    path = tmp_path / "first.wav"
    rec.start_recording(path)
    deadline = time.monotonic() + 20
    while rec.duration_ms < 250:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert _wav_data_bytes(path) >= RATE // 10 * 2  # at least the first 100 ms block
    finally:
        rec.stop_recording()
    assert _wav_data_bytes(path) == sf.info(str(path)).frames * 2 >= RATE // 4 * 2


def test_the_clis_take_summary_lets_the_blocks_grow_and_a_callers_listener_does_not() -> None:
    from micrec._pacing import needs_blocks_soon
    from micrec.console import TakeStats, _both

    assert not needs_blocks_soon(TakeStats())
    assert not needs_blocks_soon(_both(None, TakeStats()))
    assert needs_blocks_soon(_both(print, TakeStats()))
    assert needs_blocks_soon(print)


def test_the_first_half_second_is_flushed_block_by_block(tmp_path: Path) -> None:
    # Fed faster than real time, the take is written long before a wall-time flush is due: the
    # WAV header keeps up with every 100 ms block of the first half second all the same.
    rec = AudioRecorder(sample_rate=RATE, channels_num=1,
                        backend=TestBackend(tone(440, 5, RATE), RATE, realtime=False))
    sizes: list[int] = []
    path = tmp_path / "early.wav"
    rec.on_audio = lambda block: sizes.append(_wav_data_bytes(path))
    rec.start_recording(path, duration=1.0)
    deadline = time.time() + 20
    while rec.is_recording():
        assert time.time() < deadline
        time.sleep(0.01)
    rec.stop_recording()
    # Seen by the listener of block n (called right after the block is written, before its flush):
    # the header of the flush after block n-1.
    block = RATE // 10 * 2
    assert sizes[1:5] == [block, 2 * block, 3 * block, 4 * block], sizes
