"""Poisson functional representation (ordered random coding) of N(mu, I) against N(0, I) with shared randomness
(SPEC §3 RCC; Li & El Gamal). A candidate is a pure function of (seed, step, chunk, index)."""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass

import torch
from torch import Tensor

ARRIVALS = -1  # the chunk-level tag of the encoder-private arrival times
PARTITION = -2  # the chunk-level tag of a step's partition of the dimensions


def stable_seed(*parts: int) -> int:
    """A 63-bit seed from integers by BLAKE2b (stable across processes, platforms and Python versions; never hash())."""
    digest = hashlib.blake2b(struct.pack(f"<{len(parts)}q", *parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def block_span(block: int, block_size: int, count: int) -> tuple[int, int]:
    """The candidate indices [start, stop) of block `block` of `block_size` candidates among `count`."""
    start = block * block_size
    return start, min(start + block_size, count)


def candidate_block(seed: int, step: int, chunk: int, block: int, rows: int, dims: int,
                    device: torch.device | str = "cpu") -> Tensor:
    """Candidates X_n ~ N(0, I_dims) of one block, `(rows, dims)` float32, from a generator seeded by
    (seed, step, chunk, block): the same call on the same device type gives the same bits (SPEC §3 shared randomness)."""
    generator = torch.Generator(device=device).manual_seed(stable_seed(seed, step, chunk, block))
    return torch.randn(rows, dims, generator=generator, device=device, dtype=torch.float32)


def candidate(seed: int, step: int, chunk: int, index: int, count: int, block_size: int, dims: int,
              device: torch.device | str = "cpu") -> Tensor:
    """X_index, the decoder's regeneration of one candidate (its block's row), `(dims,)` float32 (SPEC §3)."""
    block = index // block_size
    start, stop = block_span(block, block_size, count)
    return candidate_block(seed, step, chunk, block, stop - start, dims, device)[index - start]


def arrival_log_times(seed: int, step: int, chunk: int, count: int) -> Tensor:
    """log T_n of a Poisson process, T_n = cumulative sums of Exp(1) (seeded, encoder-private), `(count,)` float64."""
    generator = torch.Generator().manual_seed(stable_seed(seed, step, chunk, ARRIVALS))
    gaps = torch.empty(count, dtype=torch.float64).exponential_(generator=generator)
    return gaps.cumsum(0).log()


@dataclass(frozen=True)
class Selection:
    """The PFR choice for one chunk: index N, the candidate X_N `(dims,)` and the realised shift f = X_N.mu/||mu||^2."""

    index: int
    sample: Tensor
    shift: float


def pfr_select(mu: Tensor, seed: int, step: int, chunk: int, count: int, block_size: int) -> Selection:
    """N = argmin_n log T_n - X_n . mu over `count` shared candidates, scored block by block as one matvec per block
    (the target N(mu, I) against the prior N(0, I); SPEC §3 RCC by PFR)."""
    mu = mu.detach().to(torch.float32).flatten()
    log_times = arrival_log_times(seed, step, chunk, count).to(mu.device)
    best_scores, best_rows, best_samples = [], [], []
    for block in range(math.ceil(count / block_size)):
        start, stop = block_span(block, block_size, count)
        rows = candidate_block(seed, step, chunk, block, stop - start, mu.numel(), mu.device)
        score, row = (log_times[start:stop] - (rows @ mu).to(torch.float64)).min(0)
        best_scores.append(score)
        best_rows.append(row + start)
        best_samples.append(rows[row])
    winner = int(torch.stack(best_scores).argmin())
    sample, norm = best_samples[winner], float(mu @ mu)
    shift = float(sample @ mu) / norm if norm > 0 else 1.0
    return Selection(int(best_rows[winner]), sample, shift)
