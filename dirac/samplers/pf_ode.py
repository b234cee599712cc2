"""The score-scaled probability-flow ODE dx/dsigma = rho (x - D(x, sigma)) / sigma from sigma = s to 0 with Heun's
method (SPEC §3 decoder): rho = 1 the ordinary PF-ODE, rho = 2 the MMSE end, rho = 0 leaves x = y."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

Denoise = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True, eq=False)
class ODEStep:
    """One solver step from sigma to sigma_next: x, D(x, sigma) and x_next; index of num_steps."""

    index: int
    num_steps: int
    sigma: float
    sigma_next: float
    x: Tensor
    denoised: Tensor
    x_next: Tensor


def pf_ode_sigmas(s: float, steps: int, kappa: float = 1.0) -> list[float]:
    """The grid sigma_i = s (1 - i / N)^kappa, i = 0..N, from s to 0 (kappa = 1 uniform;
    larger kappa refines near 0)."""
    if steps < 1 or not s > 0 or not kappa > 0:
        raise ValueError(f"need steps >= 1, s > 0 and kappa > 0, got steps={steps}, s={s}, kappa={kappa}")
    return [s * (1 - i / steps) ** kappa for i in range(steps + 1)]


def score_scaled_pf_ode(denoiser: Denoise, y: Tensor, s: float, rho: float = 1.0, steps: int = 32,
                        kappa: float = 1.0, callback: Callable[[ODEStep], None] | None = None) -> Tensor:
    """x_hat from x(s) = y by Heun's method on dx/dsigma = rho (x - D(x, sigma)) / sigma down to sigma = 0 (SPEC §3);
    the last step, into sigma = 0, is an Euler step (D is not evaluated at 0)."""
    if rho < 0:
        raise ValueError(f"rho must be >= 0, got {rho}")
    sigmas = pf_ode_sigmas(s, steps, kappa)
    x = y
    for index, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        denoised = denoiser(x, x.new_full((x.shape[0],), sigma))
        slope = rho * (x - denoised) / sigma
        x_next = x + (sigma_next - sigma) * slope
        if sigma_next > 0:
            slope_next = rho * (x_next - denoiser(x_next, x.new_full((x.shape[0],), sigma_next))) / sigma_next
            x_next = x + (sigma_next - sigma) * (slope + slope_next) / 2
        if callback is not None:
            callback(ODEStep(index, steps, sigma, sigma_next, x, denoised, x_next))
        x = x_next
    return x


def tweedie(denoiser: Denoise, y: Tensor, s: float) -> Tensor:
    """The MMSE estimate E[x0 | x_s = y] = D(y, s) by Tweedie's formula, one denoiser call (SPEC §3 MMSE endpoint)."""
    return denoiser(y, y.new_full((y.shape[0],), s))
