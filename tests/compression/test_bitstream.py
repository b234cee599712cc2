"""The .drc bitstream (SPEC §3): header and symbols round-trip in every format, the header layout and size of formats
2 and 3, and every malformed file is a CodecError."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import pytest

from dirac.compression import CodecError, Header, StepSymbols, header_bytes, pack_file, read_header, unpack_file
from dirac.compression.bitstream import HEADER, MAGIC_2, MAGIC_3, decode_payload, encode_payload

FINGERPRINT = 0xDEADBEEF
HEAD = Header(3, 8, 12, FINGERPRINT, 2.0, 0.015625, 32, 8, 2, 16, 0, 0, 42, 3, version=2)
HEAD_3 = replace(HEAD, version=3)
HEAD_1 = replace(HEAD, block_log2=12, version=1)
STEPS = [StepSymbols(1, 0, (0,)), StepSymbols(1, 5, (17,)), StepSymbols(4, 7, (3, 1023, 0, 9)),
         StepSymbols(2, 6, (1, 2))]


@pytest.mark.parametrize("head", [HEAD_3, HEAD, HEAD_1], ids=["format3", "format2", "format1"])
def test_symbols_and_header_round_trip(head):
    payload = encode_payload(STEPS, 1024, 8, 288)
    data = pack_file(head, payload)
    header, read = unpack_file(data, FINGERPRINT)
    assert header == head and read == payload and len(data) == header_bytes(data) + len(payload)
    assert decode_payload(read, len(STEPS), 1024, 8, 288) == STEPS
    assert decode_payload(read, 2, 1024, 8, 288) == STEPS[:2]  # a prefix of the steps is a prefix of the stream


def test_the_format_1_header_is_little_endian_with_magic_and_version():
    data = pack_file(HEAD_1, encode_payload(STEPS, 1024, 8, 288))
    assert data[:4] == b"DRC\x01" and header_bytes(data) == HEADER.size == 38
    assert struct.unpack_from("<BHH", data, 4) == (3, 8, 12)
    assert struct.unpack_from("<I", data, 9)[0] == FINGERPRINT


@pytest.mark.parametrize(("head", "magic"), [(HEAD, MAGIC_2), (HEAD_3, MAGIC_3)], ids=["format2", "format3"])
def test_the_format_2_and_3_header_layout_and_size(head, magic):
    """1 magic byte, the 40-bit word, varints C, H, W (not square), seed, two float16 sigmas, the 16-bit fingerprint,
    the CRC-32 over the full fingerprint, header and payload: 20 bytes here, 19 for a square image."""
    payload = encode_payload(STEPS, 1024, 8, 288)
    data = pack_file(head, payload)
    assert data[0] == magic and header_bytes(data) == 20
    word = int.from_bytes(data[1:6], "little")
    fields = [(0, 1), (1, 1), (2, 5), (7, 4), (11, 5), (16, 10), (26, 10), (36, 4)]
    assert [word >> shift & (2**bits - 1) for shift, bits in fields] == [0, 0, 8, 2, 16, 31, 2, 0]
    assert data[6:10] == bytes([3, 8, 12, 42])
    assert struct.unpack_from("<eeH", data, 10) == (2.0, 0.015625, FINGERPRINT & 0xFFFF)
    crc = zlib.crc32(payload, zlib.crc32(data[:16], zlib.crc32(struct.pack("<I", FINGERPRINT))))
    assert struct.unpack_from("<I", data, 16)[0] == crc
    square = pack_file(replace(head, width=8, seed=300), payload)  # the width is left out, seed 300 takes 2 bytes
    assert header_bytes(square) == 20 and read_header(square)[0] == replace(head, width=8, seed=300, fingerprint=0xBEEF)


def test_fields_that_do_not_fit_format_2_are_refused_when_writing():
    for field, value in [("levels", 1025), ("steps", 0), ("chunk_kl", 32), ("pad", 16), ("channels", 256),
                         ("height", 2**16), ("seed", 2**32), ("sigma_max", 1e6)]:
        with pytest.raises(CodecError, match="does not fit|float16"):
            pack_file(replace(HEAD, **{field: value}), b"")


@pytest.mark.parametrize("head", [HEAD_3, HEAD, HEAD_1], ids=["format3", "format2", "format1"])
def test_malformed_files_are_codec_errors(head):
    data = pack_file(head, encode_payload(STEPS, 1024, 8, 288))
    size = header_bytes(data)
    cases = {b"": "not a .drc", b"PNG\x00" + data[4:]: "not a .drc", b"DRC\x02" + data[4:]: "version 2",
             b"DRC": "truncated", data[:5]: "truncated", data[: size - 1]: "truncated", data[:-1]: "truncated",
             data[:-4]: "checksum",
             data[:-1] + bytes([data[-1] ^ 1]): "checksum",
             data[:12] + bytes([data[12] ^ 0x10]) + data[13:]: "checksum"}
    for corrupt, message in cases.items():
        with pytest.raises(CodecError, match=message):
            unpack_file(corrupt, FINGERPRINT)
    with pytest.raises(CodecError, match="another model"):
        unpack_file(data, FINGERPRINT ^ 1)


def test_format_2_refuses_another_model_that_shares_the_16_bit_fingerprint():
    """The header keeps 16 bits; the CRC covers all 32, so a model agreeing in the low 16 bits is still refused."""
    data = pack_file(HEAD, encode_payload(STEPS, 1024, 8, 288))
    with pytest.raises(CodecError, match="checksum mismatch .*another model"):
        unpack_file(data, FINGERPRINT ^ 0x10000)


def test_format_2_header_fields_are_bounded_while_parsing():
    data = pack_file(HEAD, b"")
    reserved = data[:5] + bytes([data[5] | 0x80]) + data[6:]
    endless = data[:6] + b"\xff" * 8  # a varint that never ends
    for corrupt, message in [(reserved, "reserved bits"), (endless, "channels is above 255"),
                             (data[:6] + b"\x83", "ends inside its channels")]:
        with pytest.raises(CodecError, match=message):
            read_header(corrupt)


def test_a_payload_no_encoder_could_write_is_a_codec_error():
    """constriction raises an AssertionError on data invalid for its model (found by the 10,000-file fuzz)."""
    with pytest.raises(CodecError, match="corrupt .drc payload: Tried to decode"):
        decode_payload(bytes.fromhex("9d1037f4"), 3, 256, 6, 192)
