"""Helpers that judge recorded audio: decoding with ffmpeg, frequency, level, alignment."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from micrec.vmic import VirtualMicrophone

FFMPEG_TIMEOUT = 60

# Known faults of the pasimple capture backend on PipeWire, for @pytest.mark.xfail_on_pipewire
# (tests/conftest.py).
#: Recorded samples (at 48 kHz) within which pipewire-pulse may reorder a stream's first quanta.
PIPEWIRE_START = 4800
PIPEWIRE_DOWNMIX = ("PipeWire downmixes a stereo monitor to a mono stream as (L+R)/sqrt(2), PulseAudio as (L+R)/2: "
                    "the output arrives 3 dB louder on PipeWire; reading the monitor in its own channels and "
                    "downmixing in micrec would make both servers agree")
PIPEWIRE_DROPOUTS = ("the private PipeWire graph drops cycles under heavy load (seen at load 7-16 on 2 cores, "
                     "also with 100 ms fragments): the microphone falls silent for 10 ms now and then, which this "
                     "test's judgement of the processing does not survive every time; not yet understood")


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> npt.NDArray[np.int16]:
    t = np.arange(int(seconds * rate)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def noise(seconds: float, rate: int, seed: int = 1, amplitude: int = 12000) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    return rng.integers(-amplitude, amplitude, int(seconds * rate), dtype=np.int16)


def dominant_frequency(x: npt.ArrayLike, rate: int) -> float:
    data = np.asarray(x, dtype=np.float64)
    if data.ndim > 1:
        data = data.mean(axis=1)
    data = data - data.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    return float(np.fft.rfftfreq(len(data), 1 / rate)[int(np.argmax(spectrum))])


def peak_dbfs(x: npt.ArrayLike) -> float:
    data = np.abs(np.asarray(x, dtype=np.float64))
    peak = data.max() if data.size else 0.0
    return -160.0 if peak == 0 else 20 * np.log10(peak / 32768)


def rms_dbfs(x: npt.ArrayLike) -> float:
    data = np.asarray(x, dtype=np.float64)
    rms = np.sqrt(np.mean(data**2)) if data.size else 0.0
    return -160.0 if rms == 0 else 20 * np.log10(rms / 32768)


@dataclass
class Probe:
    codec: str
    profile: str | None
    rate: int
    channels: int
    duration: float
    bit_rate: float | None
    format_name: str


def ffprobe(path: str | Path) -> Probe:
    """Codec, rate, channels and duration as ffprobe (not micrec's libraries) sees them."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        capture_output=True, timeout=FFMPEG_TIMEOUT, check=True).stdout
    info = json.loads(out)
    stream = info["streams"][0]
    fmt = info["format"]
    duration = stream.get("duration") or fmt.get("duration")
    bit_rate = stream.get("bit_rate") or fmt.get("bit_rate")
    return Probe(stream["codec_name"], stream.get("profile"), int(stream["sample_rate"]),
                 int(stream["channels"]), float(duration) if duration else float("nan"),
                 float(bit_rate) if bit_rate else None, fmt["format_name"])


def ffmpeg_decode(path: str | Path, *, rate: int | None = None, channels: int | None = None,
                  input_format: list[str] | None = None) -> npt.NDArray[np.int16]:
    """Decode with the ffmpeg binary to int16 (frames, channels)."""
    cmd = ["ffmpeg", "-v", "error", *(input_format or []), "-i", str(path), "-f", "s16le"]
    if rate:
        cmd += ["-ar", str(rate)]
    if channels:
        cmd += ["-ac", str(channels)]
    cmd.append("-")
    result = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT, check=True)
    if channels is None:
        channels = ffprobe(path).channels if not input_format else 1
    return np.frombuffer(result.stdout, dtype=np.int16).reshape(-1, channels)


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def find_offset(haystack: npt.ArrayLike, needle: npt.ArrayLike) -> int:
    """Where ``needle`` starts in ``haystack`` (cross-correlation via FFT)."""
    a = np.asarray(haystack, dtype=np.float64).ravel()
    b = np.asarray(needle, dtype=np.float64).ravel()
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    return int(np.argmax(corr[: len(a)]))


