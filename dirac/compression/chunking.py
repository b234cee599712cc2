"""Chunks of bounded KL (SPEC §3): a step's dimensions split into n_k random groups of about `chunk_kl` bits each,
n_k and the per-chunk KL level coded in the stream, so the decoder needs no KL schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dirac.compression.errors import CodecError
from dirac.compression.pfr import PARTITION, stable_seed

ZIPF_OFFSET = math.log(math.e + 1) / math.e  # e^-1 ln(e + 1) ~ 0.483, DiffC's Zipf exponent offset


@dataclass(frozen=True)
class Chunking:
    """Chunk rule: n_k = max(1, ceil(KL_k / chunk_kl)), K = 2^min(chunk_kl + pad, max_log2) candidates per chunk,
    scored in blocks of 2^block_log2 in format 1 (format 2's blocks follow from the image size) (SPEC §3: "chunks of
    a few bits of KL each"). `aim`: the encoder aims each
    chunk's PFR so that its realised shift is 1 in expectation (`dirac.compression.pfr.aimed_select`), so x_s is
    x0 + s n as the decoder assumes; the file does not record it (decoding is the same either way). Defaults from
    experiments/rcc_operating_point.py (its table): chunk KL 8, pad 4, aimed."""

    chunk_kl: int = 8
    pad: int = 4
    max_log2: int = 16
    block_log2: int = 12
    aim: bool = True

    def __post_init__(self) -> None:
        """Refuse settings the file format cannot hold or the search cannot run."""
        if not (1 <= self.chunk_kl <= 20 and 0 <= self.pad <= 8 and 1 <= self.max_log2 <= 20
                and 4 <= self.block_log2 <= 20):
            raise CodecError(f"unsupported chunking chunk_kl={self.chunk_kl} (1..20), pad={self.pad} (0..8), "
                             f"max_log2={self.max_log2} (1..20), block_log2={self.block_log2} (4..20)")

    @property
    def candidates(self) -> int:
        """K, the number of candidates per chunk."""
        return 2 ** min(self.chunk_kl + self.pad, self.max_log2)

    @property
    def block_size(self) -> int:
        """Candidates generated and scored together (the decoder regenerates the block holding N)."""
        return min(2**self.block_log2, self.candidates)

    def count(self, kl_bits: float, dims: int) -> int:
        """n_k = max(1, ceil(KL_k / chunk_kl)), at most one chunk per dimension."""
        return int(min(dims, max(1, math.ceil(kl_bits / self.chunk_kl - 1e-9))))

    def level(self, kl_bits: float, chunks: int) -> int:
        """The per-chunk KL level that picks the chunks' Zipf model: ceil(KL_k) in 0..chunk_kl for one chunk (sent in
        the stream), the middle of the possible range round(chunk_kl (2n - 1) / 2n) for n >= 2 (implied by n)."""
        if chunks > 1:
            return implied_level(chunks, self.chunk_kl)
        return int(min(self.chunk_kl, max(0, math.ceil(kl_bits - 1e-9))))


def implied_level(chunks: int, chunk_kl: int) -> int:
    """The per-chunk KL level of a step split into n >= 2 chunks: the middle of ((n-1)/n, 1] x chunk_kl, rounded."""
    return round(chunk_kl * (2 * chunks - 1) / (2 * chunks))


def zipf_exponent(level: int) -> float:
    """a = 1 + 1 / (chunk KL + e^-1 ln(e + 1)), the truncated-Zipf exponent of the PFR index (DiffC; SPEC §3)."""
    return 1.0 + 1.0 / (level + ZIPF_OFFSET)


def permutation(seed: int, step: int, dims: int) -> Tensor:
    """The step's random order of its dims, seeded by (seed, step), independent of the image (the decoder rebuilds
    it): chunk c is the c-th of its `tensor_split` groups."""
    generator = torch.Generator().manual_seed(stable_seed(seed, step, PARTITION))
    return torch.randperm(dims, generator=generator)


def partition(seed: int, step: int, dims: int, chunks: int) -> list[Tensor]:
    """The step's dims split into `chunks` near-equal groups of its `permutation`."""
    return list(permutation(seed, step, dims).tensor_split(chunks))
