"""The Dirac reverse process as a solver: paper Alg. 1 with guidance, along a time grid passed in (SPEC §1.3, §1.3b)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from dirac.checks import check_choice
from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.precision import autocast_network_only, trackable
from dirac.samplers.grids import per_image
from dirac.samplers.incremental import incremental_reconstruction
from dirac.samplers.step import Step, StepCallback
from dirac.seeding import Generators, check_generators, gaussian_like

Phi = Callable[[Tensor, Tensor], Tensor]
Output = Literal["x0_hat", "iterate"]
Guidance = Literal["none", "std", "error"]
OUTPUTS = ("x0_hat", "iterate")
GUIDANCES = ("none", "std", "error")


def _predict(phi: Phi, y_t: Tensor, times: Tensor) -> Tensor:
    """x0_hat = Phi(y_t, t), checked to have the shape of y_t."""
    x0_hat = phi(y_t, times)
    if x0_hat.shape != y_t.shape:
        raise ValueError(f"phi must return x0_hat of the input's shape {tuple(y_t.shape)}, got {tuple(x0_hat.shape)}")
    return x0_hat


def _guidance_scale(guidance: str, step: float, residual: Tensor, sigma_1: Tensor) -> Tensor:
    """Per-image eta: std-scaled step * 0.5 / sigma_1^2, or error-scaled step / ||y - A_1(x0_hat)|| (SPEC §1.3)."""
    if guidance == "std":
        return step * 0.5 / sigma_1.square()
    return step / residual.flatten(1).norm(dim=1).clamp_min(torch.finfo(residual.dtype).tiny)


def guided_estimate(phi: Phi, y_t: Tensor, times: Tensor, y: Tensor, degradation: Degradation,
                    noise: NoiseSchedule, guidance: str, guidance_step: float) -> tuple[Tensor, Tensor | None]:
    """x0_hat = phi(y_t, t) and, if guided, eta * grad_{y_t} ||y - A_1(x0_hat)||^2 through phi (SPEC §1.3b)."""
    if guidance == "none":
        return _predict(phi, y_t, times), None
    with torch.inference_mode(False), torch.enable_grad():  # Lightning validates under inference mode
        y_in = trackable(y_t).detach().requires_grad_(True)
        times, y = trackable(times), trackable(y)
        x0_hat = _predict(phi, y_in, times)
        if not x0_hat.requires_grad:
            raise ValueError("guidance differentiates phi in y_t, but phi's output carries no gradient "
                             "(does phi ignore y_t or disable gradients itself?)")
        ones = torch.ones_like(times)
        residual = y - degradation.apply(x0_hat, ones)
        (grad,) = torch.autograd.grad(residual.square().sum(), y_in)
    eta = _guidance_scale(guidance, guidance_step, residual.detach(), noise.sigma(ones))
    return x0_hat.detach(), per_image(eta) * grad


def reverse_step(phi: Phi, y_t: Tensor, y: Tensor, degradation: Degradation, noise: NoiseSchedule, t: float,
                 t_next: float, generator: Generators, *, incremental: str = "look_ahead", guidance: str = "none",
                 guidance_step: float = 0.5, small_delta: float = 0.005) -> tuple[Tensor, Tensor]:
    """x0_hat and y_t' = y_t + R + D + G + sqrt(s_t^2 - s_t'^2) z for one step from t to t_next (SPEC §1.3), with
    D = (s_t^2 - s_t'^2) / s_t^2 (y_hat - y_t); R uses the step's actual length t - t_next."""
    times = y_t.new_full((y_t.shape[0],), t)
    x0_hat, ascent = guided_estimate(phi, y_t, times, y, degradation, noise, guidance, guidance_step)
    y_hat = degradation.apply(x0_hat, times)
    var_t, var_next = noise.sigma(times).square(), noise.sigma(times.new_full(times.shape, t_next)).square()
    released = var_t - var_next
    reconstruction = incremental_reconstruction(incremental, degradation, x0_hat, y_hat, t, t - t_next, small_delta)
    denoising = per_image(released / var_t) * (y_hat - y_t)
    y_next = y_t + reconstruction + denoising + per_image(released.sqrt()) * gaussian_like(y_t, generator)
    if ascent is not None:
        y_next = y_next - per_image(released) * ascent
    return x0_hat, y_next


@torch.no_grad()
def dirac_reverse(phi: Phi, y: Tensor, degradation: Degradation, noise: NoiseSchedule,
                  grid: Sequence[tuple[float, float]], *, output: Output = "x0_hat", incremental: str = "look_ahead",
                  guidance: Guidance = "none", guidance_step: float = 0.5, small_delta: float = 0.005,
                  generator: Generators = None, callback: StepCallback | None = None) -> Tensor:
    """The Dirac reverse process (SPEC §1.3, paper Alg. 1) from y = y_1 along `grid` (`grids.time_grid`): the last
    x0_hat or iterate. Each step: x0_hat = phi(y_t, t), y_hat = A_t(x0_hat), y_t' = y_t + R + D + G + noise
    (`reverse_step`); `generator` is one torch generator or one per image; `callback` gets every step's `Step`."""
    check_choice("output", output, OUTPUTS)
    check_choice("guidance", guidance, GUIDANCES)
    degradation.check_image(y)
    check_generators(generator, y.shape[0])
    settings = {"incremental": incremental, "guidance": guidance, "guidance_step": guidance_step,
                "small_delta": small_delta}
    with autocast_network_only(y.device.type) as under_autocast:
        phi = under_autocast(phi)
        y_t = y.float()
        for index, (t, t_next) in enumerate(grid):
            if index == len(grid) - 1 and output == "x0_hat" and callback is None:
                return _predict(phi, y_t, y_t.new_full((y.shape[0],), t))
            x0_hat, y_next = reverse_step(phi, y_t, y, degradation, noise, t, t_next, generator, **settings)
            if callback is not None:
                callback(Step(index, len(grid), t, t_next, y_t, x0_hat, y_next))
            y_t = y_next
    return x0_hat if output == "x0_hat" else y_t
