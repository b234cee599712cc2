"""Closed forms of the Gaussian check (SPEC §3, rcc.md §1 and §3) for X ~ N(mu, diag v) observed as Y = X + s n: the
rate I(X; Y), the MMSE, the score-scaled PF-ODE's MSE, the rate-distortion function and its inverse (reverse
water-filling), the expected sum of the progressive encoder's KL over a ladder with exact samples (the step-grid
factor's numerator) and the bits the .drc format spends beyond the KL (`format_overhead_bits`); and the sources the
codec is measured on."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from dirac.compression.bitstream import StepSymbols, zigzag, zipf_probabilities
from dirac.compression.chunking import Chunking, zipf_exponent
from dirac.compression.pfr import aim_gain, winner_log2_rank

LN2 = math.log(2.0)
LAST_WORD_BITS = 16  # the payload is whole 32-bit words: its last one is half filled on average
MEAN, VARIANCE = 0.5, 0.02  # the Gaussian check's source N(0.5, 0.02 I) (tests, experiments/rcc_operating_point.py)


def _variances(variance: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """The per-dimension variances as a float64 array (a float: one dimension)."""
    return np.atleast_1d(np.asarray(variance, dtype=np.float64))


def mutual_information_bits(variance, s: float) -> float:
    """I(X; Y) = 1/2 sum_i log2(1 + v_i / s^2) bits (SPEC §3)."""
    return float(0.5 * np.log2(1 + _variances(variance) / s**2).sum())


def mmse(variance, s: float) -> float:
    """The mean per-dimension MMSE of X from Y, mean_i v_i s^2 / (v_i + s^2) (SPEC §3, rho = 2)."""
    v = _variances(variance)
    return float((v * s**2 / (v + s**2)).mean())


def pf_ode_mse(variance, s: float, rho: float) -> float:
    """Mean per-dimension MSE of the exact score-scaled PF-ODE, g = (v / (v + s^2))^(rho / 2):
    (1 - g)^2 v + g^2 s^2 (rcc.md §1)."""
    v = _variances(variance)
    gain = (v / (v + s**2)) ** (rho / 2)
    return float(((1 - gain) ** 2 * v + gain**2 * s**2).mean())


def rate_for_distortion(variance, distortion: float) -> float:
    """R(D) in bits for a mean per-dimension MSE D: reverse water-filling, D = mean_i min(theta, v_i),
    R = 1/2 sum_i max(0, log2(v_i / theta)) (the least rate any code needs for that MSE)."""
    v = _variances(variance)
    if distortion >= v.mean():
        return 0.0
    low, high = 0.0, float(v.max())
    for _ in range(200):
        theta = (low + high) / 2
        low, high = (theta, high) if np.minimum(theta, v).mean() < distortion else (low, theta)
    return float(0.5 * np.log2(np.maximum(v / high, 1.0)).sum())


def distortion_for_rate(variance, bits: float) -> float:
    """D(R), the least mean per-dimension MSE of any code of R = `bits` in total: reverse water-filling,
    R = 1/2 sum_i max(0, log2(v_i / theta)), D = mean_i min(theta, v_i); v 2^(-2 R / d) when all v_i are equal."""
    v = _variances(variance)
    low, high = 0.0, float(v.max())
    for _ in range(200):
        theta = (low + high) / 2
        low, high = (low, theta) if 0.5 * np.log2(np.maximum(v / theta, 1.0)).sum() < bits else (theta, high)
    return float(np.minimum(high, v).mean())


def ladder_kl_bits(variance, sigmas: Sequence[float]) -> float:
    """E[sum_k KL_k] in bits of the progressive encoder with exact samples and the exact denoiser (rcc.md §3), the
    first prior at the source mean: step 0 sum_i v_i / (2 s_0^2), then
    1/2 (1 / s_{k+1}^2 - 1 / s_k^2) sum_i MMSE_i(s_k)."""
    v = _variances(variance)
    nats = float(v.sum()) / (2 * sigmas[0] ** 2)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        nats += 0.5 * (1 / s_next**2 - 1 / s**2) * float((v * s**2 / (v + s**2)).sum())
    return nats / LN2


def gaussian_source(kind: str, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-dimension variances, a sample x0) of a test source with mean 0.5: `gaussian` N(0.5, 0.02 I); `heavy`
    log-normal variances (mean 0.02, log-std 2), so the per-dimension KL is heavy-tailed as on photographs."""
    if kind not in ("gaussian", "heavy"):
        raise ValueError(f"the source is gaussian or heavy, got {kind!r}")
    generator = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        variance = torch.full(shape, VARIANCE)
    else:
        variance = VARIANCE * torch.exp(2 * torch.randn(shape, generator=generator) - 2)
    return variance, MEAN + variance.sqrt() * torch.randn(shape, generator=generator)


