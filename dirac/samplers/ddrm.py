"""DDRM (Kawar et al. 2022; SPEC §1.5) as a solver: denoising diffusion restoration in the operator's SVD space
A = U diag(s) V^T.

Variance-exploding form with the shared denoiser D(x, sigma) in [0, 1] units: x_T = 1/2 + sigma_T z, then for each
pair of noise levels sigma -> sigma' (EDM's schedule, `steps` levels and a last one at 0; DDIM-like, one NFE each),
with x0_bar = V^T D(x, sigma), y_bar = s^+ U^T y and c = sigma_y / s per spectral coordinate (DDRM eq. 7):

    s = 0:                  x0_bar + sqrt(1 - eta^2) sigma' (x_bar - x0_bar) / sigma + eta sigma' z
    sigma' <  c:            x0_bar + sqrt(1 - eta^2) sigma' (y_bar - x0_bar) / c + eta sigma' z
    sigma' >= c:            (1 - eta_b) x0_bar + eta_b y_bar + sqrt(sigma'^2 - c^2 eta_b^2) z

(the middle case is computed as (U^T y - s x0_bar) / sigma_y, stable for tiny s). sigma_y is the task's
measurement noise sigma_1 in [0, 1] units, the units y is simulated in (the reference code doubles it for its
[-1, 1] models; here the denoiser speaks [0, 1], so no factor is needed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dirac.degradations.operators import SVDOperator, default_rtol
from dirac.samplers.grids import DATA_CENTRE, per_image
from dirac.samplers.step import Step, StepCallback
from dirac.seeding import Generators, gaussian_like

Denoise = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def ddrm(denoise: Denoise, y: Tensor, operator: SVDOperator, sigma_y: Tensor, sigmas: Sequence[float], eta: float,
         eta_b: float, generator: Generators = None, callback: StepCallback | None = None) -> Tensor:
    """DDRM from x_T = 1/2 + sigmas[0] z down `sigmas` (ending at 0) in `operator`'s SVD space, with the per-image
    measurement noise `sigma_y` `(B,)` (module docstring, DDRM eq. 7); returns x at sigma = 0, each step's `Step`
    (sigma, x, x0_hat) to `callback`."""
    svd = operator.svd()
    s = svd.s.to(y.dtype)
    s_inv = svd.s_pinv(default_rtol(y)).to(y.dtype)
    kept = s_inv > 0
    noise_y = per_image(sigma_y)
    uty = svd.U_T(y)
    y_bar = s_inv * uty
    c = noise_y * s_inv  # sigma_y / s where s is kept
    safe_noise = noise_y.clamp_min(torch.finfo(y.dtype).tiny)
    x = DATA_CENTRE + sigmas[0] * gaussian_like(y, generator)
    keep_direction = (1 - eta**2) ** 0.5
    for index, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        x0_hat = denoise(x, y.new_full((y.shape[0],), sigma))
        x0_bar, x_bar = svd.V_T(x0_hat), svd.V_T(x)
        z = gaussian_like(y, generator) if sigma_next > 0 else torch.zeros_like(y)
        missing = x0_bar + keep_direction * sigma_next * (x_bar - x0_bar) / sigma + eta * sigma_next * z
        less_noisy = x0_bar + keep_direction * sigma_next * (uty - s * x0_bar) / safe_noise + eta * sigma_next * z
        spread = (sigma_next**2 - c.square() * eta_b**2).clamp_min(0).sqrt()
        noisier = (1 - eta_b) * x0_bar + eta_b * y_bar + spread * z
        measured = torch.where(sigma_next < c, less_noisy, noisier)
        x_next = svd.V(torch.where(kept, measured, missing))
        if callback is not None:
            callback(Step(index, len(sigmas) - 1, sigma, sigma_next, x, x0_hat, x_next))
        x = x_next
    return x
