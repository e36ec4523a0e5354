"""The micrec command: record (with meter, pause key and Ctrl-C), devices, encoders, demo."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from micrec.vmic import VirtualMicrophone

from audio import dominant_frequency, ffmpeg_decode, ffprobe, have_ffmpeg, peak_dbfs

MICREC = [sys.executable, "-m", "micrec"]


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MICREC, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_record_with_duration(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(880.0, 8)
    out = tmp_path / "cli.flac"
    result = run(["record", str(out), "--duration", "1.5", "--rate", "48000", "--channels", "1"], env=vmic.env)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: 1.50 s, flac 48000 Hz mono," in result.stdout
    probe = ffprobe(out)
    assert (probe.codec, probe.rate, probe.channels) == ("flac", 48000, 1)
    assert probe.duration == pytest.approx(1.5, abs=0.1)
    data, rate = sf.read(out, dtype="int16")
    assert dominant_frequency(data[4800:], rate) == pytest.approx(880, abs=3)


def test_record_explicit_encoder_and_device(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(300.0, 8, mic="vmic_b")
    out = tmp_path / "take.raw"
    result = run(["record", str(out), "-e", "pcm16bits", "-d", "1", "-r", "16000", "-c", "1",
                  "--device", "vmic_b", "-q"], env=vmic.env)
    assert result.returncode == 0, result.stderr
    import numpy as np

    data = np.fromfile(out, dtype="<i2")
    assert len(data) / 16000 == pytest.approx(1.0, abs=0.1)
    assert dominant_frequency(data[1600:], 16000) == pytest.approx(300, abs=3)


def test_record_bad_input_is_a_clear_error(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    result = run(["record", str(tmp_path / "x.wav"), "--channels", "5", "-d", "1"], env=vmic.env)
    assert result.returncode == 1
    assert "channels_num=5" in result.stderr
    result = run(["record", str(tmp_path / "x.xyz"), "-d", "1"], env=vmic.env)
    assert result.returncode == 2 and "--encoder" in result.stderr
    result = run(["record", str(tmp_path / "x.wav"), "--device", "nope", "-d", "1"], env=vmic.env)
    assert result.returncode == 1 and "'nope'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_record_in_a_terminal_meter_pause_and_ctrl_c(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(600.0, 20)
    out = tmp_path / "tty.wav"
    pid, fd = pty.fork()
    if pid == 0:  # the child: micrec in a terminal
        os.execve(sys.executable, [*MICREC, "record", str(out), "-r", "48000", "-c", "1"], vmic.env)
    screen = b""

    def read_until(marker: bytes, timeout: float = 20) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while marker not in screen:
            assert time.monotonic() < deadline, f"{marker!r} not shown; screen: {screen[-500:]!r}"
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(fd, 4096)
                except OSError:
                    break

    try:
        read_until(b"REC    00:01")
        assert b"dBFS" in screen and b"#" in screen  # the level meter
        os.write(fd, b" ")
        read_until(b"PAUSED")
        os.write(fd, b" ")
        screen = b""
        read_until(b"REC ")
        os.write(fd, b"\x03")  # Ctrl-C
        read_until(b"wrote ")
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    data, rate = sf.read(out, dtype="int16")
    assert len(data) / rate > 0.9  # the meter showed 00:01.0 (rounded) before the pause
    assert dominant_frequency(data[4800:], rate) == pytest.approx(600, abs=3)


def test_devices_marks_the_default(vmic: VirtualMicrophone) -> None:
    result = run(["devices"], env=vmic.env)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any(line.startswith("* vmic_a") and "Virtual mic A" in line for line in lines)
    assert any(line.startswith("  vmic_b") for line in lines)
    assert ".monitor" not in result.stdout


def test_encoders_lists_all_nine() -> None:
    result = run(["encoders"])
    assert result.returncode == 0
    for value in ("aacLc", "aacHe", "aacEld", "amrNb", "amrWb", "opus", "flac", "wav", "pcm16bits"):
        assert any(line.startswith(value + " ") for line in result.stdout.splitlines()), value
    assert "wav        yes" in result.stdout


@pytest.mark.skipif(shutil.which("pulseaudio") is None, reason="needs PulseAudio")
def test_demo_uses_a_labelled_virtual_microphone(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE")}
    env["PULSE_SERVER"] = f"unix:{tmp_path}/none"  # no real microphone reachable
    result = subprocess.run([*MICREC, "demo", "--seconds", "1", "-o", str(tmp_path / "demo.wav")],
                            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "VIRTUAL microphone" in result.stdout
    assert "strongest frequency 440 Hz" in result.stdout
    assert sf.info(tmp_path / "demo.wav").duration == pytest.approx(1.0, abs=0.1)


def test_help_lists_the_commands() -> None:
    result = run(["--help"])
    for command in ("record", "devices", "encoders", "demo"):
        assert command in result.stdout


# -- how a take ends: signals, and the summary line --------------------------------------------
SUMMARY = re.compile(r"^wrote (?P<path>.+): (?P<seconds>[\d.]+) s, (?P<format>\w+) (?P<rate>\d+) Hz "
                     r"(?P<channels>mono|stereo), (?P<size>[\d.]+ (?:B|kB|MB|GB)), "
                     r"peak (?P<peak>-?[\d.]+|-inf) dBFS(?: \(silence\))?, (?P<clipped>\d+) clipped samples?$")


def summary_of(stdout: str) -> re.Match[str]:
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout  # one line, nothing else on stdout
    match = SUMMARY.match(lines[0])
    assert match, lines[0]
    return match


def start_take(args: list[str], env: dict[str, str], seconds: float = 1.0) -> subprocess.Popen[bytes]:
    """``micrec record`` (meter on stderr, not a terminal), returned once it has ``seconds`` recorded."""
    proc = subprocess.Popen([*MICREC, "record", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 30

    def shown() -> float:  # the meter's latest time (it may skip a tenth under load)
        times = re.findall(rb"REC    (\d\d):(\d\d\.\d)", seen)
        return int(times[-1][0]) * 60 + float(times[-1][1]) if times else 0.0

    while shown() < seconds:
        assert time.monotonic() < deadline and proc.poll() is None, seen[-300:]
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            seen += os.read(proc.stderr.fileno(), 4096)
    return proc


def finish_take(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    out, err = proc.communicate(timeout=30)
    return out.decode(), err.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_finalizes_and_reports_like_ctrl_c(vmic: VirtualMicrophone, tmp_path: Path,
                                                          signum: signal.Signals) -> None:
    vmic.play_tone(500.0, 20, amplitude=0.25)
    out = tmp_path / "signal.wav"
    proc = start_take([str(out), "-r", "48000", "-c", "1"], vmic.env)
    proc.send_signal(signum)
    stdout, stderr = finish_take(proc)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert ("stopped by SIGINT" in stderr) is False
    if signum != signal.SIGINT:
        assert f"micrec: stopped by {signum.name}" in stderr
    summary = summary_of(stdout)
    data, rate = sf.read(out, dtype="int16")
    assert len(data) / rate > 0.9  # the meter showed 00:01.0 (rounded)
    # The summary is what the recorder wrote: exact for the duration of a WAV, and its level.
    assert float(summary["seconds"]) == pytest.approx(len(data) / rate, abs=0.005)
    assert (summary["path"], summary["format"], summary["rate"], summary["channels"]) == (
        str(out), "wav", "48000", "mono")
    assert float(summary["peak"]) == pytest.approx(peak_dbfs(data), abs=0.05)
    assert summary["clipped"] == "0"
    assert dominant_frequency(data[4800:], rate) == pytest.approx(500, abs=3)


@pytest.mark.skipif(not have_ffmpeg(), reason="needs ffmpeg and ffprobe")
@pytest.mark.parametrize("output", ["burst.m4a", "burst.wav"])
def test_a_burst_of_signals_during_finalization_leaves_a_whole_file(vmic: VirtualMicrophone, tmp_path: Path,
                                                                     output: str) -> None:
    vmic.play_tone(700.0, 20)
    out = tmp_path / output
    proc = start_take([str(out), "-r", "48000", "-c", "1"], vmic.env)
    proc.send_signal(signal.SIGTERM)
    # More of every kind, for as long as the process lives (finalizing, printing, exiting).
    kinds = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    sent = 1
    while proc.poll() is None and sent < 2000:
        try:
            os.kill(proc.pid, kinds[sent % 3])
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(0.001)
    stdout, stderr = finish_take(proc)
    assert sent > 3, "the process ended before the burst"
    assert proc.returncode == 0, stderr
    # Python runs the handlers of signals that are pending together by number, so SIGHUP (1)
    # may be the first one seen even though SIGTERM (15) was sent first.
    assert "Traceback" not in stderr
    first = re.findall(r"^micrec: stopped by (SIG\w+)$", stderr, re.M)
    assert first in ([], ["SIGTERM"], ["SIGHUP"]), stderr  # []: SIGINT (2), which prints nothing
    summary = summary_of(stdout)
    probe = ffprobe(out)
    audio = ffmpeg_decode(out)
    assert len(audio) / probe.rate == pytest.approx(float(summary["seconds"]), abs=0.05)
    assert float(summary["seconds"]) > 0.9
    assert dominant_frequency(audio[4800:], probe.rate) == pytest.approx(700, abs=3)


def test_closing_the_terminal_finalizes_the_take(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    """The window closes: the terminal hangs up (SIGHUP; every write after it fails)."""
    vmic.play_tone(600.0, 20)
    out = tmp_path / "hangup.wav"
    pid, fd = pty.fork()
    if pid == 0:  # the child: micrec in a terminal
        os.execve(sys.executable, [*MICREC, "record", str(out), "-r", "48000", "-c", "1"], vmic.env)
    screen = b""
    try:
        deadline = time.monotonic() + 30
        while b"REC    00:01" not in screen:
            assert time.monotonic() < deadline, screen[-300:]
            if select.select([fd], [], [], 0.2)[0]:
                screen += os.read(fd, 4096)
    finally:
        os.close(fd)  # the terminal goes away
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    data, rate = sf.read(out, dtype="int16")
    assert len(data) / rate > 0.9  # the meter showed 00:01.0 (rounded)
    assert dominant_frequency(data[4800:], rate) == pytest.approx(600, abs=3)


def test_the_summary_counts_clipped_samples_exactly(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    rate = 48000
    t = np.arange(8 * rate) / rate
    loud = np.clip(np.round(1.3 * 32767 * np.sin(2 * np.pi * 250 * t)), -32768, 32767).astype(np.int16)
    loud[::rate // 7] = -32768  # the negative full scale too
    vmic.play_samples(loud, rate)
    out = tmp_path / "clipped.wav"
    result = run(["record", str(out), "-d", "1.5", "-r", "48000", "-c", "1", "-q"], env=vmic.env)
    assert result.returncode == 0, result.stderr
    summary = summary_of(result.stdout)
    data, _ = sf.read(out, dtype="int16")
    clipped = int(np.count_nonzero((data == 32767) | (data == -32768)))
    assert clipped > 1000  # the feed reached the file at full scale
    assert int(summary["clipped"]) == clipped
    assert summary["peak"] == "0.0"
    assert summary["seconds"] == "1.50" and summary["size"] == f"{out.stat().st_size / 1e3:.1f} kB"
