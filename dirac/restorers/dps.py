"""DPS (Chung et al. 2023; SPEC §1.5): diffusion posterior sampling with measurement-gradient guidance through the
shared unconditional denoiser D(x, sigma) ([0, 1] units, variance exploding).

Ancestral sampling over EDM's noise levels sigma_0 > ... > sigma_{N-1} > 0 = sigma_N from x = 1/2 + sigma_0 z; at
each level, with x0_hat = D(x_i, sigma_i) and r = y - A_1(x0_hat):

    x_{i+1} = x0_hat + (sigma_{i+1}^2 / sigma_i^2) (x_i - x0_hat) + sigma_{i+1} sqrt(1 - sigma_{i+1}^2 / sigma_i^2) z
    x_{i+1} <- x_{i+1} - zeta_i grad_{x_i} ||r||^2,    zeta_i = zeta / ||r||    (error-normalised step, per image)

(equivalently a constant step 2 zeta on the gradient of the unsquared norm, as the official code does; its step in
[-1, 1] units is 2x this zeta.) The measurement noise: every method sees the task's y, simulated with sigma_1 in the
[0, 1] units the denoiser speaks, so its effective level is the task's — the official code's halving (noise added
after mapping to [-1, 1]) does not arise. The gradient is taken with autograd enabled locally, also under Lightning's
inference mode; everything else runs without gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.precision import autocast_network_only
from dirac.restorers.baseline import DATA_CENTRE, SigmaLadderBaseline
from dirac.samplers.grids import per_image
from dirac.samplers.step import Step, StepCallback
from dirac.seeding import Generators, gaussian_like


def _trackable(x: Tensor) -> Tensor:
    """`x`, or a normal copy when it is an inference tensor (autograd cannot record those)."""
    return x.clone() if x.is_inference() else x


@dataclass(frozen=True, eq=False)
class DPS(SigmaLadderBaseline):
    """DPS (SPEC §1.5): `steps` guided ancestral steps (the paper: 1000 NFE), step `zeta` (tuned) normalised by the
    per-image residual norm ||y - A_1(x0_hat)||. Returns x at sigma = 0. Works for any differentiable degradation."""

    PARAMS: ClassVar[tuple[str, ...]] = ("zeta",)
    METHOD: ClassVar[str] = "DPS"
    NEEDS_LINEAR: ClassVar[bool] = False  # only A_1 and its gradient: any differentiable degradation

    zeta: float = 0.5
    steps: int = 1000  # one denoiser call and its backward pass per step

    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """Guided ancestral sampling; each step's `Step` (sigma, x, x0_hat) to `callback`."""
        denoiser = self._denoiser(y)
        y = _trackable(y.detach())
        sigmas = self.sigmas()
        x = DATA_CENTRE + sigmas[0] * gaussian_like(y, generator)
        tiny = torch.finfo(y.dtype).tiny
        with autocast_network_only(y.device.type) as under_autocast:
            denoise = under_autocast(denoiser)
            for index, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
                with torch.inference_mode(False), torch.enable_grad():
                    x_in = _trackable(x).detach().requires_grad_(True)
                    x0_hat = denoise(x_in, y.new_full((y.shape[0],), sigma))
                    residual = y - degradation(x0_hat, y.new_ones(y.shape[0]))
                    (grad,) = torch.autograd.grad(residual.square().sum(), x_in)
                with torch.no_grad():
                    x0_hat, x = x0_hat.detach(), x.detach()
                    ratio = sigma_next**2 / sigma**2
                    x_next = x0_hat + ratio * (x - x0_hat)
                    if sigma_next > 0:
                        x_next = x_next + sigma_next * (1 - ratio) ** 0.5 * gaussian_like(y, generator)
                    norm = residual.detach().flatten(1).norm(dim=1).clamp_min(tiny)
                    x_next = x_next - per_image(self.zeta / norm) * grad
                if callback is not None:
                    callback(Step(index, self.steps, sigma, sigma_next, x, x0_hat, x_next))
                x = x_next
        return x.detach()
