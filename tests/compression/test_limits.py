"""The .drc limits (SPEC §3 bad input): a forged header of either format cannot make the decoder allocate a huge
candidate block, run one denoiser call per claimed step beyond the ladder limit or decode to non-finite pixels; each
is a CodecError raised at once (or, where format 2 cannot express the attack, a file decoded within the time bound),
and the encoder never writes a file outside the same limits."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from dirac.compression import Chunking, Codec, CodecError, Header, Ladder, StepSymbols
from dirac.compression.bitstream import (MAX_BLOCK_FLOATS, MAX_FILE_FLOATS, MAX_LEVELS, SIGMA_RANGE, block_floats,
                                         check_blocks, min_chunks)
from dirac.compression.pfr import step_block_size
from tests.compression.conftest import flat_payload, forge_file, gaussian_source

SHAPE, DIMS = (3, 8, 8), 192
SECONDS = 1.0  # a refused file is refused before any candidate is drawn or the denoiser is called


@pytest.fixture(scope="module", params=[3, 2, 1], ids=["format3", "format2", "format1"])
def made(request):
    """The exact 3x8x8 Gaussian denoiser's codec and one real 4-step file of it, in each format."""
    denoiser, x0 = gaussian_source(SHAPE)
    codec = Codec(denoiser, Ladder(1.0, 0.05, 4), Chunking(6, 2), unit_range=False, channels=3, size_multiple=8,
                  version=request.param)
    return codec, codec.encode(x0).data


def header(dims: int, block: int, version: int = 1, candidates_log2: int = 20) -> Header:
    """A header of 1 x 1 x `dims` with 2^candidates_log2 candidates in blocks of `block` (format 1's)."""
    return Header(1, 1, dims, 0, 1.0, 0.05, 4, candidates_log2, 0, 20, block.bit_length() - 1, 0, 0, 1, version)


def refused(codec: Codec, data: bytes, message: str) -> None:
    """Assert that decoding `data` raises a CodecError matching `message` within SECONDS."""
    start = time.perf_counter()
    with pytest.raises(CodecError, match=message):
        codec.decode(data, ode_steps=2)
    assert time.perf_counter() - start < SECONDS


def test_a_header_asking_for_a_huge_candidate_block_is_refused_before_drawing_it(made):
    """chunk_kl 20, pad 0, block_log2 20: one chunk of 192 dims in blocks of 2^20 candidates would be 2^27.6 floats
    (805 MB; 12 GiB at 3x32x32, the issue's file); refused after the symbols are read, before any candidate. Format 2
    has no block size to forge: its blocks of rows follow from the image (R x dims <= 2^18), so the same K = 2^20
    file decodes at once."""
    codec, data = made
    bomb = forge_file(data, codec.fingerprint, flat_payload(1, 2**20, 20, DIMS), chunk_kl=20, pad=0, max_log2=20,
                      block_log2=20 if codec.version == 1 else 0, steps=1)
    if codec.version == 1:
        assert len(bomb) == 42
        refused(codec, bomb, r"step 0: 1 chunk\(s\) of 192 dimensions in blocks of 1048576 candidates need 201326592")
        return
    start = time.perf_counter()
    codec.decode_noisy(bomb)
    assert time.perf_counter() - start < SECONDS and step_block_size(2**20, DIMS) * DIMS <= 2**18


def test_the_block_limit_is_exactly_the_encoders_floor():
    block = 2**20
    fewest = min_chunks(block, DIMS)
    assert fewest == 3 and block_floats(block, DIMS, fewest) == MAX_BLOCK_FLOATS
    check_blocks([StepSymbols(fewest, 19, (0,) * fewest)], header(DIMS, block))
    with pytest.raises(CodecError, match="above the limit"):
        check_blocks([StepSymbols(fewest - 1, 19, (0, 0))], header(DIMS, block))
    assert min_chunks(1024, 3 * 256 * 256) == 3 and min_chunks(4096, 3 * 32 * 32) == 1  # the configs' settings


