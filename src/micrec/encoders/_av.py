"""PyAV plumbing shared by the lossy encoders: containers, kill-safe muxing, punch-in by remux.

Every lossy codec here cuts the stream into packets of a fixed number of samples ``F`` (an
AAC access unit, an Opus or AMR frame), the first ``D`` samples of which are the codec's
priming delay: packet ``j`` carries the input's samples ``[j*F - D, (j+1)*F - D)``. Timestamps
follow that rule through pauses and seeks, so a file never has a gap.

Blocks are gathered into batches of 100 ms before they reach the codec: a codec woken 50
times a second runs on cold caches and costs about twice the CPU. Containers are written as
they go and flushed to the OS after every packet; MP4 and 3GP are fragmented (a fragment every
quarter second), Ogg pages and Matroska clusters are cut every quarter second (FFmpeg's Ogg
muxer holds the latest page back until the next one is complete). A killed process therefore
leaves a file that decoders read to within 0.1 s (the batch) + 0.5 s (the container) + the
codec's look-ahead of the kill.

Seeking (punch-in) closes the file, remuxes its first ``floor(frame / F)`` packets (stream
copy, no re-encoding) into a fresh file that replaces it, and goes on encoding with a fresh
codec state whose priming packet takes the place of the last packet before the cut.
"""

from __future__ import annotations

import io
import os
from abc import abstractmethod
from collections.abc import Iterable
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from .._lazy import require
from ..errors import EncoderError, MicrecError
from ._avflush import flush_muxer
from .base import Encoder

if TYPE_CHECKING:
    from .base import Block

__all__ = ["AvCodecEncoder", "AvEncoder", "UnitEncoder", "av_module", "av_unavailable_reason"]

#: Audio gathered before the codec runs (see above); flush() hands over what is gathered.
BATCH_SECONDS = 0.1
# Fragment and cluster every 0.25 s, Ogg page every 0.1 s (FFmpeg holds the latest page back
# until the next is complete): what a killed process loses, with the batch and look-ahead.
_FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
                   "frag_duration": "250000"}
_MUXER_OPTIONS: dict[str, dict[str, str]] = {
    "mp4": _FRAGMENTED_MP4,
    "ipod": _FRAGMENTED_MP4,
    "3gp": _FRAGMENTED_MP4,
    "ogg": {"page_duration": "100000"},
    "opus": {"page_duration": "100000"},
    "webm": {"cluster_time_limit": "250"},
}


def av_module() -> Any:
    """PyAV, imported on first use."""
    return require("av", extra="lossy", package="'av<19'")  # quoted: a shell reads < otherwise


def av_unavailable_reason(encoder_name: str | None = None) -> str | None:
    """None when PyAV (and its ``encoder_name`` encoder, if given) can be used here."""
    try:
        av = av_module()
    except ImportError as exc:
        return str(exc)
    if encoder_name is not None:
        try:
            av.Codec(encoder_name, "w")
        except Exception:  # noqa: BLE001 - PyAV reports an unknown codec in several types
            return (f"this PyAV ({av.__version__}) has no {encoder_name} encoder: "
                    "pip install --force-reinstall 'av<19' (its wheels carry it)")
    return None


_FRAGMENTED_MUXERS = ("mp4", "ipod", "3gp")
_EMPTY_MOVIE_FLAGS = "frag_keyframe+empty_moov+default_base_moof"


def _leading_boxes(data: bytes, kinds: tuple[bytes, ...]) -> bytes:
    """The leading ISO BMFF boxes of ``data`` whose types are in ``kinds``."""
    end = 0
    while end + 8 <= len(data) and data[end + 4:end + 8] in kinds:
        end += int.from_bytes(data[end:end + 4], "big")
    return data[:end]


def muxer_options(muxer: str) -> dict[str, str]:
    # flush_packets: every packet reaches the OS at once, so a kill loses nothing muxed.
    return {"flush_packets": "1", **_MUXER_OPTIONS.get(muxer, {})}


def _strip_adts_header(frame: bytes) -> bytes:
    protection_absent = frame[1] & 1
    return frame[7 if protection_absent else 9:]


