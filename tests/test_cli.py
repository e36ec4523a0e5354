"""The micrec command: record (with meter, pause key and Ctrl-C), devices, encoders, demo."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from micrec.vmic import VirtualMicrophone

from audio import dominant_frequency, ffprobe

MICREC = [sys.executable, "-m", "micrec"]


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MICREC, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_record_with_duration(vmic: VirtualMicrophone, tmp_path: Path) -> None:
    vmic.play_tone(880.0, 8)
    out = tmp_path / "cli.flac"
    result = run(["record", str(out), "--duration", "1.5", "--rate", "48000", "--channels", "1"], env=vmic.env)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
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