@pytest.mark.parametrize("version", [1, 2, 3])
def test_the_candidates_one_file_makes_the_decoder_draw_are_bounded(version):
    """The issue's slow forgery: 1023 steps of blocks of 2^20 candidates over 3x32x32 (hours of drawing), each step
    within the block limit, is refused as a whole (format 2: 1023 steps of as many chunks as rows are drawn; format
    3: 128 chunks of 24 dims, each in its own block of 2^13 pool rows, K x 24 floats a step); the default ladder at
    256 px RGB is within the bound."""
    dims, block = 3 * 32 * 32, 2**20
    chunks = {1: min_chunks(block, dims), 2: dims, 3: 128}[version]
    steps = [StepSymbols(chunks, 19, (0,) * chunks)] * 1023
    with pytest.raises(CodecError, match="candidate values, above the limit"):
        check_blocks(steps, header(dims, block, version))
    assert 32 * 1024 * 3 * 256 * 256 <= MAX_FILE_FLOATS
    check_blocks(steps[: MAX_FILE_FLOATS // (block * dims)], header(dims, block, version))


def test_the_encoder_splits_a_step_into_enough_chunks_and_its_file_decodes():
    """Blocks of 2^20 candidates over 65 dims: the low-KL (~1 bit) first step gets 2 chunks of 33 and 32 dims
    instead of 1, and the file is within the decoder's limits, rebuilt bit for bit."""
    denoiser, x0 = gaussian_source((1, 5, 13))
    codec = Codec(denoiser, Ladder(1.0, 0.5, 2), Chunking(20, 0, 20, 20), unit_range=False, version=1)
    encoding = codec.encode(x0, steps=1)
    assert encoding.kl_bits[0] < 20 and encoding.chunks == [2]
    x_s, _ = codec.decode_noisy(encoding.data)
    assert torch.equal(x_s, encoding.x_s)
    with pytest.raises(CodecError, match="above the limit"):
        codec.pack((1, 5, 13), [StepSymbols(1, 0, (0,))])  # nor does pack write a block the decoder would refuse


def test_a_file_claiming_more_steps_than_the_ladder_limit_is_refused_before_any_denoiser_call(made):
    """65,535 levels and steps, a payload that holds them (the issue's 17,754-byte file): refused at the header (a
    format-2 header cannot even hold them: 10 bits of levels)."""
    codec, data = made
    payload = flat_payload(2**16 - 1, 256, 6, DIMS)
    if codec.version == 1:
        refused(codec, forge_file(data, codec.fingerprint, payload, levels=2**16 - 1, steps=2**16 - 1),
                f"2..{MAX_LEVELS} levels")
    else:
        with pytest.raises(CodecError, match="levels=65535 does not fit"):
            forge_file(data, codec.fingerprint, payload, levels=2**16 - 1, steps=2**16 - 1)
    refused(codec, forge_file(data, codec.fingerprint, payload[:4], levels=MAX_LEVELS, steps=MAX_LEVELS),
            "cannot hold 1024 steps")
    with pytest.raises(CodecError, match=f"2..{MAX_LEVELS} levels"):
        Codec(codec.denoiser, Ladder(1.0, 0.05, MAX_LEVELS + 1))  # nor can the encoder write one


@pytest.mark.parametrize(("sigma_max", "sigma_min"), [(3e38, 0.05), (float("inf"), 0.05), (float("nan"), 0.05),
                                                      (1.0, 1e-30), (1.0, -1.0), (1.0, 2.0)])
def test_sigmas_outside_the_range_are_refused(made, sigma_max, sigma_min):
    codec, data = made
    if codec.version >= 2 and sigma_max == 3e38:  # beyond float16: formats 2, 3 cannot hold it; their largest finite
        sigma_max = 65504.0
    refused(codec, forge_file(data, codec.fingerprint, sigma_max=sigma_max, sigma_min=sigma_min),
            "outside the .drc limits")
    low, high = SIGMA_RANGE
    with pytest.raises(CodecError, match="outside the .drc limits"):
        Codec(codec.denoiser, Ladder(2 * high, 0.05, 4))
    Codec(codec.denoiser, Ladder(high, low, 4))  # the limits themselves are allowed


class NaNDenoiser(nn.Module):
    """A model that fails on every input: D(x, sigma) = NaN."""

    def forward(self, x, sigma):
        return torch.full_like(x, float("nan"))


def test_a_decoded_image_that_is_not_finite_is_a_codec_error():
    codec = Codec(NaNDenoiser(), Ladder(1.0, 0.5, 2), Chunking(6, 2), unit_range=False)
    data = codec.encode(torch.rand(SHAPE), steps=1).data  # the first step needs no denoiser call
    for mmse in (True, False):
        with pytest.raises(CodecError, match=r"decoded (MMSE|rho=1) image is not finite \(192 NaN"):
            codec.decode(data, mmse=mmse, ode_steps=2)
