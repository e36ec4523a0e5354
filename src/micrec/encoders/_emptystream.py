"""What makes an Ogg Opus or WebM file that holds no audio yet readable.

FFmpeg (5.1 as in Debian 12, and the 8.x in PyAV's wheels) ends reading an Ogg stream's headers
at its first non-header packet, and a Matroska file's at its first Cluster: a file with the
headers alone is refused ("End of file"), and that is what FFmpeg's muxers leave until the first
page or cluster of audio is written out. So right after the muxer's header micrec writes what
stands for "no audio yet", at the offset where the muxer's first write goes (it replaces it):

- Ogg Opus: one page with the end-of-stream flag and a single packet that asks the decoder for
  packet loss concealment (a TOC byte and a zero-byte frame, RFC 7845 section 4.1 and RFC 6716
  section 3.2.1), with a granule position equal to the pre-skip. RFC 7845 section 4.5 admits
  that first page: it is end-of-stream and its granule position is not below the pre-skip, so
  the decoder keeps ``granule - 0 = pre-skip`` samples of the packet (end trimming), all of
  which the pre-skip discards: zero samples. FFmpeg and libsndfile read it as an empty stream.
  The muxer's first page of audio is longer than this one (its 27-byte page header, a lacing
  value and at least a two-byte packet), so nothing of it survives that write.
- WebM: an empty Cluster (a timestamp, no block), which the muxer's first cluster overwrites.
  A take that ends with no audio keeps it; :func:`close_empty_matroska` moves it into the
  Segment whose size the muxer wrote at the end.
"""

from __future__ import annotations

import functools
import os
import struct

__all__ = ["close_empty_matroska", "matroska_empty_cluster", "ogg_opus_empty_page"]

_OGG_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, crc, segments
_OGG_EOS = 0x04
#: TOC of a code-0 packet, CELT fullband, 20 ms (configuration 31); | 0x04 for stereo.
_PLC_TOC = 31 << 3
_STEREO = 0x04


@functools.cache
def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04c11db7, not reflected, initial 0)."""
    table, crc = _ogg_crc_table(), 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def _ogg_page(*, flags: int, granule: int, serial: int, sequence: int, packet: bytes) -> bytes:
    assert len(packet) < 255, "one lacing value"
    page = _OGG_HEADER.pack(b"OggS", 0, flags, granule, serial, sequence, 0, 1) + bytes([len(packet)]) + packet
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def ogg_opus_empty_page(header: bytes) -> bytes:
    """The page that makes ``header`` (OpusHead and OpusTags pages) an empty, finished stream.

    Raises ValueError when ``header`` does not start with an Ogg page holding OpusHead.
    """
    capture, _, _, _, serial, _, _, segments = _OGG_HEADER.unpack_from(header)
    body = _OGG_HEADER.size + segments
    opus_head = header[body:body + 19]
    if capture != b"OggS" or not opus_head.startswith(b"OpusHead") or len(opus_head) < 19:
        raise ValueError("not an Ogg Opus header")
    channels, pre_skip = opus_head[9], int.from_bytes(opus_head[10:12], "little")
    toc = _PLC_TOC | (_STEREO if channels == 2 else 0)
    # Pages 0 and 1 are the two headers (FFmpeg's muxer puts each on a page of its own).
    return _ogg_page(flags=_OGG_EOS, granule=pre_skip, serial=serial, sequence=2, packet=bytes([toc]))


_CLUSTER = bytes.fromhex("1f43b675")
_SEGMENT = bytes.fromhex("18538067")
_EBML = bytes.fromhex("1a45dfa3")
#: Timestamp 0 (element E7, one byte).
_CLUSTER_TIMESTAMP = bytes.fromhex("e78100")


def matroska_empty_cluster() -> bytes:
    """A Cluster with a timestamp and no block."""
    return _CLUSTER + bytes([0x80 | len(_CLUSTER_TIMESTAMP)]) + _CLUSTER_TIMESTAMP


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    """The EBML variable-size integer at ``pos``: its value (marker bit removed) and length."""
    first = data[pos]
    if first == 0:
        raise ValueError(f"invalid EBML size at {pos}")
    length = 9 - first.bit_length()
    value = first & (0xFF >> length)
    for byte in data[pos + 1:pos + length]:
        value = value << 8 | byte
    return value, length


def close_empty_matroska(path: str | os.PathLike[str]) -> None:
    """Put an empty Cluster at the end of the finished Segment of a file that has no cluster.

    The muxer's trailer sized the Segment to what it wrote (the headers), which leaves the
    placeholder cluster after it, where readers do not look (FFmpeg then resyncs and finds a
    second, bogus stream). Raises ValueError when the file is not laid out as FFmpeg writes it.
    """
    cluster = matroska_empty_cluster()
    with open(path, "r+b") as f:
        data = f.read()
        if not data.startswith(_EBML):
            raise ValueError(f"{path}: not a Matroska file")
        size, length = _vint(data, 4)
        segment = 4 + length + size
        if data[segment:segment + 4] != _SEGMENT:
            raise ValueError(f"{path}: no Segment after the EBML header")
        size, length = _vint(data, segment + 4)
        start = segment + 4 + length
        if size == (1 << 7 * length) - 1:  # unknown size: the segment runs to the end of the file
            if not data.endswith(cluster):
                f.seek(0, os.SEEK_END)
                f.write(cluster)
            return
        f.seek(start + size)
        f.write(cluster)
        f.truncate()
        # The same number of bytes as the muxer used: a size field that is 1 then 7 bytes.
        f.seek(segment + 4)
        f.write((size + len(cluster) | 1 << 7 * length).to_bytes(length, "big"))