@dataclass
class FeedMatch:
    """How a recording of a known feed lines up with it (see :func:`match_feed`)."""

    runs: list[tuple[int, int, int]]  # (position in the recording, position in the feed, length)
    gap_samples: int  # digital silence inserted where the feed ran dry (a starved player)
    bad_samples: int  # samples that are neither the feed nor silence: corruption

    @property
    def matched(self) -> int:
        return sum(n for _, _, n in self.runs)

    def jumps(self, after: int = 0) -> list[int]:
        """Feed samples skipped between consecutive runs (negative after a gap of silence).

        ``after``: only at joins past that many recorded samples. pipewire-pulse 0.3.65 hands
        over a record stream's first two quanta in swapped order (``parec`` gets them so too,
        bit-exact otherwise): :data:`PIPEWIRE_START` skips them.
        """
        return [(f2 - f1 - n1) - (r2 - r1 - n1)
                for (r1, f1, n1), (r2, f2, _) in zip(self.runs, self.runs[1:], strict=False) if r2 > after]


def match_feed(recording: npt.ArrayLike, feed: npt.ArrayLike, window: int = 480) -> FeedMatch:
    """Split a mono recording into bit-exact runs of ``feed`` and runs of digital silence.

    On a starved machine the sound server pads a feed that ran dry with silence; that is the
    feed's fault, not the recorder's. Anything else that differs from the feed is counted as
    ``bad_samples``: a lossless recorder must have none.
    """
    rec = np.asarray(recording, dtype=np.int16).ravel()
    ref = np.asarray(feed, dtype=np.int16).ravel()
    runs: list[tuple[int, int, int]] = []
    gap = bad = 0
    p = 0
    while p < len(rec):
        if rec[p] == 0 and (p + 1 >= len(rec) or rec[p + 1] == 0):
            end = p
            while end < len(rec) and rec[end] == 0:
                end += 1
            gap += end - p
            p = end
            continue
        if len(rec) - p < 16:
            bad += len(rec) - p if runs else 0
            break
        n, offset = _run_at(rec, ref, p, window)
        if n == 0:
            bad += 1
            p += 1
            continue
        runs.append((p, offset, n))
        p += n
    return FeedMatch(runs, gap, bad)


def _run_at(rec: npt.NDArray[np.int16], ref: npt.NDArray[np.int16], p: int, window: int) -> tuple[int, int]:
    """(length, feed position) of the bit-exact run of ``ref`` that starts at ``rec[p]``; (0, 0) if none.

    A run shorter than ``window`` (the piece of a quantum a take begins with, when the start is
    cut by capture time) is looked for with shorter windows.
    """
    while window >= 16:
        chunk = rec[p:p + window]
        offset = find_offset(ref, chunk)
        limit = min(len(rec) - p, len(ref) - offset)
        same = rec[p:p + limit] == ref[offset:offset + limit]
        n = limit if same.all() else int(np.argmin(same))
        if n:
            return n, offset
        window //= 2
    return 0, 0


@dataclass
class FeedTrack:
    """Where each window of a recording lies in a known (not bit-exact) feed: see :func:`track_feed`."""

    window: int
    positions: list[int]  # position in the feed of each window that matched
    scores: list[float]  # normalized correlation of each window with the feed there (1.0: the same)
    skipped: int  # leading windows that matched nothing (before the feed reached the recording)

    def steps(self) -> npt.NDArray[np.int64]:
        """Feed samples skipped (+) or repeated (-) between consecutive windows: 0 for continuous audio."""
        return np.diff(np.asarray(self.positions, dtype=np.int64)) - self.window


