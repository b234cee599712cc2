"""DPS (Chung et al. 2023; SPEC §1.5) as a solver: diffusion posterior sampling with measurement-gradient guidance
through the shared unconditional denoiser D(x, sigma) ([0, 1] units, variance exploding).

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

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dirac.precision import trackable
from dirac.samplers.grids import DATA_CENTRE, per_image
from dirac.samplers.step import Step, StepCallback
from dirac.seeding import Generators, gaussian_like

Denoise = Callable[[Tensor, Tensor], Tensor]


def dps(denoise: Denoise, y: Tensor, measure: Callable[[Tensor], Tensor], sigmas: Sequence[float], zeta: float,
        generator: Generators = None, callback: StepCallback | None = None) -> Tensor:
    """DPS from x = 1/2 + sigmas[0] z down `sigmas` (ending at 0) with `measure` = A_1 (module docstring); returns x
    at sigma = 0, each step's `Step` (sigma, x, x0_hat) to `callback`."""
    y = trackable(y.detach())
    x = DATA_CENTRE + sigmas[0] * gaussian_like(y, generator)
    tiny = torch.finfo(y.dtype).tiny
    for index, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        with torch.inference_mode(False), torch.enable_grad():
            x_in = trackable(x).detach().requires_grad_(True)
            x0_hat = denoise(x_in, y.new_full((y.shape[0],), sigma))
            residual = y - measure(x0_hat)
            (grad,) = torch.autograd.grad(residual.square().sum(), x_in)
        with torch.no_grad():
            x0_hat, x = x0_hat.detach(), x.detach()
            ratio = sigma_next**2 / sigma**2
            x_next = x0_hat + ratio * (x - x0_hat)
            if sigma_next > 0:
                x_next = x_next + sigma_next * (1 - ratio) ** 0.5 * gaussian_like(y, generator)
            norm = residual.detach().flatten(1).norm(dim=1).clamp_min(tiny)
            x_next = x_next - per_image(zeta / norm) * grad
        if callback is not None:
            callback(Step(index, len(sigmas) - 1, sigma, sigma_next, x, x0_hat, x_next))
        x = x_next
    return x.detach()
