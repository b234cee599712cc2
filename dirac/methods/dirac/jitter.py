"""Operator jitter: training measurements at an operator and noise level perturbed around the nominal ones (issue 30
lever; the reference trains at the nominal operator only)."""

from __future__ import annotations

import torch
from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.degradations.scheduled import ScheduledDegradation


class OperatorJitter:
    """Per training image, the family's severity above the identity scaled by 1 + `operator` u and the noise std by
    1 + `noise` v, u, v ~ U[-1, 1]: y_t = B_{c'} x0 + sigma_t (1 + noise v) z with c' = c_min + (c(t) - c_min)(1 +
    operator u), so t = 0 stays the identity and Phi, still told the nominal sigma_t, learns to tolerate a
    measurement a little off the operator it was trained for (SPEC §1.1's y_t otherwise unchanged)."""

    def __init__(self, operator: float = 0.0, noise: float = 0.0) -> None:
        if not (0 <= operator < 1 and 0 <= noise < 1):
            raise ValueError(f"operator jitter widths must lie in [0, 1), got operator={operator}, noise={noise}")
        self.operator, self.noise = float(operator), float(noise)

    def check(self, degradation: Degradation) -> None:
        """Refuse a family without a severity scale to perturb (operator jitter needs a ScheduledDegradation)."""
        if self.operator and not isinstance(degradation, ScheduledDegradation):
            raise ValueError(f"operator jitter needs a degradation with a severity map (ScheduledDegradation), got "
                             f"{type(degradation).__name__}; set operator=0 to jitter the noise only")

    def factors(self, count: int, device: torch.device, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor]:
        """`(count,)` operator and noise factors 1 + width U[-1, 1]."""
        draws = torch.rand(2, count, generator=generator, device=device).mul_(2).sub_(1)
        return 1 + self.operator * draws[0], 1 + self.noise * draws[1]

    def severities(self, degradation: ScheduledDegradation, t: Tensor, factors: Tensor) -> Tensor:
        """c' = c_min + (c(t) - c_min) * factors: the jittered severities of `t` `(B,)`."""
        return degradation.c_min + (degradation.schedule(t) - degradation.c_min) * factors
