"""Smoke test of the real stack: one short take per encoder from the virtual microphone, decoded.

Small enough to run on every Python and against the installed wheel (scripts/ci_matrix.sh);
the thorough checks of each encoder live in test_encoders_lossy.py and test_pulse.py. Each take
is judged by Debian's ffprobe/ffmpeg (not micrec's libraries): codec, rate, channels, duration,
dominant frequency and level.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from micrec import AudioEncoder, AudioRecorder, AudioRecorderStateChangeEvent, encoders
from micrec.vmic import VirtualMicrophone

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, rms_dbfs

pytestmark = [
    pytest.mark.pulse,
    pytest.mark.smoke,
    pytest.mark.skipif(not have_ffmpeg(), reason="needs ffmpeg/ffprobe (apt-get install ffmpeg)"),
]

TONE_HZ = 440.0
TAKE_S = 0.6
TIMEOUT = 60
# What ffprobe calls each encoder's stream (HE-AAC and AAC-ELD are AAC with another profile).
CODEC_NAMES = {
    AudioEncoder.WAV: "pcm_s16le", AudioEncoder.FLAC: "flac", AudioEncoder.AACLC: "aac",
    AudioEncoder.AACHE: "aac", AudioEncoder.AACELD: "aac", AudioEncoder.OPUS: "opus",
    AudioEncoder.AMRNB: "amr_nb", AudioEncoder.AMRWB: "amr_wb",
}


def _record(path: Path, encoder: AudioEncoder, source: str) -> None:
    stopped = threading.Event()
    errors: list[BaseException] = []

    def on_state(e: AudioRecorderStateChangeEvent) -> None:
        if e.data == "stopped":
            if e.error is not None:
                errors.append(e.error)
            stopped.set()

    rec = AudioRecorder(audio_encoder=encoder, sample_rate=48000, channels_num=1, bit_rate=64000,
                        device=source, backend="pulse", on_state_changed=on_state)
    assert rec.start_recording(path, duration=TAKE_S)
    assert stopped.wait(TIMEOUT), f"the {encoder.value} take did not end by itself"
    assert not errors, errors


def _decode(path: Path, encoder: AudioEncoder) -> tuple[np.ndarray, int]:
    if encoder is AudioEncoder.PCM16BITS:  # headerless: the rate and channels are the settings
        return np.fromfile(path, dtype="<i2").reshape(-1, 1), 48000
    info = ffprobe(path)
    assert info.codec == CODEC_NAMES[encoder], info
    assert info.channels in (1, 2), info  # FFmpeg shows mono HE-AAC (parametric stereo) as stereo
    return ffmpeg_decode(path, channels=1), info.rate


@pytest.mark.parametrize("encoder", list(AudioEncoder), ids=lambda e: e.value)
def test_one_take_per_encoder(vmic: VirtualMicrophone, tmp_path: Path, encoder: AudioEncoder) -> None:
    info = encoders.describe(encoder)
    if not info.supported:
        pytest.fail(f"{encoder.value} is not supported here: {info.unavailable}")
    path = tmp_path / f"take{info.extensions[0]}"
    vmic.play_tone(TONE_HZ, seconds=TAKE_S + 5.0, mic=vmic.source_name)
    _record(path, encoder, vmic.source_name)

    samples, rate = _decode(path, encoder)
    assert rate in info.rates or not info.rates, (rate, info.rates)
    duration = len(samples) / rate
    # Codec frames and priming round the decoded length; an empty or truncated take is far off.
    assert abs(duration - TAKE_S) < 0.15, f"{encoder.value}: decoded {duration:.3f} s"
    tail = samples[len(samples) // 3:, 0]  # past the virtual microphone's start-up
    assert abs(dominant_frequency(tail, rate) - TONE_HZ) < 15, encoder.value
    assert -15 < rms_dbfs(tail) < -5, f"{encoder.value}: {rms_dbfs(tail):.1f} dBFS (the tone is -9 dBFS)"