def _best_match(haystack: npt.NDArray[np.float64], chunk: npt.NDArray[np.float64]) -> tuple[int, float]:
    n = 1 << int(np.ceil(np.log2(len(haystack) + len(chunk))))
    corr = np.fft.irfft(np.fft.rfft(haystack, n) * np.conj(np.fft.rfft(chunk, n)), n)[: len(haystack) - len(chunk) + 1]
    cumulative = np.concatenate([[0.0], np.cumsum(haystack * haystack)])
    energy = cumulative[len(chunk):] - cumulative[: len(haystack) - len(chunk) + 1]
    score = corr / np.sqrt(np.maximum(energy, 1e-9) * max(float(chunk @ chunk), 1e-9))
    best = int(np.argmax(score))
    return best, float(score[best])


def track_feed(recording: npt.ArrayLike, feed: npt.ArrayLike, window: int = 4800, search: int = 24000,
               min_score: float = 0.8) -> FeedTrack:
    """Follow a recording of ``feed`` window by window (normalized cross-correlation).

    For a feed that reached the recorder through a resampler or a browser (not bit-exact): a
    gap shows as a positive :meth:`FeedTrack.steps`, a repeat as a negative one. Each window is
    first looked for near where the previous one ended (``search`` samples either side), then in
    the whole feed. Leading windows that match nothing are counted as ``skipped``; after the first
    match, a window that matches nothing gets the position of its best guess and a low score.
    """
    rec = np.asarray(recording, dtype=np.float64).ravel()
    ref = np.asarray(feed, dtype=np.float64).ravel()
    positions: list[int] = []
    scores: list[float] = []
    skipped = 0
    for start in range(0, len(rec) - window + 1, window):
        chunk = rec[start:start + window]
        found, score = -1, 0.0
        if positions:
            lo = max(0, positions[-1] + window - search)
            offset, score = _best_match(ref[lo:lo + window + 2 * search], chunk)
            found = lo + offset
        if score < min_score:
            found, score = _best_match(ref, chunk)
        if not positions and score < min_score:
            skipped += 1
            continue
        positions.append(found)
        scores.append(score)
    return FeedTrack(window, positions, scores, skipped)


