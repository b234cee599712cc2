"""Training loss of the Dirac family (SPEC §1.2)."""

from __future__ import annotations

from torch import Tensor, nn

from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule


class LookAheadLoss(nn.Module):
    """L(Δt) = E[w(t) ||A_{t'}(Phi) - A_{t'}(x0)||^2], t' = max(t - Δt, 0), w = 1/(sigma_t^2 + eps) (SPEC §1.2, paper eq. 12/14).

    Squared errors are summed over C·H·W per image and averaged over the batch (SPEC §1.3b).
    Δt = 0 matches the degradation at the current severity; Δt = 1 is the clean-image loss ||Phi - x0||^2,
    computed without applying A_0 = I.
    """

    def __init__(self, delta_t: float = 0.0, eps: float = 1e-9) -> None:
        super().__init__()
        if not 0.0 <= delta_t <= 1.0:
            raise ValueError(f"loss look-ahead delta_t must lie in [0, 1], got {delta_t}")
        self.delta_t = float(delta_t)
        self.eps = float(eps)

    def forward(self, x0_hat: Tensor, x0: Tensor, t: Tensor, degradation: Degradation, noise: NoiseSchedule) -> Tensor:
        """The batch mean of the weighted per-image look-ahead error (t of shape (B,) in [0, 1])."""
        if self.delta_t >= 1.0:  # every t' = 0, where A_0 is the identity
            error = x0_hat - x0
        else:
            t_ahead = (t - self.delta_t).clamp(min=0.0)
            error = degradation.apply(x0_hat, t_ahead) - degradation.apply(x0, t_ahead)
        weight = 1.0 / (noise.sigma(t) ** 2 + self.eps)
        return (weight * error.pow(2).flatten(1).sum(dim=1)).mean()
