"""Reading a take back: every format micrec writes, as float samples.

libsndfile (soundfile) reads WAV/RF64, FLAC and Ogg Opus; PyAV reads the rest (MP4/ADTS AAC,
WebM Opus, AMR, 3GP). Raw PCM16 has no header, so its rate and channel count must be given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DecodedTake", "TakeReader", "open_take", "read_take"]

RAW_SUFFIXES = frozenset({".pcm", ".raw", ".s16", ".s16le"})
_SNDFILE_LABELS = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "RF64 WAV", "FLAC": "FLAC", "OGG": "Ogg"}
_SUBTYPE_LABELS = {"PCM_16": "16-bit PCM", "PCM_24": "24-bit PCM", "PCM_32": "32-bit PCM", "FLOAT": "float",
                   "OPUS": "Opus", "VORBIS": "Vorbis"}
_AV_CODECS = {"aac": "AAC", "libfdk_aac": "AAC", "opus": "Opus", "libopus": "Opus", "amrnb": "AMR-NB",
              "amr_nb": "AMR-NB", "libopencore_amrnb": "AMR-NB", "amrwb": "AMR-WB", "amr_wb": "AMR-WB",
              "libopencore_amrwb": "AMR-WB", "flac": "FLAC", "vorbis": "Vorbis", "mp3": "MP3"}
BLOCK_FRAMES = 1 << 16  # read a take this many frames at a time: memory does not grow with length
_AV_CONTAINERS = {".m4a": "MP4", ".mp4": "MP4", ".3gp": "3GP", ".webm": "WebM", ".aac": "ADTS",
                  ".ogg": "Ogg", ".opus": "Ogg", ".mka": "Matroska"}


@dataclass(frozen=True)
class DecodedTake:
    """A decoded take.

    Attributes
    ----------
    path : Path
        The file read.
    samples : numpy.ndarray
        float32, shaped ``(frames, channels)``, full scale = 1.0 (int16 samples / 32768).
    rate : int
        Sample rate in Hz.
    format : str
        What the file is, for people: ``"FLAC 16-bit PCM"``, ``"AAC-LC in MP4"``, ``"raw PCM16"``.
    """

    path: Path
    samples: npt.NDArray[np.float32]
    rate: int
    format: str

    @property
    def channels(self) -> int:
        """Channels decoded (FFmpeg decodes a mono HE-AAC stream as stereo)."""
        return int(self.samples.shape[1])

    @property
    def frames(self) -> int:
        """Samples per channel."""
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.rate if self.rate else 0.0


@dataclass(frozen=True)
class TakeReader:
    """A take opened for reading block by block (see :func:`open_take`).

    Attributes
    ----------
    path : Path
    rate, channels : int
    frames : int
        Samples per channel: exact for WAV, FLAC, Ogg and raw PCM; for the formats PyAV reads,
        counted from the packets' durations (within a codec frame of what decodes).
    format : str
        As :attr:`DecodedTake.format`.
    """

    path: Path
    rate: int
    channels: int
    frames: int
    format: str
    _blocks: Callable[[], Iterator[npt.NDArray[np.float32]]]

    def blocks(self) -> Iterator[npt.NDArray[np.float32]]:
        """The samples, float32 ``(n, channels)``, a bounded block at a time."""
        return self._blocks()


def read_take(path: str | os.PathLike[str], *, rate: int | None = None,
              channels: int | None = None) -> DecodedTake:
    """Decode any file micrec writes, whole.

    Parameters
    ----------
    path : str or path-like
        The take. ``.pcm`` (and ``.raw``) files are read as raw s16le, which needs ``rate`` and
        ``channels``; giving both reads any file as raw PCM16.
    rate, channels : int, optional
        The raw PCM's format (ignored for files with a header).

    Raises
    ------
    InvalidConfigError
        No such file, raw PCM without ``rate``/``channels``, or a file no decoder here reads.
    """
    import numpy as np

    reader = open_take(path, rate=rate, channels=channels)
    parts = list(reader.blocks())
    samples = np.concatenate(parts) if parts else np.zeros((0, reader.channels), dtype=np.float32)
    return DecodedTake(reader.path, samples, reader.rate, reader.format)


def open_take(path: str | os.PathLike[str], *, rate: int | None = None,
              channels: int | None = None) -> TakeReader:
    """Open any file micrec writes for reading block by block (arguments and errors as :func:`read_take`)."""
    take = Path(os.fspath(path))
    if not take.is_file():
        raise InvalidConfigError(f"no file at {str(take)!r}: give the path of a recording", value=str(take),
                                 name="path")
    if take.suffix.lower() in RAW_SUFFIXES or (rate is not None and channels is not None):
        return _open_raw(take, rate, channels)
    found = _open_with_soundfile(take)
    if found is not None:
        return found
    return _open_with_av(take)


def _open_raw(path: Path, rate: int | None, channels: int | None) -> TakeReader:
    import numpy as np

    if rate is None or channels is None:
        raise InvalidConfigError(
            f"{str(path)!r} is raw PCM16 (no header): give its rate and channels "
            "(micrec plot --rate R --channels C; read_take(path, rate=R, channels=C))",
            value=str(path), name="rate" if rate is None else "channels")
    if rate <= 0 or channels not in (1, 2):
        raise InvalidConfigError(f"rate={rate!r}, channels={channels!r}: use a positive rate and 1 or 2 "
                                 "channels", value=(rate, channels), name="rate")
    frames = path.stat().st_size // (2 * channels)

    def blocks() -> Iterator[npt.NDArray[np.float32]]:
        with open(path, "rb") as f:
            for start in range(0, frames, BLOCK_FRAMES):
                count = min(BLOCK_FRAMES, frames - start)
                data = np.frombuffer(f.read(count * 2 * channels), dtype="<i2")
                yield (data.reshape(-1, channels) / np.float32(32768)).astype(np.float32)

    return TakeReader(path, rate, channels, frames, "raw PCM16", blocks)


def _open_with_soundfile(path: Path) -> TakeReader | None:
    import soundfile as sf

    try:
        with sf.SoundFile(path) as f:
            info = (int(f.samplerate), int(f.channels), int(f.frames), _sndfile_label(f.format, f.subtype))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None  # not a format libsndfile reads: PyAV's turn

    def blocks() -> Iterator[npt.NDArray[np.float32]]:
        with sf.SoundFile(path) as f:
            yield from f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True)

    return TakeReader(path, *info, blocks)


def _sndfile_label(container: str, subtype: str) -> str:
    name = _SNDFILE_LABELS.get(container, container)
    detail = _SUBTYPE_LABELS.get(subtype, subtype)
    return f"{name} {detail}" if container != "OGG" else f"{detail} in Ogg"


def _open_with_av(path: Path) -> TakeReader:
    from .._lazy import require

    av = require("av", extra="lossy", package="'av<19'")
    with _av_open(av, path) as container:
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate)
        channels = int(stream.codec_context.channels or 1)
        label = _av_label(stream, path)
        # Demuxing without decoding is cheap: the packets' durations give the length.
        ticks = sum(int(packet.duration or 0) for packet in container.demux(stream))
        frames = round(ticks * stream.time_base * rate) if stream.time_base else 0

    def blocks() -> Iterator[npt.NDArray[np.float32]]:
        import numpy as np

        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        with _av_open(av, path) as container:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    yield np.ascontiguousarray(out.to_ndarray().T, dtype=np.float32)
            for out in resampler.resample(None):
                yield np.ascontiguousarray(out.to_ndarray().T, dtype=np.float32)

    return TakeReader(path, rate, channels, frames, label, blocks)


def _av_open(av: Any, path: Path) -> Any:
    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises its own FFmpeg errors
        raise InvalidConfigError(f"{str(path)!r} is not a recording this machine can read: {exc}",
                                 value=str(path), name="path") from exc
    if not container.streams.audio:
        container.close()
        raise InvalidConfigError(f"{str(path)!r} has no audio stream", value=str(path), name="path")
    return container


def _av_label(stream: Any, path: Path) -> str:
    codec = _AV_CODECS.get(stream.codec_context.name, stream.codec_context.name.upper())
    profile = getattr(stream, "profile", None) or ""
    if codec == "AAC" and profile:
        codec = profile if profile.startswith("HE-AAC") else f"AAC-{profile}"
    container = _AV_CONTAINERS.get(path.suffix.lower())
    return f"{codec} in {container}" if container and container != codec else codec