class MicReader:
    """A parec reading ``mic`` at 20 ms in its own process; every wait has a deadline (select())."""

    def __init__(self, server: VirtualMicrophone, mic: str = "vmic_a", rate: int = 48000) -> None:
        self.rate = rate
        self._proc = subprocess.Popen(["parec", "--raw", "--latency-msec=20", "-d", mic, "--format=s16le",
                                       f"--rate={rate}", "--channels=1"], env=server.env,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def wait_for_sound(self, seconds: float, threshold: int = 8000) -> bool:
        """Whether a sample above ``threshold`` comes within ``seconds``."""
        return self._read_until(lambda chunk: bool(np.abs(chunk.astype(np.int32)).max() > threshold), seconds)

    def wait_for_silence(self, seconds: float, quiet_s: float = 0.1, threshold: int = 64) -> bool:
        """Whether ``quiet_s`` on end below ``threshold`` comes within ``seconds``."""
        quiet = 0

        def long_enough(chunk: npt.NDArray[np.int16]) -> bool:
            nonlocal quiet
            loud = np.flatnonzero(np.abs(chunk.astype(np.int32)) > threshold)
            quiet = quiet + len(chunk) if not len(loud) else len(chunk) - 1 - int(loud[-1])
            return quiet >= quiet_s * self.rate

        return self._read_until(long_enough, seconds)

    def _read_until(self, done: Callable[[npt.NDArray[np.int16]], bool], seconds: float) -> bool:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                return False
            data = os.read(fd, self.rate // 50 * 2)
            if not data:
                return False  # parec ended
            chunk = np.frombuffer(data[: len(data) // 2 * 2], dtype=np.int16)
            if len(chunk) and done(chunk):
                return True
        return False

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(FFMPEG_TIMEOUT)

    def __enter__(self) -> MicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mic_hears(server: VirtualMicrophone, mic: str = "vmic_a", rate: int = 48000, seconds: float = 20.0) -> bool:
    """Whether ``mic`` carries a loud sound within ``seconds`` (something must play into its feed)."""
    with MicReader(server, mic, rate) as reader:
        return reader.wait_for_sound(seconds)


def delivers_audio(server: VirtualMicrophone) -> bool:
    """Whether a short tone played into vmic_a's feed reaches vmic_a, and has passed when this returns.

    The tone must be gone before the test that follows records: on PipeWire muting a player
    takes a while, and the tone's last 100 ms reached the next take's first samples.
    """
    if not server.answers():
        return False
    try:
        with MicReader(server, "vmic_a", 48000) as reader:
            server.play_tone(1000, 0.05, 0.5, mic="vmic_a")
            return reader.wait_for_sound(10.0) and reader.wait_for_silence(5.0, quiet_s=0.06)
    except (subprocess.SubprocessError, OSError):
        return False
    finally:
        try:
            server.stop_players()
        except (subprocess.SubprocessError, OSError):
            pass


def restart_if_not_delivering(server: VirtualMicrophone, during: str) -> bool:
    """After a failure: restart ``server`` if it no longer carries a feed (:func:`delivers_audio`).

    True when it was restarted (with a warning naming ``during``): the failure was the server's,
    and what failed may run again. A server that still delivers leaves the failure standing.
    """
    if delivers_audio(server):
        return False
    warnings.warn(f"the private {server.server} server stopped delivering {during}; restarted it", stacklevel=3)
    server.restart()
    return True


def ensure_delivering(server: VirtualMicrophone) -> None:
    """Restart the session's server if it no longer carries audio from a feed to its microphone.

    pipewire-pulse 0.3.65 was seen to crash, or to go on answering but deliver nothing, after a
    long run, and every later test on it then failed or waited forever. PulseAudio never did:
    there, answering is enough.
    """
    working = delivers_audio(server) if server.is_pipewire else server.answers()
    if not working:
        warnings.warn(f"the private {server.server} server no longer delivered a feed; restarting it",
                      stacklevel=2)
        server.restart()


# -- an independent witness of the microphone, for judging a take against the wall clock ----------

class Witness:
    """An independent ``parec`` of ``mic`` that notes when each piece of it arrived.

    A take is judged against it: whatever the microphone captured at a moment of the wall clock
    is found in the witness by :meth:`index_at`, and a piece of a recording by :meth:`locate`
    (cross-correlation). The witness is read by a thread of the test process, which a busy
    machine may delay; that delay only makes :meth:`index_at` earlier than the truth (a sample
    is read after it was captured, never before), so a check that the take holds at least the
    audio up to a moment stays sound, and is off by no more than the most promptly read pieces
    around that moment (a few ms).
    """

    def __init__(self, server: VirtualMicrophone, mic: str = "vmic_a", rate: int = 48000) -> None:
        self.rate = rate
        self._proc = subprocess.Popen(["parec", "--raw", "--latency-msec=20", "-d", mic, "--format=s16le",
                                       f"--rate={rate}", "--channels=1"], env=server.env,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._chunks: list[bytes] = []
        self._reads: list[tuple[float, int]] = []  # (monotonic time of a read, samples read by then)
        self._count = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="witness", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        pending = b""
        while True:
            data = os.read(fd, 65536)
            now = time.monotonic()
            if not data:
                return
            pending += data
            whole = len(pending) // 2 * 2
            with self._lock:
                self._chunks.append(pending[:whole])
                self._count += whole // 2
                self._reads.append((now, self._count))
            pending = pending[whole:]

    @property
    def count(self) -> int:
        """Samples read so far."""
        with self._lock:
            return self._count

    def samples(self) -> npt.NDArray[np.int16]:
        with self._lock:
            return np.frombuffer(b"".join(self._chunks), dtype=np.int16)

    def wait_for_sound(self, seconds: float = 20.0, threshold: int = 8000) -> int:
        """The index of the first sample above ``threshold`` from now on (a feed that began)."""
        start = self.count
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data = self.samples()[start:]
            loud = np.flatnonzero(np.abs(data.astype(np.int32)) > threshold)
            if len(loud):
                return start + int(loud[0])
            time.sleep(0.01)
        raise AssertionError(f"the microphone stayed silent for {seconds} s (the feed did not play)")

    def wait_for_index(self, index: int, seconds: float = 20.0) -> None:
        """Return once the witness has read sample ``index``."""
        deadline = time.monotonic() + seconds
        while self.count <= index:
            assert time.monotonic() < deadline, f"the witness read {self.count} samples of {index} in {seconds} s"
            time.sleep(0.005)

    def settle(self, after: float, seconds: float = 0.3) -> None:
        """Go on reading until ``seconds`` past the moment ``after`` (so :meth:`index_at` sees beyond it)."""
        self.wait_for_index(self.index_at(after) + int(seconds * self.rate))

    def index_at(self, moment: float) -> int:
        """How many samples the microphone had captured at ``moment`` (time.monotonic()), at most.

        Each read tells that its last sample existed by then; the sample clock runs at the
        rate, so the reads close to ``moment`` that came most promptly fix where it stood.
        """
        with self._lock:
            reads = list(self._reads)
        near = [(t, n) for t, n in reads if moment - 1.0 <= t <= moment + 1.0] or reads
        origin = min(t - n / self.rate for t, n in near)
        return int((moment - origin) * self.rate)

    def moment_of(self, index: int) -> float:
        """The monotonic time at which sample ``index`` had been captured, at the latest."""
        with self._lock:
            reads = list(self._reads)
        guess = reads[-1][0] - (reads[-1][1] - index) / self.rate
        near = [(t, n) for t, n in reads if guess - 1.0 <= t <= guess + 1.0] or reads
        return min(t - n / self.rate for t, n in near) + index / self.rate

    def locate(self, piece: npt.ArrayLike, what: str = "a piece of the take") -> int:
        """Where ``piece`` (48 kHz mono, as the witness) starts in the witness; fails if it is not there."""
        return locate(self.samples(), piece, what)

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(FFMPEG_TIMEOUT)
        self._thread.join(FFMPEG_TIMEOUT)

    def __enter__(self) -> Witness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def locate(haystack: npt.ArrayLike, piece: npt.ArrayLike, what: str = "a piece", min_correlation: float = 0.6) -> int:
    """Where ``piece`` starts in ``haystack``, found by normalized cross-correlation; fails if it is not there.

    A lossy or resampled copy of noise still correlates at 0.8 or more where it belongs; less
    than ``min_correlation`` means the piece is not there (or is not noise), and a position
    would be a guess.
    """
    hay = np.asarray(haystack, dtype=np.float64).ravel()
    needle = np.asarray(piece, dtype=np.float64).ravel()
    if len(hay) < len(needle):
        raise AssertionError(f"{what} is not in the recording (it holds only {len(hay)} samples)")
    at, strength = _best_match(hay, needle)
    if strength < min_correlation:
        raise AssertionError(f"{what} is not in the recording (best correlation {strength:.2f} at {at})")
    return at


def band_share(x: npt.ArrayLike, rate: int, freq: float, width: float = 60.0) -> float:
    """The share of ``x``'s energy within ``width`` Hz of ``freq`` (1.0: a pure tone there)."""
    data = np.asarray(x, dtype=np.float64).ravel()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data)))) ** 2
    freqs = np.fft.rfftfreq(len(data), 1 / rate)
    total = float(spectrum.sum())
    return float(spectrum[np.abs(freqs - freq) <= width].sum()) / total if total else 0.0


def tone_run(x: npt.ArrayLike, rate: int, freq: float, start: int, window: int = 960, width: float = 150.0) -> int:
    """How many samples from ``start`` on carry the tone ``freq`` alone (in whole windows, then a part)."""
    data = np.asarray(x, dtype=np.float64).ravel()
    p = start
    while p + window <= len(data) and band_share(data[p:p + window], rate, freq, width) > 0.8:
        p += window
    # The last, partial window: the tone runs on to the end, or up to the window that broke it.
    rest = data[p:p + window]
    if p + window > len(data) and len(rest) >= 64 and band_share(rest, rate, freq, width=300) > 0.8:
        p = len(data)
    return p - start
