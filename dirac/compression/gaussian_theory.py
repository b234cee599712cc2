"""Closed forms of the Gaussian check (SPEC §3, rcc.md §1 and §3) for X ~ N(mu, diag v) observed as Y = X + s n: the
rate I(X; Y), the MMSE, the score-scaled PF-ODE's MSE, the rate-distortion function (reverse water-filling) and the
expected sum of the progressive encoder's KL over a ladder with exact samples (the step-grid factor's numerator); and
the sources the codec is measured on."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

LN2 = math.log(2.0)
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
