"""Complete takes: the file holds what the microphone captured from the start to the stop.

Judged by the outside world, never by the recorder's own counters (``duration_ms``): an
independent ``parec`` of the same microphone (:class:`audio.Witness`) notes when each piece of
the microphone's audio arrived, and each take, decoded by ffmpeg (and libsndfile where it
reads the format), is found in it by cross-correlation. The feed is noise (which correlates at
one place only) and then a tone: where the noise turns into the tone is found in the witness
and in the file, so the file's last sample is placed on the microphone's timeline even where
the file ends in the tone. API.md ("Files"): within 50 ms at each end, whoever watches the take,
however it is stopped; a killed take readable up to within 0.5 s of the kill.

Each take is judged against the wall clock taken around the calls: the witness turns a moment
into "the samples captured by then" (at most; a busy machine only makes that earlier), and a
check in the unsafe direction allows :data:`WITNESS_SLACK` more.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from micrec import AudioRecorder
from micrec.vmic import VirtualMicrophone

from audio import Witness, ffmpeg_decode, have_ffmpeg, locate, noise, tone, tone_run

pytestmark = [pytest.mark.pulse, pytest.mark.skipif(not have_ffmpeg(), reason="needs ffmpeg and ffprobe")]

RATE = 48000  # the witness's rate, and the microphone's (vmic_a): every take is compared at it
END_TOLERANCE = 0.05  # s, at each end of a take (API.md "Files")
KILL_TOLERANCE = 0.5  # s lost at most at a SIGKILL (API.md "Files")
#: How much earlier than the truth the witness may place a moment (its promptest reads' delay),
#: allowed only where that delay would make a check stricter than the contract.
WITNESS_SLACK = 0.02
NEW_TONE = 880.0
MICREC = [sys.executable, "-m", "micrec"]
LOOPS = ["compiled", "python", "portaudio"]


# -- the feed ------------------------------------------------------------------------------

@dataclass
class Feed:
    """Noise, then a tone from ``change`` on: its samples and where the change is in the witness."""

    samples: npt.NDArray[np.int16]
    change: int  # index of the tone's first sample in the feed
    start_in_witness: int = -1  # where the witness first heard the feed (live, for timing only)

    def change_piece(self, before: float = 0.1, after: float = 0.05) -> npt.NDArray[np.int16]:
        """The feed around the change: noise that fixes the place, then the first of the tone."""
        return self.samples[self.change - int(before * RATE):self.change + int(after * RATE)]


def noise_then_tone(noise_s: float, tone_s: float, seed: int) -> Feed:
    samples = np.concatenate([noise(noise_s, RATE, seed=seed), tone(NEW_TONE, tone_s, RATE)])
    return Feed(samples, int(noise_s * RATE))


def play(vmic: VirtualMicrophone, witness: Witness, feed: Feed) -> Feed:
    """Play ``feed`` into vmic_a and return once the witness hears it begin."""
    vmic.play_samples(feed.samples, RATE, mic="vmic_a")
    feed.start_in_witness = witness.wait_for_sound()
    return feed


def wait_past_change(witness: Witness, feed: Feed, seconds: float) -> None:
    """Return once the witness has ``seconds`` of the tone: the stop comes that long after the change, or more."""
    witness.wait_for_index(feed.start_in_witness + feed.change + int(seconds * RATE))


# -- a take and its judgement ----------------------------------------------------------------

@dataclass
class Take:
    """One file, the moments around its calls, and what was found wrong with it."""

    label: str
    path: Path
    started: tuple[float, float] | None = None  # monotonic time start_recording() was called / returned
    stopped: tuple[float, float] | None = None  # ... stop_recording() (or the stop signal) was called / returned
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def decoded(self) -> npt.NDArray[np.int16]:
        """The take as ffmpeg decodes it, at the witness's rate, mono."""
        return ffmpeg_decode(self.path, rate=RATE, channels=1)[:, 0]

    def fail(self, problem: str) -> None:
        self.problems.append(f"{self.label}: {problem}")


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    before = time.monotonic()
    call()
    return before, time.monotonic()


