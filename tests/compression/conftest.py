"""Shared pieces of the compression tests: Gaussian sources with the exact denoiser, one intra-op thread."""

from __future__ import annotations

import pytest
import torch

from dirac.compression import Chunking, Codec, Ladder
from dirac.denoisers import GaussianDenoiser


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    """One intra-op thread: the machine's 2 cores are shared with other test runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_source(shape=(3, 8, 8), mean=0.5, variance=0.02, seed=0) -> tuple[GaussianDenoiser, torch.Tensor]:
    """The exact denoiser of N(mean, variance I) of `shape` and one sample x0 of it."""
    generator = torch.Generator().manual_seed(seed)
    x0 = mean + variance**0.5 * torch.randn(shape, generator=generator)
    return GaussianDenoiser(torch.full(shape, mean), torch.full(shape, variance)), x0


def gaussian_codec(shape=(3, 8, 8), levels=12, sigma_min=0.05, chunking=None, seed=0) -> tuple[Codec, torch.Tensor]:
    """A codec around the exact Gaussian denoiser (any real values allowed) and a source sample."""
    denoiser, x0 = gaussian_source(shape)
    codec = Codec(denoiser, Ladder(1.0, sigma_min, levels), chunking or Chunking(8, 2), seed=seed, unit_range=False)
    return codec, x0


def tiny_edm(seed: int = 0):
    """An untrained tiny NCSN++ inside EDM preconditioning (16 px, 3 channels): a real network denoiser."""
    from dirac.denoisers import EDMDenoiser
    from dirac.nets import NCSNpp

    torch.manual_seed(seed)
    net = NCSNpp(3, 3, 16, model_channels=16, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), dropout=0.0)
    return EDMDenoiser(net).eval()


def forge_file(data: bytes, fingerprint: int, payload: bytes | None = None, **fields) -> bytes:
    """A .drc file made from a real one of the model with this `fingerprint`, with header `fields` (the format too:
    `version=1`) and the payload replaced and its CRC-32 recomputed, as an attacker or a buggy writer would make it."""
    from dataclasses import replace

    from dirac.compression import pack_file, unpack_file

    header, original = unpack_file(data, fingerprint)
    if fields.get("version") == 1 and "block_log2" not in fields:
        fields["block_log2"] = 12  # format 1 stores its block size; format 2 derives it
    return pack_file(replace(header, **fields), original if payload is None else payload)


def flat_payload(steps: int, candidates: int, chunk_kl: int, dims: int, chunks: int = 1) -> bytes:
    """A payload of `steps` steps of `chunks` chunks, every index 0 (the cheapest symbols the format has)."""
    from dirac.compression.bitstream import StepSymbols, encode_payload
    from dirac.compression.chunking import implied_level

    level = 0 if chunks == 1 else implied_level(chunks, chunk_kl)
    return encode_payload([StepSymbols(chunks, level, (0,) * chunks)] * steps, candidates, chunk_kl, dims)
