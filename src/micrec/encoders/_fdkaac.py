"""A ctypes binding of the Fraunhofer FDK AAC encoder (Debian non-free ``libfdk-aac2``).

Only what micrec needs: open an encoder for one audio object type, feed it interleaved int16,
get raw access units back (no transport framing: the container muxer frames them), and the
AudioSpecificConfig that goes into the container as the stream's extradata.
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING

from ..errors import EncoderError
from ._clib import open_library

if TYPE_CHECKING:
    from .base import Block

__all__ = ["AOT_AAC_LC", "AOT_ER_AAC_ELD", "AOT_SBR", "FdkAacEncoder", "fdk_unavailable_reason"]

INSTALL_HINT = "apt-get install libfdk-aac2 (Debian non-free)"
_SONAME = "libfdk-aac.so.2"

AOT_AAC_LC = 2
AOT_SBR = 5  # HE-AAC (AAC-LC core + spectral band replication)
AOT_ER_AAC_ELD = 39

# aacenc_lib.h: AACENC_PARAM values.
_AOT = 0x0100
_BITRATE = 0x0101
_SAMPLERATE = 0x0103
_SBR_MODE = 0x0104
_CHANNELMODE = 0x0106
_AFTERBURNER = 0x0200
_TRANSMUX = 0x0300
_SIGNALING_MODE = 0x0302
# aacenc_lib.h: buffer identifiers and return codes.
_IN_AUDIO_DATA = 0
_OUT_BITSTREAM_DATA = 3
_AACENC_OK = 0
_AACENC_ENCODE_EOF = 0x80
_TT_MP4_RAW = 0
#: Explicit hierarchical signalling: the ASC names HE-AAC itself (what MP4 readers expect).
SIGNALING_EXPLICIT = 2
#: Implicit signalling: an AAC-LC ASC at the core rate (all ADTS can carry).
SIGNALING_IMPLICIT = 0


class _BufDesc(ctypes.Structure):
    _fields_ = [("numBufs", ctypes.c_int), ("bufs", ctypes.POINTER(ctypes.c_void_p)),
                ("bufferIdentifiers", ctypes.POINTER(ctypes.c_int)),
                ("bufSizes", ctypes.POINTER(ctypes.c_int)), ("bufElSizes", ctypes.POINTER(ctypes.c_int))]


class _InArgs(ctypes.Structure):
    _fields_ = [("numInSamples", ctypes.c_int), ("numAncBytes", ctypes.c_int)]


class _OutArgs(ctypes.Structure):
    _fields_ = [("numOutBytes", ctypes.c_int), ("numInSamples", ctypes.c_int),
                ("numAncBytes", ctypes.c_int), ("bitResState", ctypes.c_int)]


class _InfoStruct(ctypes.Structure):
    _fields_ = [("maxOutBufBytes", ctypes.c_uint), ("maxAncBytes", ctypes.c_uint),
                ("inBufFillLevel", ctypes.c_uint), ("inputChannels", ctypes.c_uint),
                ("frameLength", ctypes.c_uint), ("nDelay", ctypes.c_uint), ("nDelayCore", ctypes.c_uint),
                ("confBuf", ctypes.c_ubyte * 64), ("confSize", ctypes.c_uint)]


@functools.cache
def _library() -> ctypes.CDLL | None:
    lib = open_library("fdk-aac", _SONAME)
    if lib is None:
        return None
    handle_p = ctypes.POINTER(ctypes.c_void_p)
    lib.aacEncOpen.argtypes = [handle_p, ctypes.c_uint, ctypes.c_uint]
    lib.aacEncClose.argtypes = [handle_p]
    lib.aacEncoder_SetParam.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint]
    lib.aacEncEncode.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BufDesc), ctypes.POINTER(_BufDesc),
                                 ctypes.POINTER(_InArgs), ctypes.POINTER(_OutArgs)]
    lib.aacEncInfo.argtypes = [ctypes.c_void_p, ctypes.POINTER(_InfoStruct)]
    for func in (lib.aacEncOpen, lib.aacEncClose, lib.aacEncoder_SetParam, lib.aacEncEncode, lib.aacEncInfo):
        func.restype = ctypes.c_int
    return lib


def fdk_unavailable_reason() -> str | None:
    """None when libfdk-aac can be loaded, else what to install."""
    if _library() is None:
        return f"the FDK AAC library ({_SONAME}) is not installed: {INSTALL_HINT}"
    return None


class _Buffer:
    """One aacEncEncode buffer descriptor, pointing at memory that the caller keeps alive."""

    def __init__(self, identifier: int, element_size: int) -> None:
        self._pointer = ctypes.c_void_p()
        self._identifier = ctypes.c_int(identifier)
        self._size = ctypes.c_int(0)
        self._element_size = ctypes.c_int(element_size)
        self.desc = _BufDesc(1, ctypes.pointer(self._pointer), ctypes.pointer(self._identifier),
                             ctypes.pointer(self._size), ctypes.pointer(self._element_size))

    def point_at(self, address: int, size: int) -> None:
        self._pointer.value = address
        self._size.value = size


class FdkAacEncoder:
    """One FDK AAC encoder instance producing raw access units.

    Parameters
    ----------
    aot : int
        Audio object type: :data:`AOT_SBR` (HE-AAC) or :data:`AOT_ER_AAC_ELD`.
    rate, channels, bit_rate : int
        The input's rate and channel count, and the target bit rate in bits/s.
    signaling : int
        :data:`SIGNALING_EXPLICIT` for MP4, :data:`SIGNALING_IMPLICIT` for ADTS.

    Raises
    ------
    EncoderError
        The library refuses the configuration (the message names it).
    """

    def __init__(self, aot: int, rate: int, channels: int, bit_rate: int,
                 signaling: int = SIGNALING_EXPLICIT) -> None:
        lib = _library()
        if lib is None:
            raise EncoderError(f"cannot load {_SONAME}: {INSTALL_HINT}", value=_SONAME)
        self._lib = lib
        self._handle = ctypes.c_void_p()
        self.channels = channels
        self._check(lib.aacEncOpen(ctypes.byref(self._handle), 0, channels), "aacEncOpen")
        try:
            self._configure(aot, rate, channels, bit_rate, signaling)
        except BaseException:
            self.close()
            raise
        info = _InfoStruct()
        self._check(lib.aacEncInfo(self._handle, ctypes.byref(info)), "aacEncInfo")
        #: Samples per channel in one access unit.
        self.frame_length = int(info.frameLength)
        #: Encoder delay in samples per channel (what a decoder's output lags the input by).
        self.delay = int(info.nDelay)
        #: The AudioSpecificConfig, for the container.
        self.config = bytes(info.confBuf[: info.confSize])
        self._out = ctypes.create_string_buffer(max(int(info.maxOutBufBytes), 8192))
        self._in_buf = _Buffer(_IN_AUDIO_DATA, 2)
        self._out_buf = _Buffer(_OUT_BITSTREAM_DATA, 1)
        self._out_buf.point_at(ctypes.addressof(self._out), len(self._out))
        self._in_args = _InArgs()
        self._out_args = _OutArgs()

    def _configure(self, aot: int, rate: int, channels: int, bit_rate: int, signaling: int) -> None:
        params = [(_AOT, aot), (_SAMPLERATE, rate), (_CHANNELMODE, channels), (_BITRATE, bit_rate),
                  (_TRANSMUX, _TT_MP4_RAW), (_SIGNALING_MODE, signaling), (_AFTERBURNER, 1)]
        if aot == AOT_ER_AAC_ELD:
            # ELD with SBR is a different decoder path that many players (and ffmpeg) lack.
            params.append((_SBR_MODE, 0))
        for param, value in params:
            self._check(self._lib.aacEncoder_SetParam(self._handle, param, value),
                        f"setting parameter 0x{param:04x} to {value}")
        code = self._lib.aacEncEncode(self._handle, None, None, None, None)
        if code != _AACENC_OK:
            raise EncoderError(
                f"libfdk-aac refuses AOT {aot} at {rate} Hz, {channels} channel(s), {bit_rate} bit/s "
                f"(error 0x{code:02x}); pick another sample_rate or bit_rate", value=rate, name="sample_rate")

    def encode(self, block: Block) -> list[bytes]:
        """Encode interleaved int16 ``block``; returns the access units completed by it."""
        units: list[bytes] = []
        data = block.reshape(-1)
        address, remaining = data.ctypes.data, data.size
        while remaining > 0:
            unit, consumed = self._call(address, remaining)
            if unit:
                units.append(unit)
            address += consumed * 2
            remaining -= consumed
            if consumed == 0 and not unit:
                break
        return units

    def drain(self) -> list[bytes]:
        """Flush the encoder: the access units still held for its look-ahead."""
        units: list[bytes] = []
        while True:
            unit, _ = self._call(0, -1)
            if unit is None:
                return units
            if unit:
                units.append(unit)

    def _call(self, address: int, samples: int) -> tuple[bytes | None, int]:
        self._in_args.numInSamples = samples
        self._in_buf.point_at(address, max(samples, 0) * 2)
        code = self._lib.aacEncEncode(self._handle, ctypes.byref(self._in_buf.desc),
                                      ctypes.byref(self._out_buf.desc), ctypes.byref(self._in_args),
                                      ctypes.byref(self._out_args))
        if code == _AACENC_ENCODE_EOF:
            return None, 0
        self._check(code, "aacEncEncode")
        size = self._out_args.numOutBytes
        return ctypes.string_at(self._out, size), self._out_args.numInSamples

    def close(self) -> None:
        if self._handle.value:
            self._lib.aacEncClose(ctypes.byref(self._handle))

    @staticmethod
    def _check(code: int, what: str) -> None:
        if code != _AACENC_OK:
            raise EncoderError(f"libfdk-aac failed in {what} (error 0x{code:02x})", value=code)
