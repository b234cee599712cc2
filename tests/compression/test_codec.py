"""The progressive RCC codec (SPEC §3): the decoder rebuilds the encoder's x_s bit for bit, a prefix of the steps
decodes to a coarser x, the rate is the file size (bpp targeting), bad input is a CodecError, and on a Gaussian
source the real file size is compared with sum KL and I(X;Y), the MSE with the Gaussian D(R)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dirac.compression import Chunking, Codec, CodecError, Ladder, header_bytes, model_fingerprint
from tests.compression.conftest import gaussian_codec, gaussian_source, tiny_edm

V = 0.02  # the Gaussian source's variance (conftest)


def test_decoder_rebuilds_x_s_bit_for_bit_with_the_gaussian_denoiser():
    codec, x0 = gaussian_codec()
    encoding = codec.encode(x0)
    x_s, sigma = codec.decode_noisy(encoding.data)
    assert torch.equal(x_s, encoding.x_s) and sigma == encoding.sigma == codec.ladder.sigmas()[-1]
    assert len(encoding.kl_bits) == len(encoding.chunks) == codec.ladder.levels


def test_decoder_rebuilds_x_s_bit_for_bit_with_a_network():
    denoiser = tiny_edm()
    codec = Codec(denoiser, Ladder(2.0, 0.1, 5), Chunking(6, 2), seed=3, channels=3, size_multiple=16)
    x0 = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    encoding = codec.encode(x0)
    fresh = Codec(tiny_edm(), channels=3, size_multiple=16)  # same weights, default settings: the file sets them
    x_s, _ = fresh.decode_noisy(encoding.data)
    assert torch.equal(x_s, encoding.x_s)
    for rho in (1.0, 2.0):
        assert fresh.decode(encoding.data, rho=rho, ode_steps=3).shape == (3, 16, 16)
    assert torch.equal(fresh.decode(encoding.data, mmse=True),
                       codec.reconstruct(encoding.x_s, encoding.sigma, mmse=True))


def test_a_prefix_of_the_steps_decodes_to_a_coarser_image():
    codec, x0 = gaussian_codec(levels=10)
    full = codec.encode(x0)
    errors = []
    for steps in (2, 5, 10):
        x_s, sigma = codec.decode_noisy(full.data, steps=steps)
        shorter = codec.encode(x0, steps=steps)
        assert torch.equal(x_s, shorter.x_s) and sigma == shorter.sigma
        assert len(shorter.data) <= len(full.data)
        errors.append(float((x_s - x0).pow(2).mean()))
    assert errors[0] > errors[1] > errors[2]
    with pytest.raises(CodecError, match="holds 10 steps"):
        codec.decode_noisy(full.data, steps=11)


def test_bpp_target_keeps_the_file_within_it_and_the_rate_is_the_file_size():
    codec, x0 = gaussian_codec(levels=12)
    sizes = []
    for bpp in (6.0, 10.0, 20.0):  # the 19-byte header alone is 2.4 bpp at 8x8
        encoding = codec.encode(x0, bpp=bpp)
        assert 8 * len(encoding.data) / 64 <= bpp and encoding.bits == 8 * len(encoding.data)
        assert torch.equal(codec.decode_noisy(encoding.data)[0], encoding.x_s)
        sizes.append(len(encoding.data))
    assert sizes[0] < sizes[1] < sizes[2]


def test_encoding_is_deterministic_and_depends_on_the_seed():
    codec, x0 = gaussian_codec(levels=4)
    assert codec.encode(x0).data == codec.encode(x0).data
    other, _ = gaussian_codec(levels=4, seed=1)
    assert other.encode(x0).data != codec.encode(x0).data


def test_bad_images_and_foreign_files_are_codec_errors():
    denoiser = tiny_edm()
    codec = Codec(denoiser, Ladder(2.0, 0.1, 3), channels=3, size_multiple=16)
    image = torch.rand(3, 16, 16)
    for bad, message in [(torch.rand(1, 16, 16), "1 channels"), (torch.rand(3, 8, 16), "16x8 pixels"),
                         (image * 2, r"in \[0, 1\]"), (image.clone().fill_(float("nan")), "finite"),
                         (torch.rand(16, 16), r"\(C, H, W\)")]:
        with pytest.raises(CodecError, match=message):
            codec.encode(bad)
    with pytest.raises(CodecError, match="steps must be in 1..3"):
        codec.encode(image, steps=4)
    data = codec.encode(image).data
    with pytest.raises(CodecError, match="another model"):
        Codec(tiny_edm(seed=1)).decode_noisy(data)
    assert model_fingerprint(denoiser) == model_fingerprint(tiny_edm()) != model_fingerprint(tiny_edm(seed=1))


def test_gaussian_rate_against_sum_kl_and_mutual_information():
    """3x32x32 N(0.5, 0.02), ladder 1 -> 0.05 in 24 steps, the unaimed chunk KL 8, pad 2 (the defaults before issue 34;
    the aimed defaults: test_operating_point.py): file bits vs sum KL
    (aim <= 1.10), vs I(X;Y) = 1/2 sum log2(1 + v/s^2), the realised shift f, and the rho = 2 MSE at the measured
    rate vs the Gaussian D(R) = v 2^(-2R) (a lower bound for any code) and the MMSE at s."""
    denoiser, x0 = gaussian_source((3, 32, 32))
    codec = Codec(denoiser, Ladder(1.0, 0.05, 24), Chunking(8, 2, aim=False), unit_range=False)
    encoding = codec.encode(x0)
    dims, s = x0.numel(), encoding.sigma
    kl, information = sum(encoding.kl_bits), 0.5 * dims * math.log2(1 + V / s**2)
    payload_bits = encoding.bits - 8 * header_bytes(encoding.data)
    # payload / sum KL over 10 codec seeds: mean 1.07, sd 0.015, max 1.09 (one draw of the encoder's arrivals): 4 sd
    assert payload_bits <= 1.13 * kl and encoding.bits <= 1.17 * kl, (encoding.bits / kl, payload_bits / kl)
    assert information < kl < 1.45 * information
    assert 0.8 < np.mean(encoding.shifts) < 0.92
    mse = float((codec.reconstruct(encoding.x_s, s, mmse=True) - x0).pow(2).mean())
    rate = encoding.bits / dims
    assert V * 2 ** (-2 * rate) < mse < 1.5 * V * s**2 / (V + s**2)
