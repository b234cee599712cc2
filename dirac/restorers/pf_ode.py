"""The score-scaled PF-ODE decoder of RCC (SPEC §3) as a restorer of Gaussian denoising (issue 18 item 8): for
y = x0 + sigma_1 z (`degradation=denoising`, A_1 = I) it integrates dx/dsigma = rho (x - D(x, sigma)) / sigma from
x(sigma_1) = y down to 0 with Heun's method; rho is the tunable parameter that moves along the
distortion–perception curve (rho = 1 a sample of the data distribution, rho = 2 the MMSE end; for a Gaussian source
x_hat = mu + (v / (v + sigma_1^2))^(rho/2) (y - mu) exactly)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from dirac.degradations.base import Degradation
from dirac.degradations.identity import Identity
from dirac.degradations.noise import NoiseSchedule
from dirac.precision import autocast_network_only
from dirac.denoisers.loading import SharedDenoiser, as_shared
from dirac.restorers.baseline import BaselineRestorer, sigma_y
from dirac.samplers.grids import pf_ode_sigmas
from dirac.samplers.pf_ode import heun_pf_ode
from dirac.samplers.step import StepCallback
from dirac.seeding import Generators


@dataclass(frozen=True, eq=False)
class PFODERestorer(BaselineRestorer):
    """The score-scaled PF-ODE from sigma_1 to 0 (SPEC §3 decoder) on y = x0 + sigma_1 z: `steps` Heun steps on the
    grid sigma_i = sigma_1 (1 - i/N)^kappa with the shared denoiser D(x, sigma); sigma_1 is the task's measurement
    noise (`noise`, at t = 1, per image). Only for pure denoising (A_1 = I: the Identity degradation).

    Tunable: `rho` (default 1, the perception end; 2 is the MMSE end). NFE = 2 steps - 1 (the last step is Euler).
    """

    PARAMS: ClassVar[tuple[str, ...]] = ("rho",)
    METHOD: ClassVar[str] = "PF-ODE"
    NEEDS_LINEAR: ClassVar[bool] = False

    denoiser: SharedDenoiser | nn.Module | None = None
    noise: NoiseSchedule | None = None
    rho: float = 1.0
    steps: int = 32
    kappa: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "denoiser", as_shared(self.denoiser))
        if int(self.steps) < 1 or not self.kappa > 0:
            raise ValueError(f"PF-ODE needs steps >= 1 and kappa > 0, got steps {self.steps}, kappa {self.kappa}")
        object.__setattr__(self, "steps", int(self.steps))
        object.__setattr__(self, "kappa", float(self.kappa))

    @property
    def nfe(self) -> int:
        """Two denoiser calls per Heun step, one for the last (Euler) step into sigma = 0."""
        return 2 * self.steps - 1

    def prepare(self, degradation: Degradation) -> None:
        """Refuse anything but pure denoising (y = x0 + sigma_1 z) or a missing noise schedule,
        then load the denoiser."""
        if not isinstance(degradation, Identity):
            raise ValueError(f"the PF-ODE restorer integrates from y = x0 + sigma_1 z (degradation=denoising), but the "
                             f"task's degradation is {type(degradation).__name__}; use dps, ddrm or pnp_admm for it")
        if self.noise is None:
            raise ValueError("PF-ODE needs the measurement noise sigma_1: pass the task's noise schedule "
                             "(noise: ${noise})")
        super().prepare(degradation)

    @torch.no_grad()
    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """x_hat = PF-ODE_rho(y) from sigma_1 to 0 (SPEC §3), images grouped by their sigma_1; deterministic (no
        generator is used); each step's `Step` to `callback` (per group of images with one sigma_1)."""
        self.prepare(degradation)
        denoiser = self._denoiser(y)
        levels = sigma_y(self.noise, y)
        out = torch.empty_like(y)
        with autocast_network_only(y.device.type) as under_autocast:
            denoise = under_autocast(denoiser)
            for level in torch.unique(levels).tolist():
                rows = (levels == level).nonzero().flatten()
                out[rows] = heun_pf_ode(denoise, y[rows], self.sigmas(float(level)), self.rho, callback)
        return out

    def sigmas(self, sigma_1: float) -> list[float]:
        """The solver's noise levels from sigma_1 to 0 (`pf_ode_sigmas`)."""
        return pf_ode_sigmas(sigma_1, self.steps, self.kappa)