def index_bits(kl_bits: float, level: int, count: int, aim: bool) -> tuple[float, float]:
    """Mean and standard deviation of the bits of one chunk's PFR index in the .drc payload: a log2(1 + T_N) +
    log2 sum_{r <= K} r^-a, the truncated Zipf code of its level (a = `zipf_exponent`) at the rank of truncated PFR's
    winner (`winner_log2_rank`), for a chunk of `kl_bits` whose target is aimed (`aim_gain`) when `aim`."""
    m = math.sqrt(2 * LN2 * kl_bits)
    mean, spread = winner_log2_rank(m * (aim_gain(m, count) if aim else 1.0), count)
    return _zipf_code(mean, spread, level, count)


def _zipf_code(log2_rank: float | np.ndarray, spread: float | np.ndarray, level: int, count: int) -> tuple:
    """(mean, std) of the truncated Zipf code length a log2 r + log2 Z of an index whose log2(1 + rank) has this mean
    and spread; log2 Z = -log2 p(1) of the stream's own `zipf_probabilities`."""
    exponent = zipf_exponent(level)
    return exponent * log2_rank - math.log2(zipf_probabilities(count, level)[0]), exponent * spread


@lru_cache(maxsize=16)
def _rank_table(count: int, aim: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chunk KL grid in bits, mean, std of log2(1 + T_N)) at every whole bit from 0 to log2 K + 4."""
    grid = np.arange(0.0, math.log2(count) + 5)
    moments = [winner_log2_rank(m * (aim_gain(m, count) if aim else 1.0), count)
               for m in np.sqrt(2 * LN2 * grid)]
    return grid, *map(np.array, zip(*moments))


def chunk_index_bits(kl_bits: Sequence[float], level: int, count: int, aim: bool) -> tuple[np.ndarray, np.ndarray]:
    """`index_bits` of every chunk of a step at once, each at its own KL (interpolated between whole bits; beyond the
    grid the last two points' line)."""
    grid, means, spreads = _rank_table(count, aim)
    kl = np.asarray(kl_bits, dtype=np.float64)
    slope = (means[-1] - means[-2], spreads[-1] - spreads[-2])
    beyond = np.maximum(kl - grid[-1], 0.0)
    mean = np.interp(kl, grid, means) + slope[0] * beyond
    spread = np.interp(kl, grid, spreads) + slope[1] * beyond
    return _zipf_code(mean, spread, level, count)


def step_overhead_bits(steps: Sequence[StepSymbols], chunk_kl_bits: Sequence[Sequence[float]],
                       chunking: Chunking) -> list[float]:
    """Per step k, the payload bits it spends beyond KL_k: 2 floor(log2(zigzag(n_k - n_{k-1}) + 1)) + 1 (its chunk
    count, n_{-1} = 1) + [n_k = 1] log2(chunk_kl + 1) (its level) + sum_c (index_bits(KL_{k,c}) - KL_{k,c}) (its
    indices, each chunk at its own KL)."""
    overheads, previous = [], 1
    for symbols, chunk_kls in zip(steps, chunk_kl_bits):
        index_means = chunk_index_bits(chunk_kls, symbols.level, chunking.candidates, chunking.aim)[0]
        overheads.append(2 * ((zigzag(symbols.chunks - previous) + 1).bit_length() - 1) + 1
                         + (math.log2(chunking.chunk_kl + 1) if symbols.chunks == 1 else 0.0)
                         + float(index_means.sum() - sum(chunk_kls)))
        previous = symbols.chunks
    return overheads


def format_overhead_bits(steps: Sequence[StepSymbols], chunk_kl_bits: Sequence[Sequence[float]], chunking: Chunking,
                         header_bytes: int) -> float:
    """The bits a .drc file spends beyond sum_k KL_k (SPEC §3 rate check; the file is about sum KL plus this):
    8 x header bytes + 16 (the range coder's last 32-bit word, half filled on average) + sum of `step_overhead_bits`."""
    return 8.0 * header_bytes + LAST_WORD_BITS + sum(step_overhead_bits(steps, chunk_kl_bits, chunking))
