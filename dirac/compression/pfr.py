"""Poisson functional representation (ordered random coding) of N(mu, I) against N(0, I) with shared randomness
(SPEC §3 RCC; Li & El Gamal). A candidate is a pure function of (seed, step, chunk, index). With K candidates the
choice is biased toward the prior (realised shift f < 1, rcc.md §7); `selected_projection` computes that bias and
`aim_gain` the target scaling that removes it (the aimed PFR: the realised shift is 1 in expectation)."""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from dirac.precision import in_float32

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


@in_float32
def pfr_select(mu: Tensor, seed: int, step: int, chunk: int, count: int, block_size: int) -> Selection:
    """N = argmin_n log T_n - X_n . mu over `count` shared candidates, scored block by block as one matvec per block
    (the target N(mu, I) against the prior N(0, I); SPEC §3 RCC by PFR); in float32 under any autocast."""
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


def selected_projection(m: float, count: int) -> tuple[float, float]:
    """(E[a], E[a^2]) of the chosen candidate's projection a = X_N . mu / |mu| when N(mu, I), |mu| = m, is coded
    against N(0, I) by PFR with `count` = K candidates (exact PFR: a ~ N(m, 1)).

    The first K arrivals are taken as the Poisson points with T <= K. A point (T, a) scores c = T / w(a),
    w(a) = exp(m a - m^2 / 2), and the smallest c wins, so a has density psi(a) G(K / w(a)), psi = N(m, 1),
    G(C) = int_0^C exp(-L(c)) dc, L(c) = c Phi(a*(c) - m) + K Phi(-a*(c)), a*(c) = (log(K / c) + m^2 / 2) / m."""
    if m <= 0:
        return 0.0, 1.0
    log_k = math.log(count)
    ell = torch.linspace(-40.0, log_k + 40.0, 4001, dtype=torch.float64)  # log c
    a_star = (log_k - ell + m * m / 2) / m
    rate = ell.exp() * torch.special.ndtr(a_star - m) + count * torch.special.ndtr(-a_star)
    integrand = (ell - rate).exp()  # exp(-L(c)) dc / d(log c)
    steps = (integrand[1:] + integrand[:-1]) / 2 * ell.diff()
    log_g = torch.cat([ell[:1], (ell[0].exp() + steps.cumsum(0)).log()]).numpy()
    a = np.linspace(-10.0, max(m, math.sqrt(2 * log_k)) + 10.0, 8001)
    log_c = log_k - (m * a - m * m / 2)
    log_density = -((a - m) ** 2) / 2 + np.where(log_c < ell[0].item(), log_c, np.interp(log_c, ell.numpy(), log_g))
    density = np.exp(log_density - log_density.max())
    total = np.trapezoid(density, a)
    return float(np.trapezoid(density * a, a) / total), float(np.trapezoid(density * a * a, a) / total)


@lru_cache(maxsize=32)
def _aim_table(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(targets m', E[a | m']) on a grid of m' from 0 to the point where E[a] saturates at the best of K candidates."""
    targets = np.linspace(0.0, 4 * math.sqrt(2 * math.log(count)) + 4, 161)
    means = np.array([selected_projection(float(target), count)[0] for target in targets])
    return targets, np.maximum.accumulate(means)


def aim_gain(m: float, count: int) -> float:
    """h >= 1 with E[a | h m] = m: the scaling of a chunk's target mu (|mu| = m) under which PFR with `count`
    candidates realises the intended shift in expectation (f = 1); at most the grid's end when m is beyond reach."""
    if m <= 0:
        return 1.0
    targets, means = _aim_table(count)
    return max(1.0, float(np.interp(m, means, targets)) / m)


def aimed_select(mu: Tensor, seed: int, step: int, chunk: int, count: int, block_size: int) -> Selection:
    """PFR of the target aim_gain(|mu|) mu, so that E[X_N . mu / |mu|^2] = 1 (no bias toward the prior); the
    Selection's shift is measured against the intended mu. The decoder regenerates X_N as for `pfr_select`."""
    gain = aim_gain(float(mu.detach().double().norm()), count)
    chosen = pfr_select(mu * gain, seed, step, chunk, count, block_size)
    return Selection(chosen.index, chosen.sample, chosen.shift * gain)
