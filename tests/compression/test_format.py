""".drc formats (issue 34): the encoder writes format 2 (a 19-byte header at 32 px RGB instead of 38, every chunk of
a step scored by one generation per block of candidates); format-1 files, written here by the format-1 code path
that every file before format 2 came from, still decode bit for bit through a default codec."""

from __future__ import annotations

import hashlib

import pytest
import torch

from dirac.compression import Chunking, Codec, Ladder, header_bytes, pack_file, read_header
from dirac.compression.pfr import (block_span, chunk_of_dims, segment_sums, step_arrival_log_times, step_block,
                                   step_block_size, step_candidates, step_select)
from tests.compression.conftest import gaussian_source

# sha256 (first 16 hex digits) of the format-1 files commit 5aba2cf's encoder wrote with these settings (3x8x8
# N(0.5, 0.02 I) sample, ladder 1 -> 0.05 in 6 levels, seed 7): the format-1 writer kept here is that code path.
FORMAT_1_FILES = {Chunking(6, 2): "85b17240b4868807", Chunking(6, 2, block_log2=4, aim=False): "0771e2637fdc0d1f"}


@pytest.mark.parametrize("chunking", list(FORMAT_1_FILES), ids=["aimed", "blocks_of_16"])
def test_a_format_1_file_decodes_bit_for_bit(chunking):
    denoiser, x0 = gaussian_source((3, 8, 8))
    writer = Codec(denoiser, Ladder(1.0, 0.05, 6), chunking, seed=7, unit_range=False, version=1)
    encoding = writer.encode(x0)
    assert hashlib.sha256(encoding.data).hexdigest()[:16] == FORMAT_1_FILES[chunking]
    assert encoding.data[:4] == b"DRC\x01" and header_bytes(encoding.data) == 38
    reader = Codec(denoiser, unit_range=False)  # the default: writes format 2, reads both
    for steps in (2, 6):
        x_s, sigma = reader.decode_noisy(encoding.data, steps=steps)
        expected = encoding.x_s if steps == 6 else writer.encode(x0, steps=steps).x_s
        assert torch.equal(x_s, expected) and sigma == pytest.approx(writer.ladder.sigmas()[steps - 1])


def test_the_encoder_writes_format_2_with_a_19_byte_header():
    """3x32x32, seed 0: 1 magic + 5 packed + 3 varints (C, H, seed; square) + 4 float16 + 2 fingerprint + 4 CRC."""
    denoiser, x0 = gaussian_source((3, 32, 32))
    codec = Codec(denoiser, Ladder(1.0, 0.05, 4), unit_range=False)
    encoding = codec.encode(x0)
    assert encoding.data[0] == 0xD2 and header_bytes(encoding.data) == 19
    header, _ = read_header(encoding.data)
    assert (header.version, header.sigma_max, header.sigma_min) == (2, 1.0, 0.04998779296875)  # float16 0.05
    assert torch.equal(codec.decode_noisy(encoding.data)[0], encoding.x_s)
    large = pack_file(header.__class__(**{**vars(header), "height": 256, "width": 256}), b"")
    assert header_bytes(large) == 20  # 256 takes a 2-byte varint


def test_format_2_scores_every_chunk_as_pfr_defines_it():
    """The batched search picks, per chunk, argmin_n log T_{c,n} - X_{c,n} . mu_c over the whole step matrix (built
    here block by block) and the decoder regenerates the chosen candidates bit for bit; 37 chunks of 1000 dims."""
    dims, chunks, count = 1000, 37, 2**10
    mu = torch.randn(dims, generator=torch.Generator().manual_seed(0))
    selection = step_select(mu, chunks, 3, 5, count, aim=False)
    rows = step_block_size(count, dims)
    matrix = torch.cat([step_block(3, 5, block, stop - start, dims) for block in range(count // rows)
                        for start, stop in [block_span(block, rows, count)]], 1)
    scores = step_arrival_log_times(3, 5, chunks, count, "cpu") - segment_sums(matrix * mu[:, None], chunks)
    assert selection.indices == scores.argmin(1).tolist()
    owner = chunk_of_dims(dims, chunks)
    assert torch.equal(selection.sample, matrix[torch.arange(dims), scores.argmin(1)[owner]])
    assert torch.equal(step_candidates(3, 5, selection.indices, count, dims), selection.sample)
