"""Training loss of the Dirac family (SPEC §1.2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule


class LookAheadLoss(nn.Module):
    """L(Δt) = E[w(t) ||A_{t'}(Phi) - A_{t'}(x0)||^2], t' = max(t - Δt, 0), w = 1/(sigma_t^2 + eps) (SPEC §1.2,
    paper eq. 12/14).

    Squared errors are summed over C·H·W per image and averaged over the batch (SPEC §1.3b).
    Δt = 0 matches the degradation at the current severity; Δt = 1 is the clean-image loss ||Phi - x0||^2,
    computed without applying A_0 = I.

    `per_image="psnr"` (issue 21 lever, not the paper's) averages 10 log10(mean squared error + floor) per image
    instead: minus the look-ahead's mean per-image PSNR, the measure the comparison table reports. w(t) is a
    constant offset there and drops out; every image counts by its relative error, smooth ones as much as textured.
    """

    def __init__(self, delta_t: float = 0.0, eps: float = 1e-9, per_image: str = "squared",
                 floor: float = 1e-10) -> None:
        super().__init__()
        if not 0.0 <= delta_t <= 1.0:
            raise ValueError(f"loss look-ahead delta_t must lie in [0, 1], got {delta_t}")
        if per_image not in ("squared", "psnr"):
            raise ValueError(f"loss per_image must be 'squared' or 'psnr', got {per_image!r}")
        if not floor > 0:
            raise ValueError(f"loss floor must be > 0, got {floor}")
        self.delta_t = float(delta_t)
        self.eps = float(eps)
        self.per_image = per_image
        self.floor = float(floor)

    def forward(self, x0_hat: Tensor, x0: Tensor, t: Tensor, degradation: Degradation, noise: NoiseSchedule) -> Tensor:
        """The batch mean of the weighted per-image look-ahead error, or its PSNR scale (t: (B,) in [0, 1])."""
        if self.delta_t >= 1.0:  # every t' = 0, where A_0 is the identity
            error = x0_hat - x0
        else:
            t_ahead = (t - self.delta_t).clamp(min=0.0)
            error = degradation.apply(x0_hat, t_ahead) - degradation.apply(x0, t_ahead)
        if self.per_image == "psnr":
            return (10.0 * torch.log10(error.pow(2).flatten(1).mean(dim=1) + self.floor)).mean()
        weight = 1.0 / (noise.sigma(t) ** 2 + self.eps)
        return (weight * error.pow(2).flatten(1).sum(dim=1)).mean()
