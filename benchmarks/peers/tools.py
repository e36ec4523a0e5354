"""The recorders compared, as command lines: the peers users would pick, and micrec.

Every tool records the server's default source (the benchmark microphone) at the configured
rate and channel count, as its users would run it. A tool that cannot write an encoder has no
row for it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WAV, FLAC, OPUS, AAC = "wav", "flac", "opus", "aacLc"
ENCODERS = (WAV, FLAC, OPUS, AAC)
EXTENSION = {WAV: ".wav", FLAC: ".flac", OPUS: ".ogg", AAC: ".m4a"}
#: How ffmpeg writes each encoder (bit rate as micrec's default, 128 kb/s).
_FFMPEG_CODEC = {
    WAV: ["-c:a", "pcm_s16le"],
    FLAC: ["-c:a", "flac"],
    OPUS: ["-c:a", "libopus", "-b:a", "128k"],
    AAC: ["-c:a", "aac", "-b:a", "128k"],
}


@dataclass(frozen=True)
class Config:
    rate: int
    channels: int

    @property
    def label(self) -> str:
        khz = f"{self.rate / 1000:g} kHz"
        return f"{khz} {'mono' if self.channels == 1 else 'stereo'}"


Commands = list[list[str]]


@dataclass(frozen=True)
class Tool:
    """One recorder: how to run it for an encoder, configuration and output file."""

    key: str
    label: str
    encoders: tuple[str, ...]
    build: Callable[[str, Config, Path], Commands]
    binaries: tuple[str, ...] = ()
    api: bool = False  # driven through api_driver's JSON protocol
    micrec: bool = False

    def missing(self) -> str | None:
        """Why this tool cannot run here, or None."""
        for name in self.binaries:
            if shutil.which(name) is None:
                return f"{name} is not installed"
        return None


def _ffmpeg_out(encoder: str, out: Path) -> list[str]:
    return [*_FFMPEG_CODEC[encoder], "-y", str(out)]


def _record_pipeline(encoder: str, cfg: Config, out: Path) -> Commands:
    return [
        ["parecord", "--latency-msec=100", "--raw", "--format=s16le", f"--rate={cfg.rate}",
         f"--channels={cfg.channels}"],
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(cfg.rate),
         "-ac", str(cfg.channels), "-i", "pipe:0", *_ffmpeg_out(encoder, out)],
    ]


def _ffmpeg_pulse(encoder: str, cfg: Config, out: Path) -> Commands:
    return [["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "pulse",
             "-sample_rate", str(cfg.rate), "-channels", str(cfg.channels), "-i", "default",
             *_ffmpeg_out(encoder, out)]]


def _sox(encoder: str, cfg: Config, out: Path) -> Commands:
    return [["sox", "-q", "-t", "pulseaudio", "-r", str(cfg.rate), "-c", str(cfg.channels), "-b", "16",
             "-e", "signed-integer", "default", str(out)]]


def _arecord(encoder: str, cfg: Config, out: Path) -> Commands:
    return [["arecord", "-q", "-D", "pulse", "-f", "S16_LE", "-r", str(cfg.rate), "-c", str(cfg.channels),
             "-t", "wav", str(out)]]


def _sd_script(encoder: str, cfg: Config, out: Path) -> Commands:
    # libsndfile writes Ogg Opus only at 8/12/16/24/48 kHz: the script's user would pick 48k.
    rate = 48000 if encoder == OPUS and cfg.rate not in (8000, 12000, 16000, 24000, 48000) else cfg.rate
    return [[sys.executable, str(HERE / "sd_writer.py"), str(out), "--rate", str(rate),
             "--channels", str(cfg.channels)]]


def _micrec_cli(encoder: str, cfg: Config, out: Path, *flags: str) -> Commands:
    return [[str(Path(sys.executable).with_name("micrec")), "record", str(out), "--encoder", encoder,
             "--rate", str(cfg.rate), "--channels", str(cfg.channels), *flags]]


def _micrec_quiet(encoder: str, cfg: Config, out: Path) -> Commands:
    return _micrec_cli(encoder, cfg, out, "--quiet")


def _micrec_api(encoder: str, cfg: Config, out: Path, *flags: str) -> Commands:
    return [[sys.executable, str(HERE / "api_driver.py"), str(out), "--encoder", encoder,
             "--rate", str(cfg.rate), "--channels", str(cfg.channels), *flags]]


def _micrec_api_levels(encoder: str, cfg: Config, out: Path) -> Commands:
    return _micrec_api(encoder, cfg, out, "--poll-levels", "0.05")


#: micrec's rows are its modes as users run them: first the defaults (the CLI draws its meter; a
#: script's take watches nothing), then the flags and the watched API take in rows of their own.
TOOLS = (
    Tool("record", "A. parecord | ffmpeg (record)", ENCODERS, _record_pipeline, ("parecord", "ffmpeg")),
    Tool("ffmpeg", "B. ffmpeg -f pulse", ENCODERS, _ffmpeg_pulse, ("ffmpeg",)),
    Tool("sox", "C. sox -t pulseaudio", (WAV, FLAC), _sox, ("sox",)),
    Tool("arecord", "C. arecord -D pulse", (WAV,), _arecord, ("arecord",)),
    Tool("sd", "D. sounddevice+soundfile script", (WAV, FLAC, OPUS), _sd_script),
    Tool("micrec-cli", "E. micrec record (CLI, meter)", ENCODERS, _micrec_cli, micrec=True),
    Tool("micrec-api", "F. micrec API, plain take", ENCODERS, _micrec_api, api=True, micrec=True),
    Tool("micrec-quiet", "G. micrec record --quiet", ENCODERS, _micrec_quiet, micrec=True),
    Tool("micrec-levels", "H. micrec API, levels polled", ENCODERS, _micrec_api_levels, api=True, micrec=True),
)
#: The rows the targets need; the other peers and modes run with ``--full`` (or ``--tools``).
TARGET_TOOLS = ("record", "arecord", "micrec-cli", "micrec-api", "micrec-quiet")


def micrec_unsupported(encoder: str) -> str | None:
    """Why micrec cannot record ``encoder`` here (e.g. not implemented yet), or None."""
    from micrec import AudioEncoder, encoders

    return encoders.unavailable_reason(AudioEncoder(encoder))
