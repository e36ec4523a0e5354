"""A take's file is readable at every moment: right after start, and while the input stalls.

Every container is checked with the independent decoders (ffprobe/ffmpeg, and libsndfile for
WAV, FLAC and Ogg Opus): right after ``start_recording()`` returns, with no audio yet (and, for
Opus, a take stopped before any audio came); and after one
short block followed by a stall, in a recorder process killed with SIGKILL 2 s into the stall.
The stall comes from the test backend (a device that stops delivering), a browser client that
stops sending (micrec.web), and a virtual microphone whose source is suspended on the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from micrec import AudioEncoder, AudioRecorder
from micrec.backends import TestBackend
from micrec.encoders import encoder_class, unavailable_reason
from micrec.vmic import VirtualMicrophone

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, tone

pytestmark = pytest.mark.skipif(not have_ffmpeg(), reason="needs the ffmpeg and ffprobe binaries")

TONE_HZ = 1000
STALL_SECONDS = 2.0
WAIT = 30.0


@dataclass(frozen=True)
class Container:
    encoder: str
    ext: str
    codec: str | None  # ffprobe's codec name; None for raw PCM
    #: Seconds of a block the codec may still hold when the input stalls (its look-ahead and
    #: the part of a codec frame not yet complete): lossless 0, lossy up to two frames + delay.
    held: float
    #: Bytes the file starts with right after start (its header), b"" for an empty file.
    magic: bytes
    #: Whether ffmpeg reads the file with no audio in it (ADTS is a bare stream of frames).
    empty_readable: bool = True
    lossless: bool = False

    @property
    def id(self) -> str:
        return f"{self.encoder}-{self.ext}"


CONTAINERS = [
    Container("wav", "wav", "pcm_s16le", 0.0, b"RIFF", lossless=True),
    Container("flac", "flac", "flac", 0.0, b"fLaC", lossless=True),
    Container("pcm16bits", "pcm", None, 0.0, b"", lossless=True),
    Container("aacLc", "m4a", "aac", 0.07, b"\0\0\0"),
    Container("aacLc", "aac", "aac", 0.07, b"", empty_readable=False),  # ADTS has no file header
    Container("aacHe", "mp4", "aac", 0.2, b"\0\0\0"),
    Container("aacHe", "aac", "aac", 0.2, b"", empty_readable=False),
    Container("aacEld", "m4a", "aac", 0.04, b"\0\0\0"),
    Container("opus", "ogg", "opus", 0.05, b"OggS"),
    Container("opus", "opus", "opus", 0.05, b"OggS"),
    Container("opus", "webm", "opus", 0.05, b"\x1a\x45\xdf\xa3"),
    Container("amrNb", "amr", "amr_nb", 0.03, b"#!AMR\n"),
    Container("amrNb", "3gp", "amr_nb", 0.03, b"\0\0\0"),
    Container("amrWb", "awb", "amr_wb", 0.03, b"#!AMR-WB\n"),
    Container("amrWb", "3gp", "amr_wb", 0.03, b"\0\0\0"),
]


def skip_unavailable(encoder: str) -> None:
    reason = unavailable_reason(AudioEncoder(encoder))
    if reason is not None:
        pytest.skip(reason)


def file_rate(encoder: str, wanted: int = 48000) -> int:
    cls = encoder_class(AudioEncoder(encoder))
    assert cls is not None
    return cls.admitted_rate(wanted)


def block_seconds(container: Container) -> float:
    """The short block: one 20 ms block (what a browser sends first), 0.3 s for lossy codecs.

    A lossy codec can only write out what it has encoded, and it encodes a frame once the
    frame and its look-ahead are complete: a 20 ms block is less than that for AAC.
    """
    return 0.02 if container.held == 0 else 0.3


def decode(path: Path, rate: int) -> np.ndarray:
    if path.suffix == ".pcm":
        return ffmpeg_decode(path, channels=1, input_format=["-f", "s16le", "-ar", str(rate), "-ac", "1"])
    return ffmpeg_decode(path)


def assert_holds_block(container: Container, path: Path, block: np.ndarray, rate: int) -> None:
    """The file decodes (ffmpeg, libsndfile) and holds the block, up to what the codec may hold."""
    if container.codec is not None:
        probe = ffprobe(path)
        assert (probe.codec, probe.rate) == (container.codec, rate), container.id
    decoded = decode(path, rate)[:, 0]
    seconds = len(block) / rate
    if container.lossless:
        assert len(decoded) / rate >= seconds - container.held, f"{container.id}: {len(decoded)} samples"
        assert np.array_equal(decoded, block[:len(decoded)]), f"{container.id}: not the block"
    else:
        assert len(decoded) / rate >= seconds - container.held, (
            f"{container.id}: {len(decoded) / rate:.3f} s decoded of a {seconds:.3f} s block")
        assert len(decoded) / rate <= seconds + 0.3, f"{container.id}: more audio than was sent"
        assert abs(dominant_frequency(decoded, rate) - TONE_HZ) < 20, container.id
    if container.ext in ("wav", "flac"):
        try:
            with sf.SoundFile(path) as f:
                read = f.read(len(block) + rate, dtype="int16")
        except sf.LibsndfileError as exc:
            raise AssertionError(f"{container.id}: libsndfile cannot read it ({path.stat().st_size} bytes)") from exc
        assert np.array_equal(read, decoded), f"{container.id}: libsndfile reads another take"
    if container.ext in ("ogg", "opus"):  # libsndfile decodes with libopus, FFmpeg with its own decoder
        with sf.SoundFile(path) as f:
            assert len(f.read(dtype="int16")) == len(decoded), f"{container.id}: libsndfile reads another length"


# -- right after start ------------------------------------------------------------------------
@pytest.mark.parametrize("container", CONTAINERS, ids=lambda c: c.id)
def test_the_file_is_readable_right_after_start(tmp_path: Path, container: Container) -> None:
    skip_unavailable(container.encoder)
    rate = file_rate(container.encoder)
    silent = TestBackend(np.zeros(0, dtype=np.int16), rate, after_end="stop")  # never delivers
    rec = AudioRecorder(audio_encoder=container.encoder, sample_rate=rate, channels_num=1, backend=silent)
    path = tmp_path / f"take.{container.ext}"
    rec.start_recording(path)
    try:
        head = path.read_bytes()
        assert head.startswith(container.magic), f"{container.id}: starts with {head[:12]!r}"
        if not container.magic:
            assert head == b"", f"{container.id}: {len(head)} bytes before any audio"
        assert_empty(container, path, rate)
    finally:
        rec.stop_recording()


def assert_empty(container: Container, path: Path, rate: int) -> None:
    """ffprobe/ffmpeg (and libsndfile for WAV and Ogg Opus) read the file and find no audio."""
    if container.codec is not None and container.empty_readable:
        probe = ffprobe(path)
        assert (probe.codec, probe.rate) == (container.codec, rate), container.id
        assert len(decode(path, rate)) == 0, container.id
    # libsndfile reads no FLAC without a frame (it writes none either: 0 bytes for an empty take).
    if container.ext in ("wav", "ogg", "opus"):
        with sf.SoundFile(path) as f:
            assert f.frames == 0 and len(f.read(dtype="int16")) == 0, container.id


OPUS = [c for c in CONTAINERS if c.encoder == "opus"]


@pytest.mark.parametrize("pause", [False, True], ids=["stopped", "paused-then-stopped"])
@pytest.mark.parametrize("container", CONTAINERS, ids=lambda c: c.id)
def test_a_take_with_no_audio_is_a_valid_empty_file(tmp_path: Path, container: Container, pause: bool) -> None:
    """Stopped before any audio came (as when the server delivers nothing): a file, no fault.

    FFmpeg's muxers leave Ogg/WebM headers alone, micrec ends them; opencore's AMR-NB returned
    a packet without a timestamp from a codec given nothing, which failed the take.
    """
    skip_unavailable(container.encoder)
    rate = file_rate(container.encoder)
    silent = TestBackend(np.zeros(0, dtype=np.int16), rate, after_end="stop")
    rec = AudioRecorder(audio_encoder=container.encoder, sample_rate=rate, channels_num=1, backend=silent)
    path = tmp_path / f"take.{container.ext}"
    rec.start_recording(path)
    if pause:
        rec.pause_recording()
        rec.seek(0)
        rec.resume_recording()
    assert rec.stop_recording() == str(path)
    assert rec.last_error is None
    assert path.read_bytes().startswith(container.magic)
    assert_empty(container, path, rate)


def encode_directly(path: Path, samples: np.ndarray, rate: int, flush_after: int) -> None:
    """The samples in 20 ms blocks through the encoder class, its flush after ``flush_after`` frames."""
    cls = encoder_class(AudioEncoder.OPUS)
    assert cls is not None
    enc = cls(path, rate, samples.shape[1], 64000)
    step = rate // 50
    for start in range(0, len(samples), step):
        enc.write(samples[start:start + step])
        if start + step == flush_after:
            enc.flush()  # what the session does on a stall: the first page replaces the placeholder
            assert len(ffmpeg_decode(path)) > 0
    enc.close()


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("container", OPUS, ids=lambda c: c.id)
def test_the_empty_stream_placeholder_leaves_a_take_with_audio_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, container: Container, channels: int) -> None:
    """What ends a take with no audio yet is gone once audio is written: decoded bit for bit as without it."""
    skip_unavailable(container.encoder)
    from micrec.encoders.opus import OpusEncoder

    rate = 48000
    samples = np.repeat(tone(TONE_HZ, 0.6, rate)[:, None], channels, axis=1)
    flush_after = round(0.1 * rate)  # the shortest first page: the first batch
    encode_directly(tmp_path / f"with.{container.ext}", samples, rate, flush_after)
    monkeypatch.setattr(OpusEncoder, "_placeholder", lambda self, header: b"")
    monkeypatch.setattr(OpusEncoder, "_close_empty", lambda self, path: None)
    encode_directly(tmp_path / f"without.{container.ext}", samples, rate, flush_after)
    with_ = ffmpeg_decode(tmp_path / f"with.{container.ext}")
    without = ffmpeg_decode(tmp_path / f"without.{container.ext}")
    assert len(with_) == len(without) and abs(len(with_) - len(samples)) <= 960, (len(with_), len(without))
    assert np.array_equal(with_, without)
    assert abs(dominant_frequency(with_[:, 0], rate) - TONE_HZ) < 20
    if container.ext != "webm":
        with sf.SoundFile(tmp_path / f"with.{container.ext}") as f, \
                sf.SoundFile(tmp_path / f"without.{container.ext}") as g:
            assert f.frames == g.frames == len(with_)
            assert np.array_equal(f.read(dtype="int16"), g.read(dtype="int16"))


# -- one block, then a stall, then SIGKILL -----------------------------------------------------
CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from micrec import AudioRecorder
    from micrec.backends import TestBackend
    encoder, path, rate, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    t = np.arange(frames) / rate
    block = np.round(0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    backend = TestBackend(block, rate, block_frames=frames, after_end="stop")  # one block, then nothing
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=rate, channels_num=1, backend=backend)
    rec.start_recording(path)
    backend.wait_done(30)
    print("stalled", flush=True)
    time.sleep(600)
""")