class AvEncoder(Encoder):
    """Base of the encoders that write through a PyAV (FFmpeg) muxer.

    Subclasses set :attr:`muxers` and implement the codec hooks :meth:`_add_stream`,
    :meth:`_encode`, :meth:`_drain` and :attr:`_frame_size`.
    """

    #: File extension → FFmpeg muxer; the first extension's muxer is used for no extension.
    muxers: ClassVar[dict[str, str]]

    def __init__(self, path: str | os.PathLike[str], rate: int, channels: int, bit_rate: int) -> None:
        super().__init__(path, rate, channels, bit_rate)
        self.time_base = Fraction(1, rate)
        self._muxer = self.muxers.get(self.path.suffix.lower(), self.muxers[self.extensions[0]])
        self._container: Any = None
        self._stream: Any = None
        self._delay: int | None = None  # D, learnt from the first packet
        self._packets = 0  # packets in the file
        self._flushed_packets = 0  # packets in the file when the muxer was last flushed
        self._movie_pending = False  # a fragmented MP4 whose muxer has not written its movie yet
        self._segment_start = 0  # the frame the current codec state started at
        self._encoded = 0  # frames handed to the codec; the rest wait in the batch
        self._batch = _Batch(max(1, round(rate * BATCH_SECONDS)), channels)
        self._open(self.path)

    # -- codec hooks -------------------------------------------------------------------------
    @abstractmethod
    def _add_stream(self, container: Any) -> Any:
        """Add the audio stream to a new container, with a fresh codec state."""

    @abstractmethod
    def _encode(self, block: Block) -> Iterable[Any]:
        """Packets completed by ``block`` (whose first frame is ``self._encoded``)."""

    @abstractmethod
    def _drain(self) -> Iterable[Any]:
        """The packets the codec still holds."""

    @property
    @abstractmethod
    def _frame_size(self) -> int:
        """F: samples per channel in one packet."""

    # -- the stream --------------------------------------------------------------------------
    def write(self, block: Block) -> None:
        if self._container is None:
            raise EncoderError(f"{self.path} is closed (an earlier seek failed); stop and start again")
        if not self._batch.add(block):
            self.flush()
            if not self._batch.add(block):
                self._encode_now(block)
        self.frames_written += len(block)
        if self._batch.full:
            self.flush()

    def flush(self) -> None:
        """Encode and mux the gathered blocks, and have the muxer write out what it holds.

        The session calls this every half second of audio or of wall time, so a stalled input
        leaves every packet the codec has made on disk (the codec keeps its look-ahead).
        """
        if self._container is None:
            return
        if self._batch.frames:
            self._encode_now(self._batch.take())
        if self._packets != self._flushed_packets:
            self._flush_muxer()

    def _flush_muxer(self) -> None:
        self._flush_container()
        if self._movie_pending:
            # With delay_moov the fragmented MP4 muxer's first flush writes only its movie
            # header and keeps the packets; the second writes them as the first fragment, a
            # block earlier than the next flush would (100 ms sooner the first audio in the file).
            self._movie_pending = False
            self._flush_container()
        self._flushed_packets = self._packets

    def _flush_container(self) -> None:
        ret = flush_muxer(self._container)
        if ret < 0:
            raise self._wrap_write_error(OSError(-ret, os.strerror(-ret)))

    def seek(self, frame: int) -> int:
        frame = max(0, min(frame, self.frames_written))
        keep = frame // self._frame_size
        self.flush()
        self._close_container()
        scratch = self.path.with_name(self.path.name + ".micrec-seek")
        try:
            self._open(scratch)
            kept = self._copy_packets(keep)
            os.replace(scratch, self.path)
        except Exception as exc:  # the take up to the pause is still intact
            self._discard_container()
            scratch.unlink(missing_ok=True)
            raise EncoderError(f"could not cut {self.path} at frame {frame}: {exc}", value=frame,
                               name="position_milliseconds") from exc
        self._packets = kept
        self._flushed_packets = -1  # the fresh file's packets go out at the next flush
        self.frames_written = self._encoded = self._segment_start = kept * self._frame_size
        return self.frames_written

    def _finalize(self) -> None:
        try:
            self.flush()
        finally:  # a full disk must not keep the file (or the codec) open
            try:
                self._close_container()
            finally:
                self._release()

    def _release(self) -> None:
        """Free what the codec holds outside the container (a no-op for PyAV's codecs)."""

    # -- internals ---------------------------------------------------------------------------
    def _open(self, path: os.PathLike[str]) -> None:
        av = av_module()
        container = av.open(os.fspath(path), "w", format=self._muxer, options=muxer_options(self._muxer))
        try:
            self._stream = self._add_stream(container)
            # Now, so that the file exists under this name before a seek renames it.
            container.start_encoding()
            self._container = container
            if self._muxer in _FRAGMENTED_MUXERS:
                self._write_empty_movie(path)
                self._movie_pending = True
            else:
                self._write_placeholder(path)
        except BaseException:
            self._container = container
            self._discard_container()
            self._release()
            raise

    def _write_empty_movie(self, path: os.PathLike[str]) -> None:
        """Put an empty movie (ftyp + moov) in the file until the muxer writes its own.

        The muxer writes nothing before its first fragment (delay_moov: its moov then carries
        the edit list that hides the codec's priming), so the file would be empty and unreadable
        until then. Its first write, at offset 0, is longer than this movie and replaces it.
        """
        av = av_module()
        buffer = io.BytesIO()
        with av.open(buffer, "w", format=self._muxer, options={"movflags": _EMPTY_MOVIE_FLAGS}) as movie:
            movie.add_stream_from_template(self._stream, opaque=True)
            movie.start_encoding()
        header = _leading_boxes(buffer.getvalue(), (b"ftyp", b"moov"))
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, header, 0)
        finally:
            os.close(fd)

    def _placeholder(self, header: bytes) -> bytes:
        """What stands after the muxer's ``header`` until its first write replaces it (b"": nothing).

        For a container that FFmpeg reads only once audio follows its header (Ogg, Matroska):
        what makes the file readable, and empty, in the meantime.
        """
        return b""

    def _close_empty(self, path: os.PathLike[str]) -> None:
        """Make a finished file that holds no packet readable (the placeholder may need help)."""

    def _write_placeholder(self, path: os.PathLike[str]) -> None:
        with open(path, "rb") as f:
            header = f.read()
        placeholder = self._placeholder(header)
        if placeholder:
            # The muxer has flushed its header and writes on at its end: at len(header).
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, placeholder, len(header))
            finally:
                os.close(fd)

    def _encode_now(self, block: Block) -> None:
        try:
            packets = self._encode(block)
            self._encoded += len(block)
            self._mux(packets)
        except MicrecError:
            raise
        except Exception as exc:  # FFmpeg errors come as OSError/ValueError subtypes
            raise self._wrap_write_error(exc) from exc

    def _mux(self, packets: Iterable[Any]) -> None:
        mux = self._container.mux_one
        for packet in packets:
            if self._delay is None:
                self._delay = self._segment_start - packet.pts
            mux(packet)
            self._packets += 1

    def _copy_packets(self, count: int) -> int:
        """Stream-copy the first ``count`` packets of the (closed) file into the new container."""
        if count == 0:
            return 0
        av = av_module()
        frame_size, delay = self._frame_size, self._delay or 0
        copied = 0
        with av.open(os.fspath(self.path)) as old:
            for packet in old.demux(old.streams.audio[0]):
                if copied == count:
                    break
                if packet.size == 0:  # demux's end-of-stream marker
                    continue
                if self._muxer == "adts":
                    # The ADTS demuxer keeps each frame's header; the muxer adds one again.
                    packet = av.Packet(_strip_adts_header(bytes(packet)))
                packet.stream = self._stream
                packet.time_base = self.time_base
                # Raw formats (ADTS, AMR) carry no timestamps: restate the rule for all.
                packet.pts = packet.dts = copied * frame_size - delay
                packet.duration = frame_size
                self._container.mux_one(packet)
                copied += 1
        return copied

    def _close_container(self) -> None:
        if self._container is None:
            return
        try:
            # A codec that was given nothing is not drained: it has nothing to give back, and
            # opencore's AMR-NB returns a packet without a timestamp all the same.
            if self._encoded > self._segment_start:
                self._mux(self._drain())
        finally:
            container, self._container = self._container, None
            container.close()
        if self._packets == 0:
            self._close_empty(self.path)

    def _discard_container(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass


class _Batch:
    """Blocks gathered for the codec, copied into one buffer (the caller may reuse its blocks)."""

    def __init__(self, capacity: int, channels: int) -> None:
        import numpy as np

        self._buffer = np.empty((capacity, channels), dtype=np.int16)
        self.frames = 0

    @property
    def full(self) -> bool:
        return self.frames >= len(self._buffer)

    def add(self, block: Block) -> bool:
        """Append ``block``; False (and nothing done) when it does not fit."""
        end = self.frames + len(block)
        if end > len(self._buffer):
            return False
        self._buffer[self.frames:end] = block
        self.frames = end
        return True

    def take(self) -> Block:
        """The gathered frames (a view, valid until the next add), emptying the batch."""
        frames, self.frames = self.frames, 0
        return self._buffer[:frames]


class AvCodecEncoder(AvEncoder):
    """An encoder whose codec is one of PyAV's (FFmpeg's aac, libopus, libopencore_amrnb)."""

    #: The FFmpeg encoder's name.
    av_codec: ClassVar[str]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return av_unavailable_reason(cls.av_codec)

    def _codec_options(self) -> dict[str, str]:
        return {}

    def _codec_bit_rate(self) -> int:
        return self.bit_rate

    def _add_stream(self, container: Any) -> Any:
        self._layout = "stereo" if self.channels == 2 else "mono"
        self._frame_type = av_module().AudioFrame
        stream = container.add_stream(self.av_codec, rate=self.rate, layout=self._layout,
                                      options=self._codec_options())
        stream.bit_rate = self._codec_bit_rate()
        return stream

    def _encode(self, block: Block) -> Iterable[Any]:
        # One frame per block: PyAV converts and cuts it into codec frames in C.
        frame = self._frame_type.from_ndarray(block.reshape(1, -1), format="s16", layout=self._layout)
        frame.sample_rate = self.rate
        frame.time_base = self.time_base
        frame.pts = self._encoded
        return self._stream.encode(frame)

    def _drain(self) -> Iterable[Any]:
        return self._stream.encode(None)

    @property
    def _frame_size(self) -> int:
        return int(self._stream.codec_context.frame_size)


class Codec(Protocol):
    """What :class:`UnitEncoder` needs of a codec state besides its own encoding calls."""

    def close(self) -> None: ...


CodecT = TypeVar("CodecT", bound=Codec)


class UnitEncoder(AvEncoder, Generic[CodecT]):
    """An encoder whose codec lives outside PyAV: it yields raw units that PyAV only muxes."""

    _codec: CodecT | None = None

    @abstractmethod
    def _open_codec(self) -> CodecT:
        """A fresh codec state (a seek starts one; the old one is closed first)."""

    @abstractmethod
    def _stream_template(self) -> tuple[Any, Any]:
        """A PyAV stream whose codec parameters the file's stream copies, and its container."""

    @abstractmethod
    def _encode_units(self, block: Block) -> list[bytes]:
        """The units completed by ``block``."""

    @abstractmethod
    def _drain_units(self) -> list[bytes]:
        """The units the codec still holds."""

    #: D of the codec state.
    _codec_delay: int = 0
    #: The codec's AudioSpecificConfig or similar, for the container; None where none.
    _extradata: bytes | None = None

    @property
    def _state(self) -> CodecT:
        assert self._codec is not None, "the codec is open while the file is"
        return self._codec

    def _add_stream(self, container: Any) -> Any:
        self._release()
        self._codec = self._open_codec()
        template, owner = self._stream_template()
        try:
            stream = container.add_stream_from_template(template, opaque=True)
        finally:
            owner.close()
        stream.time_base = self.time_base
        if self._extradata is not None:
            stream.codec_context.extradata = self._extradata
        return stream

    def _encode(self, block: Block) -> Iterable[Any]:
        return self._packets_for(self._encode_units(block))

    def _drain(self) -> Iterable[Any]:
        return self._packets_for(self._drain_units())

    def _release(self) -> None:
        codec, self._codec = self._codec, None
        if codec is not None:
            codec.close()

    def _packets_for(self, units: list[bytes]) -> list[Any]:
        packet_type = av_module().Packet
        frame_size, first = self._frame_size, self._packets * self._frame_size - self._codec_delay
        packets = []
        for i, unit in enumerate(units):
            packet = packet_type(unit)
            packet.stream = self._stream
            packet.time_base = self.time_base
            packet.pts = packet.dts = first + i * frame_size
            packet.duration = frame_size
            packets.append(packet)
        return packets
