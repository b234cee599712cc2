"""PnP-ADMM (Chan et al. 2016; SPEC §1.5): ADMM on 1/2 ||A x - y||^2 + lambda R(x) with the learned denoiser as
the prox of the prior R. Each iteration:

    x = prox_{f/rho}(z - u) = operator.prox_l2(z - u, y, 1/rho)
    z = D(x + u, sigma)            sigma = sqrt(lambda / rho), the denoiser's noise level
    u = u + x - z

A fixed number of iterations (each one NFE), batched over images, no host synchronisation in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from dirac.degradations.base import Degradation
from dirac.precision import autocast_network_only
from dirac.denoisers.loading import SharedDenoiser, as_shared
from dirac.restorers.baseline import BaselineRestorer, measurement_operator
from dirac.samplers.step import Step, StepCallback
from dirac.seeding import Generators


@dataclass(frozen=True, eq=False)
class PnPADMM(BaselineRestorer):
    """PnP-ADMM (SPEC §1.5) with the shared denoiser D(x, sigma) ([0, 1] units, VE): `iterations` steps from
    x = z = y, u = 0; returns z (the last denoised iterate).

    Tunable: `rho` (the ADMM penalty, the main parameter; SPEC §1.5 tunes it) and `sigma` (the denoiser's noise
    level; the prior weight is lambda = rho sigma^2). NFE = iterations.
    """

    PARAMS: ClassVar[tuple[str, ...]] = ("rho", "sigma")
    METHOD: ClassVar[str] = "PnP-ADMM"

    denoiser: SharedDenoiser | nn.Module | None = None
    rho: float = 0.5
    sigma: float = 0.05
    iterations: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "denoiser", as_shared(self.denoiser))
        if int(self.iterations) < 1:
            raise ValueError(f"PnP-ADMM needs iterations >= 1, got {self.iterations}")
        if self.rho <= 0 or self.sigma <= 0:
            raise ValueError(f"PnP-ADMM needs rho > 0 and sigma > 0, got rho {self.rho}, sigma {self.sigma}")
        object.__setattr__(self, "iterations", int(self.iterations))

    @property
    def nfe(self) -> int:
        """One denoiser call per iteration."""
        return self.iterations

    @torch.no_grad()
    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """The PnP-ADMM iterations; each iteration's `Step` (z before, z after) to `callback`."""
        operator = measurement_operator(degradation, y)
        denoiser = self._denoiser(y)
        sigma = y.new_full((y.shape[0],), self.sigma)
        gamma = 1 / self.rho
        z, u = y, torch.zeros_like(y)
        with autocast_network_only(y.device.type) as under_autocast:
            denoise = under_autocast(denoiser)
            for index in range(self.iterations):
                x = operator.prox_l2(z - u, y, gamma)
                z_next = denoise(x + u, sigma)
                u = u + x - z_next
                if callback is not None:
                    callback(Step(index, self.iterations, None, None, z, z_next, z_next))
                z = z_next
        return z