def start_child(container: Container, path: Path) -> tuple[subprocess.Popen[str], int, np.ndarray]:
    rate = file_rate(container.encoder)
    frames = round(block_seconds(container) * rate)
    child = subprocess.Popen([sys.executable, "-c", CHILD, container.encoder, str(path), str(rate), str(frames)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return child, rate, tone(TONE_HZ, frames / rate, rate)


def kill_after_stall(children: list[subprocess.Popen[str]]) -> None:
    """Wait until every child's input has stalled, let the stall last 2 s, then SIGKILL them all."""
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "stalled", "a recording child died"
        time.sleep(STALL_SECONDS)
        for child in children:
            assert child.poll() is None, "a recording child died"
            os.kill(child.pid, signal.SIGKILL)
    finally:
        for child in children:
            child.kill()
            child.wait(WAIT)


def available(containers: list[Container]) -> list[Container]:
    return [c for c in containers if unavailable_reason(AudioEncoder(c.encoder)) is None]


@pytest.mark.slow
def test_a_stalled_device_killed_leaves_the_block_readable(tmp_path: Path) -> None:
    """The test backend delivers one block and stalls; every container at once (one child each)."""
    containers = available(CONTAINERS)
    started = [start_child(c, tmp_path / f"{c.id}.{c.ext}") for c in containers]
    kill_after_stall([child for child, _, _ in started])
    for container, (_, rate, block) in zip(containers, started, strict=True):
        assert_holds_block(container, tmp_path / f"{container.id}.{container.ext}", block, rate)


# -- a virtual microphone whose source is suspended ----------------------------------------
MIC_CHILD = textwrap.dedent("""
    import sys, time
    from micrec import AudioRecorder
    encoder, path, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rec = AudioRecorder(audio_encoder=encoder, sample_rate=rate, channels_num=1, device="vmic_a", backend="pulse")
    rec.start_recording(path)
    while True:
        print(rec.duration_ms, flush=True)
        time.sleep(0.05)
""")
#: One container per encoder.
PER_ENCODER = [c for c in CONTAINERS if c.id in ("wav-wav", "flac-flac", "pcm16bits-pcm", "aacLc-m4a", "aacHe-aac",
                                                 "aacEld-m4a", "opus-webm", "amrNb-3gp", "amrWb-awb")]


class _Latest:
    """The latest duration a recording child printed, read on a thread as it comes."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        import threading

        self.ms = 0.0
        self._stdout = child.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._stdout is not None
        for line in self._stdout:
            self.ms = float(line)


def wait_for(condition: object, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.slow
def test_a_suspended_microphone_killed_leaves_what_it_heard(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    """The microphone stalls mid-take (no audio, no error): killed 2 s into the stall, every file decodes.

    On PulseAudio the server suspends the source. On PipeWire a source that is recorded from
    cannot stay suspended (the graph runs the node again at once), so the graph stops instead:
    the ``pipewire`` process gets SIGSTOP, a hung driver to its clients (VirtualMicrophone.stalled).
    """
    containers = available(PER_ENCODER)
    vmic.play_tone(TONE_HZ, 30)
    children = [subprocess.Popen([sys.executable, "-c", MIC_CHILD, c.encoder, str(tmp_path / f"{c.id}.{c.ext}"),
                                  str(file_rate(c.encoder))], env=vmic.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True) for c in containers]
    latest = [_Latest(child) for child in children]
    try:
        # Nine interpreters importing at once take a while on a loaded machine (10 s seen at load 18).
        wait_for(lambda: min(r.ms for r in latest) >= 600, "the recording children never got going", 4 * WAIT)
        with vmic.stalled("vmic_a"):
            # Stalled once nothing more arrives for a second (a child behind the device under
            # load first writes its backlog); then the stall lasts 2 s before the kill.
            before = [r.ms for r in latest]
            stalled: list[float] = []
            deadline = time.monotonic() + 2 * WAIT
            while stalled != [r.ms for r in latest]:
                assert time.monotonic() < deadline, "audio kept arriving: the microphone did not stall"
                stalled = [r.ms for r in latest]
                time.sleep(1.0)
            time.sleep(STALL_SECONDS)
            assert [r.ms for r in latest] == stalled, "audio arrived again during the stall"
            for child in children:
                assert child.poll() is None, "a recording child died"
                os.kill(child.pid, signal.SIGKILL)
    finally:
        for child in children:
            child.kill()
            child.wait(WAIT)
    for container, heard, was in zip(containers, stalled, before, strict=True):
        path = tmp_path / f"{container.id}.{container.ext}"
        rate = file_rate(container.encoder)
        decoded = decode(path, rate)
        assert len(decoded) / rate >= heard / 1000 - container.held - 0.01, (
            f"{container.id}: {len(decoded) / rate:.3f} s decoded, {heard / 1000:.3f} s recorded before the stall")
        assert len(decoded) / rate >= was / 1000 - container.held - 0.01
        assert abs(dominant_frequency(decoded[int(0.1 * rate):], rate) - TONE_HZ) < 20, container.id


# -- a browser that stops sending ----------------------------------------------------------
SERVER_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from test_web_helpers import live_server
    with live_server(Path(sys.argv[1])) as server:
        print(server.port, flush=True)
        time.sleep(600)
""")


@pytest.mark.slow
def test_a_stalled_browser_killed_leaves_the_block_readable(tmp_path: Path) -> None:
    """micrec serve in a child; one take per encoder, each client sends one block and goes quiet."""
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    pytest.importorskip("websockets")
    from test_web_helpers import Client, LiveServer

    server_process = subprocess.Popen([sys.executable, "-c", SERVER_CHILD, str(tmp_path), str(Path(__file__).parent)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    takes = []
    try:
        assert server_process.stdout is not None
        port = int(server_process.stdout.readline())
        server = LiveServer(app=None, directory=tmp_path, port=port)
        for container in available(PER_ENCODER):
            client = Client(server)
            rate = file_rate(container.encoder)  # the client sends at the take's rate: nothing resampled
            started = client.start(rate, 1, audio_encoder=container.encoder, sample_rate=rate, channels_num=1)
            assert (started["type"], started.get("sample_rate")) == ("started", rate), started
            block = tone(TONE_HZ, block_seconds(container), rate)
            client.send_audio(block, rate)
            takes.append((container, client, started["take"], block, rate))
        time.sleep(STALL_SECONDS)
        assert server_process.poll() is None, "the server died"
        os.kill(server_process.pid, signal.SIGKILL)
    finally:
        server_process.kill()
        server_process.wait(WAIT)
    for container, _, name, block, rate in takes:
        assert_holds_block(container, tmp_path / name, block, rate)
