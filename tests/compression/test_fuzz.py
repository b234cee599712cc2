"""Corrupted .drc files (SPEC §3 bad input): truncations, bit flips, random headers and appended bytes each raise the
codec's own CodecError within a time bound (the CRC-32 catches payload flips); forged files with a recomputed
checksum either decode or raise a CodecError, never another exception; in both formats. 240 files per format here,
10,000 under `slow`."""

from __future__ import annotations

import random
import time
from dataclasses import fields, replace

import pytest
import torch

from dirac.compression import Chunking, Codec, CodecError, Ladder, header_bytes, pack_file, unpack_file
from tests.compression.conftest import gaussian_source

SECONDS_PER_FILE = 2.0


@pytest.fixture(scope="module", params=[3, 2, 1], ids=["format3", "format2", "format1"])
def made(request):
    """A tiny model (the exact 3x8x8 Gaussian denoiser), its codec and one 6-step file in each format."""
    denoiser, x0 = gaussian_source((3, 8, 8))
    codec = Codec(denoiser, Ladder(1.0, 0.05, 6), Chunking(6, 2), unit_range=False, channels=3, size_multiple=8,
                  version=request.param)
    return codec, codec.encode(x0).data


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """One corruption of `data`: a truncation, 1-8 flipped bits, a random header,
    random bytes appended or a random file."""
    kind = rng.randrange(5)
    if kind == 0:
        return data[: rng.randrange(len(data))]
    if kind == 1:
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(flipped) if bytes(flipped) != data else data[:-1]
    if kind == 2:
        size = header_bytes(data)
        return data[:1] + rng.randbytes(size - 1) + data[size:]
    if kind == 3:
        return data + rng.randbytes(rng.randint(1, 16))
    return rng.randbytes(rng.randrange(80))


def forge(codec: Codec, data: bytes, rng: random.Random) -> bytes:
    """Random header fields or payload bytes with the checksum recomputed, as a buggy writer would make them."""
    header, payload = unpack_file(data, codec.fingerprint)
    if rng.random() < 0.5:
        field = rng.choice([f.name for f in fields(header) if f.name not in ("fingerprint", "version")])
        value = rng.choice([0, 1, 2, 7, 255, 65535, rng.getrandbits(16)])
        try:
            return pack_file(replace(header, **{field: value}), payload)
        except CodecError:  # a value the format cannot hold: no writer makes such a file
            pass
    return pack_file(header, rng.randbytes(4 * rng.randint(1, len(payload) // 4 + 2)))


def run_fuzz(codec: Codec, data: bytes, count: int, seed: int) -> None:
    rng = random.Random(seed)
    for trial in range(count):
        bad = corrupt(data, rng)
        start = time.perf_counter()
        with pytest.raises(CodecError):
            codec.decode_noisy(bad)
        assert time.perf_counter() - start < SECONDS_PER_FILE, (trial, bad)
    for trial in range(count // 5):
        forged = forge(codec, data, rng)
        start = time.perf_counter()
        try:
            codec.decode_noisy(forged)
        except CodecError:
            pass
        assert time.perf_counter() - start < SECONDS_PER_FILE, (trial, forged)


def test_the_intact_file_decodes_to_the_encoders_x_s(made):
    """The untouched file (the baseline of the corruptions below) rebuilds the encoder's x_s bit for bit."""
    codec, data = made
    encoding = codec.encode(gaussian_source((3, 8, 8))[1])
    x_s, sigma = codec.decode_noisy(data)
    assert encoding.data == data and torch.equal(x_s, encoding.x_s) and sigma == encoding.sigma


def test_corrupted_files_raise_codec_errors(made):
    run_fuzz(*made, count=200, seed=0)


@pytest.mark.slow
def test_ten_thousand_corrupted_files_raise_codec_errors(made):
    run_fuzz(*made, count=10_000, seed=1)
