"""The score-scaled probability-flow ODE dx/dsigma = rho (x - D(x, sigma)) / sigma down a sigma ladder to 0 with
Heun's method (SPEC §3 decoder): rho = 1 the ordinary PF-ODE, rho = 2 the MMSE end, rho = 0 leaves x = y."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from dirac.samplers.grids import pf_ode_sigmas
from dirac.samplers.step import Step, StepCallback

Denoise = Callable[[Tensor, Tensor], Tensor]


def heun_pf_ode(denoiser: Denoise, y: Tensor, sigmas: Sequence[float], rho: float = 1.0,
                callback: StepCallback | None = None) -> Tensor:
    """x_hat from x(sigmas[0]) = y by Heun's method on dx/dsigma = rho (x - D(x, sigma)) / sigma along `sigmas`
    (ending at 0; SPEC §3); the last step, into sigma = 0, is an Euler step (D is not evaluated at 0)."""
    if rho < 0:
        raise ValueError(f"rho must be >= 0, got {rho}")
    x, steps = y, len(sigmas) - 1
    for index, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        denoised = denoiser(x, x.new_full((x.shape[0],), sigma))
        slope = rho * (x - denoised) / sigma
        x_next = x + (sigma_next - sigma) * slope
        if sigma_next > 0:
            slope_next = rho * (x_next - denoiser(x_next, x.new_full((x.shape[0],), sigma_next))) / sigma_next
            x_next = x + (sigma_next - sigma) * (slope + slope_next) / 2
        if callback is not None:
            callback(Step(index, steps, sigma, sigma_next, x, denoised, x_next))
        x = x_next
    return x


def score_scaled_pf_ode(denoiser: Denoise, y: Tensor, s: float, rho: float = 1.0, steps: int = 32,
                        kappa: float = 1.0, callback: StepCallback | None = None) -> Tensor:
    """`heun_pf_ode` from sigma = s to 0 on the ladder `pf_ode_sigmas(s, steps, kappa)` (SPEC §3 decoder)."""
    return heun_pf_ode(denoiser, y, pf_ode_sigmas(s, steps, kappa), rho, callback)


def tweedie(denoiser: Denoise, y: Tensor, s: float) -> Tensor:
    """The MMSE estimate E[x0 | x_s = y] = D(y, s) by Tweedie's formula, one denoiser call (SPEC §3 MMSE endpoint)."""
    return denoiser(y, y.new_full((y.shape[0],), s))
