"""The codec in float32 under any autocast (issue 34 item 2): a trainer's bf16-mixed changes neither the file, nor the
x_s the decoder rebuilds, nor the reconstruction, so files written under it decode bit for bit in float32."""

from __future__ import annotations

import torch

from dirac.compression import Chunking, Codec, Ladder
from tests.compression.conftest import tiny_edm


def test_encoding_and_decoding_ignore_an_outer_bf16_autocast():
    codec = Codec(tiny_edm(), Ladder(2.0, 0.1, 4), Chunking(6, 2), channels=3, size_multiple=16)
    x0 = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    plain = codec.encode(x0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = codec.encode(x0)
        x_s, sigma = codec.decode_noisy(plain.data)
        images = [codec.reconstruct(x_s, sigma, rho=1.0, ode_steps=3), codec.reconstruct(x_s, sigma, mmse=True)]
    assert under.data == plain.data and torch.equal(under.x_s, plain.x_s) and torch.equal(x_s, plain.x_s)
    assert all(image.dtype == torch.float32 for image in images)
    assert torch.equal(images[0], codec.reconstruct(x_s, sigma, rho=1.0, ode_steps=3))
    assert torch.equal(images[1], codec.reconstruct(x_s, sigma, mmse=True))
