"""The schedules the samplers are given (k-diffusion shape: the grid is passed in): Dirac's time grid (SPEC §1.3),
EDM's Karras noise levels (SPEC §1.5 baselines) and the PF-ODE's sigma ladder (SPEC §3 decoder)."""

from __future__ import annotations

import math

from torch import Tensor

from dirac.checks import check_interval

TIME_EPS = 1e-6  # times closer than this are treated as equal (guards float error in t = 1 - i * dt)
DATA_CENTRE = 0.5  # x_T of a sigma ladder is centred on the middle of the [0, 1] range (negligible for sigma_T >> 1)


def is_last_step(t_next: float, stop_t: float) -> bool:
    """Whether a step of Dirac's full pass ending at `t_next` ends a run stopped at `stop_t` (SPEC §1.3 early stop):
    it ends the pass (t_next = 0) or goes below the stop."""
    return t_next == 0.0 or t_next < stop_t - TIME_EPS


def time_grid(dt: float, stop_t: float = 0.0) -> list[tuple[float, float]]:
    """The (t, t_next) steps of a Dirac run, t = 1 - i dt, t_next = max(t - dt, 0) (SPEC §1.3); its length is the NFE.

    The grid always reaches t = 0: when dt does not divide 1 the last step is shorter (dt 0.3: 1, 0.7, 0.4,
    0.1 -> 0), and every step's actual length is t - t_next.
    """
    check_interval("dt", dt, 0.0, 1.0, open_low=True)
    check_interval("stop_t", stop_t, 0.0, 1.0)
    num_steps = math.ceil(1.0 / dt - TIME_EPS)
    grid = []
    for index in range(num_steps):
        t = round(1.0 - index * dt, 12)  # rounding only strips float noise from the printed times
        t_next = 0.0 if index == num_steps - 1 else max(round(t - dt, 12), 0.0)
        grid.append((t, t_next))
        if is_last_step(t_next, stop_t):
            break
    return grid


def check_sigma_ladder(method: str, steps: int, sigma_min: float, sigma_max: float) -> int:
    """The step count of a sampler's sigma ladder, after checking steps >= 1 and 0 < sigma_min < sigma_max."""
    if int(steps) < 1 or not 0 < sigma_min < sigma_max:
        raise ValueError(f"{method} needs steps >= 1 and 0 < sigma_min < sigma_max, got steps {steps}, "
                         f"sigma_min {sigma_min}, sigma_max {sigma_max}")
    return int(steps)


def karras_sigmas(steps: int, sigma_max: float, sigma_min: float, rho: float = 7.0) -> list[float]:
    """EDM's noise levels (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i < N, then 0."""
    if steps == 1:
        return [float(sigma_max), 0.0]
    high, low = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(high + index / (steps - 1) * (low - high)) ** rho for index in range(steps)] + [0.0]


def pf_ode_sigmas(s: float, steps: int, kappa: float = 1.0) -> list[float]:
    """The PF-ODE ladder sigma_i = s (1 - i / N)^kappa, i = 0..N, from s to 0 (SPEC §3; kappa = 1 uniform, larger
    kappa refines near 0)."""
    if steps < 1 or not s > 0 or not kappa > 0:
        raise ValueError(f"need steps >= 1, s > 0 and kappa > 0, got steps={steps}, s={s}, kappa={kappa}")
    return [s * (1 - i / steps) ** kappa for i in range(steps + 1)]


def per_image(levels: Tensor) -> Tensor:
    """A `(B,)` tensor of per-image levels viewed as `(B, 1, 1, 1)` to scale a batch of images."""
    return levels.view(-1, 1, 1, 1)