def judge_start(take: Take, data: npt.NDArray[np.int16], witness: Witness) -> int:
    """Check the file's first sample against start_recording(); returns where it is in the witness."""
    assert take.started is not None
    # Past the first 100 ms: pipewire-pulse may hand over a stream's first quanta out of order.
    skip = RATE // 10
    first = witness.locate(data[skip:skip + RATE // 10], f"{take.label}'s start") - skip
    late = (first - witness.index_at(take.started[1])) / RATE
    early = (witness.index_at(take.started[0]) - first) / RATE
    take.notes.append(f"start {late * 1000:+.0f} ms after start_recording() returned")
    if late > END_TOLERANCE + WITNESS_SLACK:
        take.fail(f"the file starts {late * 1000:.0f} ms after start_recording() returned")
    if early > END_TOLERANCE:
        take.fail(f"the file starts {early * 1000:.0f} ms before start_recording() was called")
    return first


def change_in_file(take: Take, data: npt.NDArray[np.int16], feed: Feed) -> int:
    """Where the feed's change from noise to the tone is in the file."""
    before = int(0.1 * RATE)
    return locate(data, feed.change_piece(0.1, 0.05), f"{take.label}'s change of tone") + before


def change_in_witness(witness: Witness, feed: Feed) -> int:
    return witness.locate(feed.change_piece(0.1, 0.05), "the feed's change of tone") + int(0.1 * RATE)


def judge_tail(take: Take, data: npt.NDArray[np.int16], feed: Feed, witness: Witness, *,
               upper: bool = True) -> int:
    """The tone from the change to the file's end, which is within 50 ms of the stop.

    Returns where the file's last sample is in the witness.
    """
    assert take.stopped is not None
    try:
        at = change_in_file(take, data, feed)
    except AssertionError:  # the file ends before the change (or just after it): place its end by the noise
        end = end_in_witness(take, data, witness)
        short = (witness.index_at(take.stopped[0]) - end) / RATE
        take.fail(f"the file ends {short * 1000:.0f} ms before the stop, before the tone began "
                  f"{(witness.index_at(take.stopped[0]) - change_in_witness(witness, feed)) / RATE:.3f} s "
                  "before the stop (lost tail)")
        return end
    tail = len(data) - at
    end = change_in_witness(witness, feed) + tail
    run = tone_run(data, RATE, NEW_TONE, at)
    if tail - run > 0.02 * RATE:
        take.fail(f"the tone of the last {tail / RATE:.3f} s stops {run / RATE:.3f} s after the change")
    short = (witness.index_at(take.stopped[0]) - end) / RATE
    took = f", stop_recording() took {(take.stopped[1] - take.stopped[0]) * 1000:.0f} ms" if upper else ""
    take.notes.append(f"tail {tail / RATE:.3f} s after the change, end {-short * 1000:+.0f} ms from the stop{took}")
    if short > END_TOLERANCE:
        take.fail(f"the file ends {short * 1000:.0f} ms before the stop (lost tail; it holds {tail / RATE:.3f} s "
                  f"of the tone, which had played {(tail / RATE + short):.3f} s by the stop)")
    long = (end - witness.index_at(take.stopped[1])) / RATE
    if upper and long > END_TOLERANCE + WITNESS_SLACK:
        take.fail(f"the file ends {long * 1000:.0f} ms after stop_recording() returned")
    return end


def end_in_witness(take: Take, data: npt.NDArray[np.int16], witness: Witness) -> int:
    """Where the file's last sample is in the witness, found by its last 100 ms (noise)."""
    skip, piece = int(0.02 * RATE), RATE // 10  # the very end of a lossy file may be a codec's partial frame
    if len(data) < piece + skip:
        raise AssertionError(f"{take.label} holds only {len(data) / RATE:.3f} s")
    return witness.locate(data[-skip - piece:-skip], f"{take.label}'s last audio") + piece + skip


@contextmanager
def judging(take: Take) -> Iterator[None]:
    """A judgement that could not be made (audio not found) is a finding of its own; the others go on."""
    try:
        yield
    except (AssertionError, subprocess.SubprocessError, RuntimeError) as error:
        take.fail(str(error).splitlines()[0] if str(error) else repr(error))


def judge_all(takes: list[Take]) -> None:
    """One assertion for every take, so that a run reports every number (and, passing, prints them)."""
    for take in takes:
        print(f"{take.label}: {'; '.join(take.notes)}")
    problems = [p for take in takes for p in take.problems]
    assert not problems, "\n".join(problems)


# -- the modes of a take ---------------------------------------------------------------------

@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The capture path in this process: pulse's compiled loop, its Python loop, or PortAudio (ALSA's pulse plugin)."""
    from micrec.backends import _pulseloop

    if request.param == "python":
        monkeypatch.setattr(_pulseloop, "load", lambda: None)
    elif request.param == "compiled" and _pulseloop.load() is None:
        pytest.skip("the compiled capture loop was not built (tests/test_pulseloop.py says why)")
    return str(request.param)


def backend_for(loop: str) -> str | None:
    return "portaudio" if loop == "portaudio" else None


def loop_env(loop: str) -> dict[str, str]:
    """The same choice for a child process."""
    return {"python": {"MICREC_PYTHON_CAPTURE": "1"}, "portaudio": {"MICREC_BACKEND": "portaudio"}}.get(loop, {})


@contextmanager
def observed(kind: str, recs: list[AudioRecorder]) -> Iterator[None]:
    """Nobody watching ("none"), levels polled every 50 ms ("levels"), or a block listener ("listener")."""
    done = threading.Event()
    poller = None
    if kind == "levels":
        def poll() -> None:
            while not done.wait(0.05):
                for rec in recs:
                    rec.get_amplitude()

        poller = threading.Thread(target=poll, name="levels", daemon=True)
        poller.start()
    try:
        yield
    finally:
        done.set()
        if poller is not None:
            poller.join(5)


@contextmanager
def stopped_at_the_end(recs: list[AudioRecorder]) -> Iterator[None]:
    """Stop whatever session a failed test left open (the next test records from the same microphone)."""
    try:
        yield
    finally:
        for rec in recs:
            if rec.is_recording():
                rec.stop_recording()


def new_recorder(kind: str, loop: str, **config: Any) -> AudioRecorder:
    listener = (lambda block: None) if kind == "listener" else None
    return AudioRecorder(backend=backend_for(loop), on_audio=listener, **config)


# -- the API: start to stop, duration= ----------------------------------------------------------

@pytest.mark.parametrize("observer", ["none", "levels", "listener"])
def test_a_take_holds_the_audio_from_start_to_stop(vmic: VirtualMicrophone, tmp_path: Path, loop: str,
                                                   observer: str) -> None:
    """Four takes at once: a WAV ended by duration=2, WAV, FLAC (default 44.1 kHz stereo) and Opus.

    They start 0.3 s apart and stop together: what the server still holds at the stop depends
    on where the stop falls in a take's blocks (longer while nobody watches), so the three stops
    fall at three places in them.
    """
    configs = {
        "wav duration=2": dict(audio_encoder="wav", sample_rate=RATE, channels_num=1),
        "wav": dict(audio_encoder="wav", sample_rate=RATE, channels_num=1),
        "flac 44.1k stereo": dict(audio_encoder="flac"),
        "opus": dict(audio_encoder="opus", sample_rate=RATE, channels_num=1),
    }
    suffixes = {"wav duration=2": ".wav", "wav": ".wav", "flac 44.1k stereo": ".flac", "opus": ".ogg"}
    recs = {label: new_recorder(observer, loop, **config) for label, config in configs.items()}
    takes = [Take(f"{loop}/{observer}/{label}", tmp_path / f"take{i}{suffixes[label]}")
             for i, label in enumerate(configs)]
    with Witness(vmic) as witness, stopped_at_the_end(list(recs.values())):
        feed = play(vmic, witness, noise_then_tone(2.5, 3.0, seed=41))
        for i, (take, (label, rec)) in enumerate(zip(takes, recs.items(), strict=True)):
            witness.wait_for_index(feed.start_in_witness + int((0.2 + 0.3 * max(0, i - 1)) * RATE))
            duration = 2.0 if "duration" in label else None
            take.started = timed(lambda rec=rec, take=take, d=duration: rec.start_recording(take.path, duration=d))
        with observed(observer, list(recs.values())):
            wait_past_change(witness, feed, 0.3)
            for take, (label, rec) in zip(takes, recs.items(), strict=True):
                if "duration" not in label:
                    take.stopped = timed(rec.stop_recording)
        ended = recs["wav duration=2"]
        deadline = time.monotonic() + 10
        while ended.is_recording():
            assert time.monotonic() < deadline, "duration=2 did not end the take"
            time.sleep(0.02)
        witness.settle(time.monotonic())
        for take, label in zip(takes, configs, strict=True):
            with judging(take):
                data = take.decoded()
                first = judge_start(take, data, witness)
                if "duration" in label:
                    judge_duration(take, data, first, feed, witness, 2.0)
                else:
                    end = judge_tail(take, data, feed, witness)
                    inside = end - first - len(data)
                    if abs(inside) > 0.01 * RATE:
                        take.fail(f"{inside / RATE * 1000:+.0f} ms of the microphone's audio missing inside the take")
    judge_all(takes)


def judge_duration(take: Take, data: npt.NDArray[np.int16], first: int, feed: Feed, witness: Witness,
                   seconds: float) -> None:
    """A take ended by duration=: that much audio, the microphone's from the start on without a gap."""
    held = len(data) / RATE
    take.notes.append(f"{held:.3f} s of duration={seconds}")
    if abs(held - seconds) > END_TOLERANCE:
        take.fail(f"holds {held:.3f} s, not the {seconds} s asked by duration=")
    try:
        end = end_in_witness(take, data, witness)
    except AssertionError:  # a start late on a busy machine: the take ends in the tone
        end = change_in_witness(witness, feed) + len(data) - change_in_file(take, data, feed)
    if abs(end - first - len(data)) > 0.01 * RATE:
        take.fail(f"its end is {(end - first) / RATE:.3f} s of the microphone after its start, "
                  f"but it holds {held:.3f} s: audio lost or repeated inside")


# -- the API: pause and seek ------------------------------------------------------------------

def test_pause_keeps_what_came_before_it_and_seek_counts_it(vmic: VirtualMicrophone, tmp_path: Path,
                                                            loop: str) -> None:
    """Nobody watches. The tone begins 0.3 s before pause(); after the resume, noise again.

    One take is resumed where it paused: the tone runs from the change to the pause, and what
    follows the cut is what the microphone captured from resume() on. The other is paused and
    sought 100 ms before the moment of the pause (wall clock since start_recording()): that
    position is inside the take only if the take holds its audio up to the pause (within the
    50 ms at each end that API.md allows), and the file is cut exactly there.
    """
    rate = RATE
    feed_a = noise_then_tone(2.0, 1.2, seed=43)
    after = noise(6.0, rate, seed=44)
    feed = Feed(np.concatenate([feed_a.samples, after]), feed_a.change)
    resumed_take, sought_take = (Take(f"{loop}/{kind}", tmp_path / f"{kind}.wav") for kind in ("pause", "seek"))
    recs = [new_recorder("none", loop, audio_encoder="wav", sample_rate=rate, channels_num=1) for _ in range(2)]
    with Witness(vmic) as witness, stopped_at_the_end(recs):
        play(vmic, witness, feed)
        witness.wait_for_index(feed.start_in_witness + rate // 5)
        for take, rec in zip((resumed_take, sought_take), recs, strict=True):
            take.started = timed(lambda rec=rec, take=take: rec.start_recording(take.path))
        wait_past_change(witness, feed, 0.3)
        paused = [timed(rec.pause) for rec in recs]
        # At once: the audio captured before the pause may still be on its way from the server.
        position_ms = (paused[1][0] - sought_take.started[1]) * 1000 - 100
        try:
            recs[1].seek(position_ms)
        except Exception as error:  # noqa: BLE001 - judged below with the numbers
            sought_take.fail(f"seek({position_ms:.0f}) {paused[1][0] - sought_take.started[1]:.3f} s after the "
                             f"start refused: {error}")
        # Resume in the noise that follows the tone.
        witness.wait_for_index(feed.start_in_witness + len(feed_a.samples) + rate // 5)
        resumed = [timed(rec.resume) for rec in recs]
        witness.wait_for_index(witness.index_at(max(r[1] for r in resumed)) + int(0.6 * rate))
        for take, rec in zip((resumed_take, sought_take), recs, strict=True):
            take.stopped = timed(rec.stop_recording)
        witness.settle(time.monotonic())
        for take, pause, resume in zip((resumed_take, sought_take), paused, resumed, strict=True):
            with judging(take):
                judge_paused_take(take, pause, resume, feed, witness,
                                  position_ms if take is sought_take else None)
    judge_all([resumed_take, sought_take])


def judge_paused_take(take: Take, pause: tuple[float, float], resume: tuple[float, float], feed: Feed,
                      witness: Witness, position_ms: float | None) -> None:
    """The tone from the change to the cut (pause(), or seek(position_ms)), then the audio from resume() to the stop."""
    rate = RATE
    assert take.stopped is not None
    change = change_in_witness(witness, feed)
    data = take.decoded()
    first = judge_start(take, data, witness)
    at = change_in_file(take, data, feed)
    # WAV at the microphone's rate holds the feed bit for bit: the tone runs to the first other sample.
    tone_in_file = data[at:at + len(feed.samples) - feed.change]
    same = tone_in_file == feed.samples[feed.change:feed.change + len(tone_in_file)]
    run = len(same) if same.all() else int(np.argmin(same))
    cut = at + run  # where the audio after the resume begins in the file
    if position_ms is None:
        short = (witness.index_at(pause[0]) - (change + run)) / rate
        take.notes.append(f"cut {-short * 1000:+.0f} ms from pause()")
        if short > END_TOLERANCE:
            take.fail(f"the audio before pause() ends {short * 1000:.0f} ms before the call (lost)")
        long = (change + run - witness.index_at(pause[1])) / rate
        if long > END_TOLERANCE + WITNESS_SLACK:
            take.fail(f"the audio before pause() runs on {long * 1000:.0f} ms after it returned")
    else:
        expected = int(position_ms / 1000 * rate)
        take.notes.append(f"the cut at {cut / rate:.3f} s, seek({position_ms:.0f})")
        if not take.problems and abs(cut - expected) > 0.01 * rate:
            take.fail(f"the cut is at {cut / rate:.3f} s of the file, not at seek({position_ms:.0f})")
    if abs(at - (change - first)) > 0.01 * rate:
        take.fail(f"{(change - first - at) / rate * 1000:+.0f} ms of the microphone's audio missing "
                  "between the start and the change of tone")
    skip = rate // 100
    resumed_at = witness.locate(data[cut + skip:cut + skip + rate // 10], f"{take.label} after the resume") - skip
    late = (resumed_at - witness.index_at(resume[1])) / rate
    early = (witness.index_at(resume[0]) - resumed_at) / rate
    take.notes.append(f"resumed {late * 1000:+.0f} ms after resume() returned")
    if late > END_TOLERANCE + WITNESS_SLACK or early > END_TOLERANCE:
        take.fail(f"what follows the cut begins {late * 1000:+.0f} ms from resume() returning")
    end = resumed_at + len(data) - cut
    short_end = (witness.index_at(take.stopped[0]) - end) / rate
    take.notes.append(f"end {-short_end * 1000:+.0f} ms from the stop")
    if short_end > END_TOLERANCE:
        take.fail(f"the file ends {short_end * 1000:.0f} ms before stop_recording() was called")


# -- the CLI: stop signals with and without the meter ------------------------------------------------

#: One take per stop signal, each in another capture path and encoder.
SIGNAL_TAKES = [(signal.SIGINT, "compiled", ".wav"), (signal.SIGTERM, "python", ".flac"),
                (signal.SIGHUP, "portaudio", ".ogg")]


def start_cli(path: Path, env: dict[str, str], loop: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*MICREC, "record", str(path), "-r", str(RATE), "-c", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env={**env, **loop_env(loop)})


def wait_for_files(paths: list[Path], procs: list[subprocess.Popen[bytes]], seconds: float = 30.0) -> float:
    """Return the moment every ``path`` exists (each recorder has started)."""
    deadline = time.monotonic() + seconds
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "a micrec record did not start in time"
        for proc in procs:
            assert proc.poll() is None, proc.communicate(timeout=10)[1].decode()[-2000:]
        time.sleep(0.01)
    return time.monotonic()


@pytest.mark.parametrize("meter", [True, False], ids=["meter", "quiet"])
def test_a_stop_signal_keeps_the_tail_of_a_cli_take(vmic: VirtualMicrophone, tmp_path: Path, meter: bool) -> None:
    """SIGINT, SIGTERM and SIGHUP 0.3 s (or more) after the tone began: the tone runs to the end of each file."""
    takes = [Take(f"{'meter' if meter else 'quiet'}/{sig.name}/{loop}/{suffix}", tmp_path / f"{sig.name}{suffix}")
             for sig, loop, suffix in SIGNAL_TAKES]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for take, (_, loop, _) in zip(takes, SIGNAL_TAKES, strict=True):
            procs.append(start_cli(take.path, vmic.env, loop, *([] if meter else ["--quiet"])))
            time.sleep(0.33)  # the stops fall at other places in each take's blocks
        with Witness(vmic) as witness:
            wait_for_files([t.path for t in takes], procs)
            feed = play(vmic, witness, noise_then_tone(2.0, 3.0, seed=45))
            wait_past_change(witness, feed, 0.3)
            for take, proc, (sig, _, _) in zip(takes, procs, SIGNAL_TAKES, strict=True):
                take.stopped = timed(lambda proc=proc, sig=sig: proc.send_signal(sig))
            for take, proc in zip(takes, procs, strict=True):
                _, err = proc.communicate(timeout=30)
                if proc.returncode != 0:
                    take.fail(f"exit status {proc.returncode}: {err.decode()[-500:]}")
            witness.settle(time.monotonic())
            for take in takes:
                if not take.problems:
                    with judging(take):
                        judge_tail(take, take.decoded(), feed, witness, upper=False)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
    judge_all(takes)


# -- a script that ends with its take open (the atexit hook) -----------------------------------------

EXIT_SCRIPT = textwrap.dedent("""
    import sys, time
    from micrec import AudioRecorder
    recs = [AudioRecorder(audio_encoder=e, sample_rate=48000, channels_num=1) for e in ("wav", "opus")]
    for rec, path in zip(recs, sys.argv[1:]):
        rec.start_recording(path)
    print("started", flush=True)
    sys.stdin.readline()
    print(time.monotonic(), flush=True)  # CLOCK_MONOTONIC: the same clock as the test's
    # and the script ends with both takes open: micrec's atexit hook finalizes them
""")


def test_a_script_that_ends_with_its_take_open_keeps_the_tail(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    """Nobody watches; the script returns 0.3 s (or more) after the tone began: the tone runs to the end."""
    takes = [Take(f"atexit/{name}", tmp_path / f"atexit.{name}") for name in ("wav", "ogg")]
    proc = subprocess.Popen([sys.executable, "-c", EXIT_SCRIPT, *(str(t.path) for t in takes)], env=vmic.env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == b"started", proc.communicate(timeout=30)[1].decode()[-2000:]
        with Witness(vmic) as witness:
            feed = play(vmic, witness, noise_then_tone(2.0, 3.0, seed=46))
            wait_past_change(witness, feed, 0.3)
            proc.stdin.write(b"end\n")
            proc.stdin.flush()
            ended = float(proc.stdout.readline())
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err.decode()[-2000:]
            witness.settle(time.monotonic())
            for take in takes:
                take.stopped = (ended, ended)
                with judging(take):
                    judge_tail(take, take.decoded(), feed, witness, upper=False)
    finally:
        proc.kill()
        proc.wait(10)
    judge_all(takes)


# -- a killed take ------------------------------------------------------------------------------

KILL_AFTER = 3.0  # s after the recording began
KILL_ENCODERS = [("wav", ".wav"), ("flac", ".flac"), ("opus", ".ogg"), ("aacLc", ".m4a")]

KILL_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    from micrec import AudioRecorder
    observer, paths = sys.argv[1], sys.argv[2:]
    encoders = {".wav": "wav", ".flac": "flac", ".ogg": "opus", ".m4a": "aacLc"}
    listener = (lambda block: None) if observer == "listener" else None
    recs = [AudioRecorder(audio_encoder=encoders[p[p.rindex("."):]], sample_rate=48000, channels_num=1,
                          on_audio=listener) for p in paths]
    for rec, path in zip(recs, paths):
        rec.start_recording(path)
    print("started", flush=True)
    while True:
        time.sleep(0.05)
        if observer == "levels":
            for rec in recs:
                rec.get_amplitude()
""")

#: The CLI's four takes each run a capture path of their own.
KILL_LOOPS = {".wav": "compiled", ".flac": "python", ".ogg": "portaudio", ".m4a": "compiled"}


@pytest.mark.parametrize("front", ["api/none", "api/levels", "api/listener", "cli/meter", "cli/quiet"])
def test_a_killed_take_is_readable_to_within_half_a_second_of_the_kill(vmic: VirtualMicrophone, tmp_path: Path,
                                                                        front: str) -> None:
    """SIGKILL 3 s after the start: ffmpeg and libsndfile read each file up to 0.5 s before the kill, or later."""
    kind, mode = front.split("/")
    takes = [Take(f"{front}/{encoder}" + (f"/{KILL_LOOPS[suffix]}" if kind == "cli" else ""),
                  tmp_path / f"killed{suffix}") for encoder, suffix in KILL_ENCODERS]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with Witness(vmic) as witness:
            vmic.play_samples(noise(30.0, RATE, seed=47), RATE, mic="vmic_a")
            witness.wait_for_sound()
            if kind == "api":
                script = [sys.executable, "-c", KILL_SCRIPT, mode, *(str(t.path) for t in takes)]
                procs.append(subprocess.Popen(script, stdout=subprocess.PIPE, env=vmic.env))
                assert procs[0].stdout is not None
                line = procs[0].stdout.readline()
                assert line.strip() == b"started", "the recording script did not start"
                started = time.monotonic()
            else:
                quiet = ["--quiet"] if mode == "quiet" else []
                procs += [start_cli(t.path, vmic.env, KILL_LOOPS[t.path.suffix], *quiet) for t in takes]
                started = wait_for_files([t.path for t in takes], procs)
            time.sleep(max(0.0, started + KILL_AFTER - time.monotonic()))
            kills = []
            for proc in procs:
                kills.append(timed(lambda proc=proc: os.kill(proc.pid, signal.SIGKILL)))
                proc.wait(10)
            witness.settle(time.monotonic())
            killed_at = kills[0][0] if kind == "api" else None
            for i, take in enumerate(takes):
                judge_kill(take, witness, killed_at if killed_at is not None else kills[i][0])
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
    judge_all(takes)


def judge_kill(take: Take, witness: Witness, killed_at: float) -> None:
    """How much of the microphone's audio before the kill is missing from the file, read two ways."""
    readers: list[tuple[str, Callable[[], npt.NDArray[np.int16]]]] = [("ffmpeg", take.decoded)]
    if take.path.suffix != ".m4a":  # libsndfile reads no AAC
        readers.append(("libsndfile", lambda: sf.read(take.path, dtype="int16", always_2d=True)[0][:, 0]))
    for reader, read in readers:
        try:
            data = read()
        except Exception as error:  # noqa: BLE001 - any failure to read is the finding
            take.fail(f"{reader} cannot read it: {error}")
            continue
        try:
            end = end_in_witness(take, data, witness)
        except AssertionError as error:
            take.fail(f"{reader}: {error}")
            continue
        lost = (witness.index_at(killed_at) - end) / RATE
        take.notes.append(f"{reader}: {lost:.3f} s lost")
        if lost > KILL_TOLERANCE:
            take.fail(f"{reader} reads up to {lost:.3f} s before the kill")


# -- memory ---------------------------------------------------------------------------------------

def rss_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field_name} for {pid}")


#: (file, --quiet, MiB of peak RSS at most): the heavier lossless and lossy encoder, and both
#: modes where the unwatched one grew (its packets wait longer in the server's pool).
MEMORY_TAKES = [(".flac", False, 40), (".flac", True, 40), (".m4a", True, 65)]


def test_a_cli_take_needs_no_more_memory_after_two_seconds(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    """``micrec record`` (44.1 kHz stereo): RSS at 2 s and 7 s within 1 MiB; peak RSS within the target.

    One take at a time: takes recorded at once from one PulseAudio share its memory pool, and
    each then maps more of it (eight at once grew 2 MiB each where one alone grew 0.1 MiB).
    """
    vmic.play_samples(noise(30.0, RATE, seed=49), RATE, mic="vmic_a")
    problems, notes = [], []
    for suffix, quiet, limit in MEMORY_TAKES:
        name = f"{suffix}{' --quiet' if quiet else ''}"
        path = tmp_path / f"memory{'-quiet' if quiet else ''}{suffix}"
        proc = subprocess.Popen([*MICREC, "record", str(path), *(["--quiet"] if quiet else [])],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=vmic.env)
        try:
            started = wait_for_files([path], [proc])
            time.sleep(max(0.0, started + 2.0 - time.monotonic()))
            early = rss_kib(proc.pid, "VmRSS")
            time.sleep(max(0.0, started + 7.0 - time.monotonic()))
            late, peak = rss_kib(proc.pid, "VmRSS"), rss_kib(proc.pid, "VmHWM")
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait(10)
        notes.append(f"{name}: RSS {early / 1024:.1f} MiB at 2 s, {late / 1024:.1f} MiB at 7 s, "
                     f"peak {peak / 1024:.1f} MiB")
        if late - early >= 1024:
            problems.append(f"{name}: RSS grew {(late - early) / 1024:.1f} MiB from 2 s to 7 s ({early} -> {late} KiB)")
        if peak > limit * 1024:
            problems.append(f"{name}: peak RSS {peak / 1024:.1f} MiB, over {limit} MiB")
    print("\n".join(notes))
    assert not problems, "\n".join(problems + notes)
