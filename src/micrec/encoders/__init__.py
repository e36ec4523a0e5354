"""Encoders: one module per file format, loaded only when that format is used.

The registry maps each :class:`~micrec.AudioEncoder` to the class that writes it. A format
whose module or library is missing here is *unsupported*: :func:`unavailable_reason` says why
and what to install, and :func:`create` raises :class:`~micrec.EncoderUnavailableError`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import EncoderUnavailableError, InvalidConfigError
from ..types import AudioEncoder
from .base import Encoder, EncoderInfo

__all__ = ["Encoder", "EncoderInfo", "create", "describe", "encoder_class", "guess_encoder", "resolve",
           "unavailable_reason"]

# module, class; the modules of formats not built yet are absent and report so.
_REGISTRY: dict[AudioEncoder, tuple[str, str]] = {
    AudioEncoder.WAV: ("micrec.encoders.wav", "WavEncoder"),
    AudioEncoder.PCM16BITS: ("micrec.encoders.pcm", "Pcm16Encoder"),
    AudioEncoder.FLAC: ("micrec.encoders.flac", "FlacEncoder"),
    AudioEncoder.AACLC: ("micrec.encoders.aac", "AacLcEncoder"),
    AudioEncoder.AACHE: ("micrec.encoders.fdk", "AacHeEncoder"),
    AudioEncoder.AACELD: ("micrec.encoders.fdk", "AacEldEncoder"),
    AudioEncoder.OPUS: ("micrec.encoders.opus", "OpusEncoder"),
    AudioEncoder.AMRNB: ("micrec.encoders.amrnb", "AmrNbEncoder"),
    AudioEncoder.AMRWB: ("micrec.encoders.amrwb", "AmrWbEncoder"),
}


def encoder_class(codec: AudioEncoder) -> type[Encoder] | None:
    """The class that writes ``codec``, or None where micrec has none yet."""
    module_name, class_name = _REGISTRY[codec]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    cls: type[Encoder] = getattr(module, class_name)
    return cls


def unavailable_reason(codec: AudioEncoder) -> str | None:
    """None when ``codec`` can be recorded on this machine now, else the reason."""
    cls = encoder_class(codec)
    if cls is None:
        return f"the {codec.value} encoder is not implemented in this version of micrec"
    return cls.unavailable_reason()


def describe(codec: AudioEncoder) -> EncoderInfo:
    """Support, containers, rates and seek granularity of one encoder (for ``micrec encoders``)."""
    cls = encoder_class(codec)
    if cls is None:
        return EncoderInfo(codec, (), (), (), unavailable_reason(codec), "")
    return EncoderInfo(codec, cls.extensions, cls.rates, cls.channel_counts,
                       cls.unavailable_reason(), cls.seek_granularity)


def resolve(codec: AudioEncoder, path: str | os.PathLike[str]) -> type[Encoder]:
    """The encoder class for ``codec`` writing to ``path``; raises if it cannot be used."""
    reason = unavailable_reason(codec)
    if reason is not None:
        raise EncoderUnavailableError(f"cannot record {codec.value}: {reason}", value=codec,
                                      name="audio_encoder")
    cls = encoder_class(codec)
    assert cls is not None
    suffix = Path(path).suffix
    if suffix and not cls.accepts_extension(suffix):
        raise InvalidConfigError(
            f"the output extension {suffix!r} does not fit the {codec.value} encoder; "
            f"use one of {', '.join(cls.extensions)} or pick another audio_encoder",
            value=os.fspath(path), name="output_path")
    return cls


def create(codec: AudioEncoder, path: str | os.PathLike[str], rate: int, channels: int,
           bit_rate: int) -> Encoder:
    """Open an encoder writing ``path``; ``rate`` and ``channels`` must be admitted ones."""
    return resolve(codec, path)(path, rate, channels, bit_rate)


_BY_EXTENSION = {
    ".wav": AudioEncoder.WAV, ".wave": AudioEncoder.WAV, ".rf64": AudioEncoder.WAV,
    ".flac": AudioEncoder.FLAC,
    ".pcm": AudioEncoder.PCM16BITS, ".raw": AudioEncoder.PCM16BITS,
    ".m4a": AudioEncoder.AACLC, ".mp4": AudioEncoder.AACLC, ".aac": AudioEncoder.AACLC,
    ".ogg": AudioEncoder.OPUS, ".opus": AudioEncoder.OPUS, ".webm": AudioEncoder.OPUS,
    ".amr": AudioEncoder.AMRNB, ".3gp": AudioEncoder.AMRNB, ".awb": AudioEncoder.AMRWB,
}


def guess_encoder(path: str | os.PathLike[str]) -> AudioEncoder | None:
    """The usual encoder for a file name's extension (``.m4a`` → AAC-LC), or None."""
    return _BY_EXTENSION.get(Path(path).suffix.lower())
