"""system_audio, mix_system_audio and get_output_devices, judged on the recorded audio.

Real-stack tests play known signals on the private server's default output ``speaker`` (a
null sink) with the server's own sample player, record what it plays, and decode the files
with the ffmpeg binary. Backends that cannot read an output (PortAudio, the test backend)
must refuse with FeatureUnavailableError and leave no file.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from micrec import (
    AudioRecorder,
    DeviceNotFoundError,
    FeatureUnavailableError,
    InvalidConfigError,
    list_output_devices,
)
from micrec.backends import TestBackend
from micrec.cli import main as cli_main
from micrec.dsp.echo import EchoReference
from micrec.dsp.mix import KNEE, CaptureClock, SystemMix, mix_law
from micrec.dsp.mix import MAX_SKEW_MS as MIX_MAX_SKEW_MS
from micrec.vmic import VirtualMicrophone, write_wav

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.features.mixing import click_track, offsets_ms, paced_output, right_channel_microphone

from audio import (
    dominant_frequency,
    ffmpeg_decode,
    ffprobe,
    match_feed,
    noise,
    peak_dbfs,
    tone,
)

RATE = 48000  # the speaker's and vmic_a's rate: nothing is resampled
WAIT_TIMEOUT = 20.0


# -- helpers ---------------------------------------------------------------------------------
def wait_until(condition, timeout: float = WAIT_TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


class Speaker:
    """Plays WAV files on the server's default output with its own sample player.

    Meanwhile a reader keeps the output's monitor busy at a low latency: a null sink that no
    one asks for low latency renders in bursts of up to 2 s, so the monitor of a take would
    start delivering late. A reader, not a silent player: a player that runs dry on a busy
    machine makes the server rewind the output, and its monitor then loses or repeats audio.
    """

    def __init__(self, vmic: VirtualMicrophone, tmp_path: Path) -> None:
        self.vmic = vmic
        self.tmp_path = tmp_path
        self.samples: list[str] = []
        self._reader = subprocess.Popen(
            ["parec", "--raw", "--latency-msec=50", "-d", "speaker.monitor", "--format=s16le",
             f"--rate={RATE}", "--channels=2"],
            env=vmic.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._flowing = threading.Event()
        self._drain = threading.Thread(target=self._discard, daemon=True)
        self._drain.start()
        assert self._flowing.wait(WAIT_TIMEOUT), "the speaker's monitor delivered nothing"

    def _discard(self) -> None:
        assert self._reader.stdout is not None
        while self._reader.stdout.read(9600):
            self._flowing.set()

    def play(self, samples: npt.NDArray[np.int16], sink: str = "speaker") -> None:
        """Play int16 samples (1-D: the same on both channels, or frames x 2)."""
        data = np.repeat(samples[:, None], 2, axis=1) if samples.ndim == 1 and sink == "speaker" else samples
        name = f"micrec_sys_{len(self.samples)}"
        path = self.tmp_path / f"{name}.wav"
        write_wav(path, data, RATE)
        self.vmic.pactl("upload-sample", str(path), name)
        self.samples.append(name)
        self.vmic.pactl("play-sample", name, sink)

    def close(self) -> None:
        self._reader.terminate()
        self._reader.wait(timeout=5)
        self._drain.join(timeout=5)
        for name in self.samples:
            subprocess.run(["pactl", "remove-sample", name], env=self.vmic.env, capture_output=True,
                           timeout=10, check=False)


@pytest.fixture
def speaker(vmic: VirtualMicrophone, tmp_path: Path) -> Iterator[Speaker]:
    s = Speaker(vmic, tmp_path)
    try:
        yield s
    finally:
        s.close()


def start_and_wait_for_audio(rec: AudioRecorder, path: Path) -> None:
    """Start, and return once audio flows (a new monitor stream may start delivering late)."""
    rec.start_recording(path)
    wait_until(lambda: rec.duration_ms >= 100)


def record_until(rec: AudioRecorder, seconds: float) -> npt.NDArray[np.int16]:
    """Record until the take holds ``seconds`` more than now; stop; the decoded file."""
    target = rec.duration_ms + seconds * 1000
    wait_until(lambda: rec.duration_ms >= target, timeout=WAIT_TIMEOUT + 3 * seconds)
    path = rec.stop_recording()
    assert path is not None
    return ffmpeg_decode(path)


def band_level(x: npt.ArrayLike, freq: float, width: float = 20.0) -> float:
    """Level in dB (relative: for comparisons) of what ``x`` holds within ``width`` Hz of ``freq``."""
    data = np.asarray(x, dtype=np.float64).ravel() / 32768
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data)))) ** 2
    f = np.fft.rfftfreq(len(data), 1 / RATE)
    return float(10 * np.log10(spectrum[np.abs(f - freq) < width / 2].sum() + 1e-20))


def loudest_window(x: npt.NDArray[np.int16], seconds: float) -> npt.NDArray[np.int16]:
    """The ``seconds``-long stretch of ``x`` around its loudest point (mono: first channel)."""
    mono = x[:, 0].astype(np.float64)
    n = int(seconds * RATE)
    energy = np.convolve(mono**2, np.ones(n), mode="valid")
    start = int(np.argmax(energy))
    return x[start:start + n]


# -- outputs ---------------------------------------------------------------------------------
def test_outputs_are_listed_with_the_default_marked(vmic: VirtualMicrophone) -> None:
    rec = AudioRecorder(backend="pulse")
    outputs = rec.get_output_devices()
    assert outputs["speaker"] == "Speaker"
    assert "vmic_a_feed" in outputs  # every sink has a monitor
    assert "vmic_a" not in outputs and "speaker.monitor" not in outputs  # sources are not outputs
    defaults = [d.id for d in list_output_devices("pulse") if d.is_default]
    assert defaults == ["speaker"]
    assert not set(outputs) & set(rec.get_input_devices())


def test_backends_without_monitors_list_no_outputs() -> None:
    assert AudioRecorder(backend=TestBackend(np.zeros(480, dtype=np.int16))).get_output_devices() == {}


def test_cli_lists_outputs(vmic: VirtualMicrophone, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["devices", "--outputs", "--backend", "pulse"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("*") and "speaker" in line and "Speaker" in line for line in lines)
    assert not any("vmic_a " in line for line in lines)


# -- system_audio ----------------------------------------------------------------------------
def test_system_audio_records_what_the_default_output_plays(vmic: VirtualMicrophone, speaker: Speaker,
                                                            tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=2, system_audio=True, backend="pulse")
    path = tmp_path / "system.wav"
    start_and_wait_for_audio(rec, path)
    vmic.play_tone(440.0, 3.0, amplitude=0.5)  # the microphone: must not be in the take
    played = np.stack([tone(1000.0, 1.5, RATE, 0.25), tone(1500.0, 1.5, RATE, 0.125)], axis=1)
    speaker.play(played)
    data = record_until(rec, 2.0)
    probe = ffprobe(path)
    assert (probe.codec, probe.rate, probe.channels) == ("pcm_s16le", RATE, 2)
    heard = loudest_window(data, 1.0)
    assert dominant_frequency(heard[:, 0], RATE) == pytest.approx(1000, abs=2)
    assert dominant_frequency(heard[:, 1], RATE) == pytest.approx(1500, abs=2)
    assert peak_dbfs(heard[:, 0]) == pytest.approx(-12.0, abs=0.3)  # at the level it was played
    assert peak_dbfs(heard[:, 1]) == pytest.approx(-18.1, abs=0.3)
    spectrum_440 = band_level(heard[:, 0], 440.0)
    assert spectrum_440 < band_level(heard[:, 0], 1000.0) - 60  # the microphone is not recorded


def test_system_audio_of_a_named_output_is_bit_exact(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    feed = noise(2.5, RATE, seed=5)
    rec = AudioRecorder(audio_encoder="flac", sample_rate=RATE, channels_num=1, system_audio="vmic_a_feed",
                        backend="pulse")
    path = tmp_path / "named.flac"
    start_and_wait_for_audio(rec, path)
    vmic.play_samples(feed, RATE)  # into vmic_a_feed, an output like any other
    data = record_until(rec, 3.0)[:, 0]
    match = match_feed(data, feed)
    assert match.bad_samples == 0
    assert match.matched >= 0.9 * len(feed)


def test_system_audio_attribute_takes_effect_at_the_next_start(vmic: VirtualMicrophone,
                                                               tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, backend="pulse")
    vmic.play_tone(700.0, 6.0, amplitude=0.5, mic="vmic_b")
    rec.system_audio = "vmic_b_feed"
    assert rec.system_audio == "vmic_b_feed"
    start_and_wait_for_audio(rec, tmp_path / "a.wav")
    data = record_until(rec, 1.0)
    assert dominant_frequency(data[:, 0], RATE) == pytest.approx(700, abs=2)


def test_an_unknown_output_is_named_and_leaves_no_file(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    rec = AudioRecorder(system_audio="no_such_output", backend="pulse")
    path = tmp_path / "x.wav"
    with pytest.raises(DeviceNotFoundError, match="no_such_output") as info:
        rec.start_recording(path)
    assert info.value.name == "system_audio" and "speaker" in str(info.value)
    assert not path.exists() and not rec.is_recording()


def test_cli_records_system_audio(vmic: VirtualMicrophone, speaker: Speaker, tmp_path: Path) -> None:
    out = tmp_path / "cli.wav"
    vmic.play_tone(900.0, 6.0, amplitude=0.5, mic="vmic_b")
    assert cli_main(["record", str(out), "--system-audio", "vmic_b_feed", "-d", "1", "-r", "48000",
                     "-c", "1", "-q"]) == 0
    data = ffmpeg_decode(out)
    assert len(data) == RATE
    assert dominant_frequency(data[:, 0], RATE) == pytest.approx(900, abs=2)


# -- mix_system_audio ------------------------------------------------------------------------
def test_mix_holds_the_microphone_and_the_output_each_at_its_level(vmic: VirtualMicrophone,
                                                                   speaker: Speaker, tmp_path: Path) -> None:
    rec = AudioRecorder(sample_rate=RATE, channels_num=1, mix_system_audio=True, backend="pulse")
    start_and_wait_for_audio(rec, tmp_path / "mix.wav")
    vmic.play_tone(440.0, 4.0, amplitude=0.25)
    speaker.play(tone(1000.0, 4.0, RATE, 0.125))
    data = record_until(rec, 3.0)
    both = loudest_window(data, 1.0)[:, 0]
    alone_mic = tone(440.0, 1.0, RATE, 0.25)
    alone_out = tone(1000.0, 1.0, RATE, 0.125)
    # Unity gain each: the same spectral levels as each signal played alone.
    assert band_level(both, 440.0) == pytest.approx(band_level(alone_mic, 440.0), abs=0.5)
    assert band_level(both, 1000.0) == pytest.approx(band_level(alone_out, 1000.0), abs=0.5)
    assert peak_dbfs(both) == pytest.approx(-8.5, abs=0.3)  # 0.25 + 0.125: the peaks add, no gain


def test_mix_lines_the_microphone_up_with_the_output_over_the_take(vmic: VirtualMicrophone, speaker: Speaker,
                                                                     tmp_path: Path) -> None:
    # The known relation: a microphone that hears the output's right channel at the output's
    # own instant (a remap source on its monitor), and stereo clicks on the output, burst A on
    # the left and burst B on the right at the same sample. In the take's left channel A comes
    # from the output and B from the microphone; B's distance from A, to the sample, is the
    # mix's offset (> 0: the microphone's copy late). A click a second for 20 s, one stream.
    # The output paced in 20 ms steps by a player, as while a call is on (see paced_output).
    seconds = 20.5
    with right_channel_microphone(vmic.pactl) as mic, paced_output(vmic.env):
        rec = AudioRecorder(sample_rate=RATE, channels_num=2, mix_system_audio=True, device=mic,
                            audio_encoder="flac", backend="pulse")
        start_and_wait_for_audio(rec, tmp_path / "aligned.flac")
        # A client player, not the server's sample player: pipewire-pulse drops the connection
        # of a 4 MB sample. A player starved on a busy machine delays both copies alike.
        write_wav(tmp_path / "clicks.wav", click_track(seconds), RATE)
        player = subprocess.Popen(["paplay", "--latency-msec=250", "-d", "speaker", str(tmp_path / "clicks.wav")],
                                  env=vmic.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            data = record_until(rec, seconds + 0.5)
        finally:
            player.terminate()
            player.wait(timeout=10)
    offsets = np.asarray(offsets_ms(data[:, 0]))
    played = len(np.arange(0.5, seconds - 0.005, 1.0))
    assert len(offsets) >= played - 2, f"{len(offsets)} of {played} clicks found"  # by content: a late player
    # Window by window (4 clicks each) across the take: within the 10 ms of the contract, each.
    windows = [offsets[i:i + 4] for i in range(0, len(offsets) - 3, 4)]
    assert len(windows) >= 4
    medians = [float(np.median(w)) for w in windows]
    assert all(abs(m) <= 10.0 for m in medians), medians
    # Stable: clicks the pairing put further off are set right within a block, not held.
    assert np.count_nonzero(np.abs(offsets) > 10.0) <= 1, offsets.tolist()


def far_end_and_echo(mix: npt.NDArray[np.int16], far: npt.NDArray[np.int16], span: tuple[float, float],
                     window_s: float = 0.5) -> tuple[float, float]:
    """(gain of the far end's copy in ``mix``, level in dB of the rest that is not the near end).

    Window by window over ``span`` (seconds of the far end): its copy is found by
    cross-correlation and subtracted; what remains is the microphone's contribution, and
    without the near end's 440 Hz tone, its echo of the far end (relative to the far end's
    level). Medians over the windows: on a busy machine module-loopback itself re-buffers now
    and then, and one window must not decide.
    """
    x = mix[:, 0].astype(np.float64)
    n = int(window_s * RATE)
    gains, echoes = [], []
    for start in range(int(span[0] * RATE), int(span[1] * RATE) - n + 1, n):
        f = far[start:start + n].astype(np.float64)
        size = 1 << int(np.ceil(np.log2(len(x) + n)))
        corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(f, size)), size)[:len(x) - n] / np.sum(f**2)
        # The direct copy is the earliest strong one: the echo comes later, and may be louder
        # (PipeWire's loopback downmixes the stereo output to the mono microphone 3 dB louder).
        first = int(np.flatnonzero(corr > 0.5 * corr.max())[0])
        lag = first + int(np.argmax(corr[first:first + RATE // 200]))
        rest = x[lag:lag + n] - corr[lag] * f
        spectrum = np.fft.rfft(rest)
        spectrum[np.abs(np.fft.rfftfreq(n, 1 / RATE) - 440.0) < 15] = 0
        echo = np.fft.irfft(spectrum, n)
        gains.append(corr[lag])
        echoes.append(10 * np.log10(np.mean(echo**2) / np.mean(f**2) + 1e-12))
    return float(np.median(gains)), float(np.median(echoes))


def test_a_call_with_cancel_echo_hears_the_far_end_once(vmic: VirtualMicrophone, speaker: Speaker,
                                                        tmp_path: Path) -> None:
    # The far end plays on the speaker and reaches the microphone again through the room
    # (module-loopback, 60 ms); the near end talks into the microphone. Two takes at once:
    # the call as recorded (cancel_echo) and, to prove the echo is there, without it.
    module = vmic.pactl("load-module", "module-loopback", "source=speaker.monitor", "sink=vmic_a_feed",
                        "latency_msec=60").strip()
    try:
        call = AudioRecorder(sample_rate=RATE, channels_num=1, mix_system_audio=True, cancel_echo=True,
                             backend="pulse")
        plain = AudioRecorder(sample_rate=RATE, channels_num=1, mix_system_audio=True, backend="pulse")
        start_and_wait_for_audio(call, tmp_path / "call.wav")
        start_and_wait_for_audio(plain, tmp_path / "plain.wav")
        far = noise(8.0, RATE, seed=3, amplitude=6000)
        near = np.concatenate([np.zeros(5 * RATE, dtype=np.int16), tone(440.0, 3.0, RATE, 0.1)])
        speaker.play(far)
        vmic.play_samples(near, RATE)  # the near end joins once the canceller has had 5 s
        with_aec = record_until(call, 8.5)
        without = ffmpeg_decode(plain.stop_recording() or "")
    finally:
        vmic.pactl("unload-module", module)
    alone = (2.5, 4.5)  # the far end alone, after 2.5 s for the canceller to converge
    gain, echo_db = far_end_and_echo(without, far, alone)
    assert gain == pytest.approx(1.0, abs=0.05) and echo_db > -6  # the room's echo reached the take
    gain, echo_db = far_end_and_echo(with_aec, far, alone)
    assert gain == pytest.approx(1.0, abs=0.05)  # the far end once, at its level
    # Its echo taken out of the microphone: -68 dB here at normal load, -18 dB at a load of 25.
    assert echo_db < -15
    assert far_end_and_echo(with_aec, far, (5.5, 8.0))[0] == pytest.approx(1.0, abs=0.05)  # double talk
    # The near end kept, in double talk (the canceller's suppressor takes up to 3 dB, as in test_dsp).
    assert band_level(loudest_window(with_aec, 2.0)[:, 0], 440.0) == pytest.approx(
        band_level(tone(440.0, 2.0, RATE, 0.1), 440.0), abs=3.0)


# -- where it cannot work --------------------------------------------------------------------
@pytest.mark.parametrize("setting", [{"system_audio": True}, {"system_audio": "speaker"},
                                     {"mix_system_audio": True}])
@pytest.mark.parametrize("backend", ["test", "portaudio"])
def test_backends_without_output_monitors_refuse(tmp_path: Path, setting: dict[str, object],
                                                 backend: str) -> None:
    chosen = TestBackend(np.zeros(4800, dtype=np.int16)) if backend == "test" else backend
    rec = AudioRecorder(backend=chosen, **setting)  # type: ignore[arg-type]
    path = tmp_path / "x.wav"
    with pytest.raises(FeatureUnavailableError) as info:
        rec.start_recording(path)
    name = next(iter(setting))
    assert info.value.name == name and name in str(info.value) and repr(backend) in str(info.value)
    assert "linux" in str(info.value)  # the platform is named
    assert not path.exists() and not rec.is_recording()


@pytest.mark.parametrize("setting,name", [
    ({"system_audio": 3}, "system_audio"),
    ({"system_audio": ""}, "system_audio"),
    ({"system_audio": True, "mix_system_audio": True}, "system_audio"),
    ({"system_audio": True, "cancel_echo": True}, "cancel_echo"),
])
def test_contradictory_settings_are_named(tmp_path: Path, setting: dict[str, object], name: str) -> None:
    rec = AudioRecorder(backend=TestBackend(np.zeros(4800, dtype=np.int16)), **setting)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError) as info:
        rec.start_recording(tmp_path / "x.wav")
    assert info.value.name == name
    assert not (tmp_path / "x.wav").exists()


# -- the mix's pairing (unit: known capture times) -------------------------------------------
def mix_by_capture_time(max_skew_ms: float, reference_blocks: list[tuple[npt.NDArray[np.int16], float]],
                        seconds: float = 10.0) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16], EchoReference]:
    """(the microphone fed in, the mix out, the reference) for a 1 kHz microphone of 100-frame
    blocks captured from t=100 s on, mixed with ``reference_blocks`` pushed beforehand."""
    rate = 1000
    reference = EchoReference(None, rate, 1, max_skew_ms=max_skew_ms)
    for block, when in reference_blocks:
        reference.push(block.reshape(-1, 1), capture_time=when)
    clock = CaptureClock(rate, 1)
    mix = SystemMix(reference, clock, 1)
    mic = (np.arange(int(seconds * rate)) % 7 * 1000).astype(np.int16).reshape(-1, 1)
    out = []
    for start in range(0, len(mic), 100):
        clock.set_capture_time(100.0 + start / rate)
        block = clock.process(mic[start:start + 100])
        out.append(mix.process(block))
    out.append(mix.flush())
    return mic, np.concatenate(out), reference


def test_the_mix_re_pairs_a_gap_in_the_output_beyond_its_skew_limit() -> None:
    # The output's stream lost 19 ms (its next block's capture time says so): the mix sets the
    # pairing again at once by inserting silence into the output; the echo canceller's 60 ms
    # limit would have carried on 19 ms off.
    ramp = np.arange(1, 20001, dtype=np.int16)  # output frame j, captured at 100 + j/1000 s
    blocks = [(ramp[j:j + 50], 100.0 + j / 1000) for j in range(0, 500, 50)]
    blocks += [(ramp[j:j + 50], 100.0 + j / 1000) for j in range(519, 10000, 50)]
    for limit, expected_offset in ((MIX_MAX_SKEW_MS, 0), (60, 19)):
        mic, out, reference = mix_by_capture_time(limit, blocks)
        assert len(out) == len(mic)
        output = (out.astype(np.int32) - mic)[:, 0]  # the sums stay under the knee: exact
        assert np.array_equal(output[:500], ramp[:500]), "paired from the first frame"
        after = output[600:]
        # Which output frame each microphone frame got (ramp value - 1), minus the one captured
        # with it (> 0: the output's sound early).
        offsets = set((after - 1 - np.arange(600, len(output))).tolist())
        assert offsets == {expected_offset}
    assert reference.realignments == 0  # the 60 ms run: never paired again
    mic, out, reference = mix_by_capture_time(MIX_MAX_SKEW_MS, blocks)
    assert reference.realignments == 1 and reference.inserted_frames == 19
    assert not (out.astype(np.int32) - mic)[500:519].any(), "silence stands in for what the output lost"


def test_the_mix_follows_a_drifting_output_within_its_skew_limit() -> None:
    # The output's clock runs 0.2 % slow against the microphone's (two sound cards): taken
    # frame after frame, it would fall 20 ms behind in 10 s; re-paired past 5 ms, it never
    # gets further off than the limit and a frame.
    drift = 1.002
    ramp = np.arange(1, 20001, dtype=np.int16)
    blocks = [(ramp[j:j + 50], 100.0 + j * drift / 1000) for j in range(0, 10000, 50)]
    mic, out, reference = mix_by_capture_time(MIX_MAX_SKEW_MS, blocks)
    output = (out.astype(np.int32) - mic)[:, 0]
    assert len(out) == len(mic)
    got = output - 1  # the output frame each microphone frame was mixed with
    heard = got >= 0  # silence where a new pairing inserted some
    frames = np.arange(len(output))
    offset_ms = got[heard] * drift - frames[heard]  # when the frame mixed in was captured, minus now
    assert np.abs(offset_ms).max() <= MIX_MAX_SKEW_MS + 1
    assert 3 <= reference.realignments <= 5  # 20 ms of drift in steps of about 5 ms
    assert reference.dropped_frames == 0 and reference.inserted_frames == np.count_nonzero(~heard)


# -- the mixing law --------------------------------------------------------------------------
def test_mix_law_is_the_exact_sum_below_the_knee() -> None:
    a = noise(0.5, RATE, seed=1, amplitude=10000).reshape(-1, 1)
    b = noise(0.5, RATE, seed=2, amplitude=10000).reshape(-1, 1)
    assert np.abs(a.astype(np.int32) + b).max() < KNEE * 32768
    assert np.array_equal(mix_law(a, b), a + b)


def test_mix_law_never_clips_and_keeps_the_order_of_levels() -> None:
    full = tone(100.0, 0.1, RATE, 1.0).reshape(-1, 1)
    mixed = mix_law(full, full).astype(np.int32)
    assert np.abs(mixed).max() < 32767  # two full-scale signals in phase: no sample at full scale
    ramp = np.linspace(0, 65534, 2000).reshape(-1, 1)
    half = np.rint(ramp / 2).astype(np.int16)
    out = mix_law(half, half).ravel().astype(np.int32)
    assert np.all(np.diff(out) >= 0)  # monotonic: louder stays louder
    assert out.max() < 32767
