"""The hand-written FLAC frame's CRC-16: the chunked one agrees with the byte-at-a-time one."""

from __future__ import annotations

import random

import pytest

from micrec.encoders._flacframe import _crc16, _crc16_fast


@pytest.mark.parametrize("length", [0, 1, 2, 3, 255, 256, 257, 511, 4099, 16390])
def test_the_chunked_crc16_is_the_crc16(length: int) -> None:
    data = random.Random(length).randbytes(length)
    assert _crc16_fast(data) == _crc16(data)


def test_the_crc16_is_flacs() -> None:
    # CRC-16/BUYPASS (polynomial 0x8005, no reflection, zero start): the check value of "123456789".
    assert _crc16_fast(b"123456789") == _crc16(b"123456789") == 0xFEE8
