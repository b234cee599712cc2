"""The .drc bitstream (SPEC §3): header and symbols round-trip, and every malformed file is a CodecError."""

from __future__ import annotations

import struct

import pytest

from dirac.compression import CodecError, Header, StepSymbols, pack_file, unpack_file
from dirac.compression.bitstream import HEADER, decode_payload, encode_payload

HEAD = Header(3, 8, 12, 0xDEADBEEF, 2.0, 0.015625, 32, 8, 2, 16, 12, 0, 42, 3)
STEPS = [StepSymbols(1, 0, (0,)), StepSymbols(1, 5, (17,)), StepSymbols(4, 7, (3, 1023, 0, 9)), StepSymbols(2, 6, (1, 2))]


def test_symbols_and_header_round_trip():
    payload = encode_payload(STEPS, 1024, 8, 288)
    data = pack_file(HEAD, payload)
    header, read = unpack_file(data)
    assert header == HEAD and read == payload and len(data) == HEADER.size + len(payload)
    assert decode_payload(read, len(STEPS), 1024, 8, 288) == STEPS
    assert decode_payload(read, 2, 1024, 8, 288) == STEPS[:2]  # a prefix of the steps is a prefix of the stream


def test_the_header_is_little_endian_with_magic_and_version():
    data = pack_file(HEAD, encode_payload(STEPS, 1024, 8, 288))
    assert data[:4] == b"DRC\x01"
    assert struct.unpack_from("<BHH", data, 4) == (3, 8, 12)
    assert struct.unpack_from("<I", data, 9)[0] == 0xDEADBEEF


def test_malformed_files_are_codec_errors():
    data = pack_file(HEAD, encode_payload(STEPS, 1024, 8, 288))
    version = bytearray(data)
    version[3] = 2
    cases = {b"": "not a .drc", b"PNG\x00" + data[4:]: "not a .drc", data[:20]: "truncated", data[:-1]: "truncated",
             data[:-4]: "checksum", bytes(version): "version 2", data[:-1] + bytes([data[-1] ^ 1]): "checksum",
             data[:12] + bytes([data[12] ^ 0x10]) + data[13:]: "checksum"}
    for corrupt, message in cases.items():
        with pytest.raises(CodecError, match=message):
            unpack_file(corrupt)
