"""Naive RGM-SR: every step block-averages by 2 and adds noise (SPEC §2 "Forward processes"; rgm.md §1.4).

On the N-step VP grid, x_k = P_k(ā_k x_0 + σ̄_k ε), P_k = Up^k Down^k (2x2 block averages k times, nearest
upsampling): tensors stay H x W as in RGM-SR; the noise std at the level's own resolution H/2^k is σ̄_k / 2^k, and
the latent at level N is N(0, 4^-N I) on the H/2^N grid. No posterior sampler: Alg. 2 only.
"""

from __future__ import annotations

import torch

from dirac.chains.sr import BlockChain
from dirac.chains.vp import check_steps, vp_levels


class NaiveSRChain(BlockChain):
    """Naive RGM-SR: x_k = P_k(√(1 − β_k) x_{k-1} + √β_k ε); the fidelity defaults to the level's likelihood, std
    2^k (σ̄_k / 2^k) = σ̄_k over the full-size tensor (the reference's: the 4^k replicated pixels make it the true
    low-resolution term, rgm.md §2); `fidelity="full_size"` is RGM-SR's reference weighting (dirac.chains.sr)."""

    kind = "sr_naive"

    def __init__(self, steps: int = 3, beta_min: float = 0.1, beta_max: float = 20.0,
                 fidelity: str = "likelihood") -> None:
        steps = check_steps(steps)
        _, abar, sigma_bar = vp_levels(steps, beta_min, beta_max)
        depth = torch.arange(steps + 1)
        super().__init__(steps, depth, abar, sigma_bar / 2.0 ** depth, fidelity, 2.0 ** -steps, beta_min, beta_max)
