"""The Dirac reverse process: paper Alg. 1 with guidance and early stopping (SPEC §1.3, §1.3b)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.precision import autocast_network_only
from dirac.samplers._checks import check_choice, check_interval
from dirac.samplers.restorer import Generators, check_generators, gaussian_like, per_image
from dirac.samplers.incremental import INCREMENTAL_VARIANTS, TIME_EPS, incremental_reconstruction

Phi = Callable[[Tensor, Tensor], Tensor]
Output = Literal["x0_hat", "iterate"]
Guidance = Literal["none", "std", "error"]
OUTPUTS = ("x0_hat", "iterate")
GUIDANCES = ("none", "std", "error")


@dataclass(frozen=True, eq=False)
class StepState:
    """One reverse step from t to t_next (SPEC §1.3): y_t, x0_hat = Phi(y_t, t), y_next; num_steps of a full pass."""

    index: int
    t: float
    t_next: float
    y_t: Tensor
    x0_hat: Tensor
    y_next: Tensor
    is_last: bool
    num_steps: int


StepCallback = Callable[[StepState], None]


def is_last_step(index: int, num_steps: int, t_next: float, stop_t: float) -> bool:
    """Whether step `index` of a full pass of `num_steps` ends a run stopped at `stop_t` (SPEC §1.3 early stop)."""
    return index == num_steps - 1 or t_next < stop_t - TIME_EPS


def time_grid(dt: float, stop_t: float = 0.0) -> list[tuple[float, float]]:
    """The (t, t_next) steps of a run, t = 1 - i dt, t_next = max(t - dt, 0) (SPEC §1.3); its length is the NFE.

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
        if is_last_step(index, num_steps, t_next, stop_t):
            break
    return grid


def _predict(phi: Phi, y_t: Tensor, times: Tensor) -> Tensor:
    """x0_hat = Phi(y_t, t), checked to have the shape of y_t."""
    x0_hat = phi(y_t, times)
    if x0_hat.shape != y_t.shape:
        raise ValueError(f"phi must return x0_hat of the input's shape {tuple(y_t.shape)}, got {tuple(x0_hat.shape)}")
    return x0_hat


def _trackable(x: Tensor) -> Tensor:
    """`x`, or a normal copy of it when it is an inference tensor, which autograd cannot record."""
    return x.clone() if x.is_inference() else x


def _guidance_scale(guidance: str, step: float, residual: Tensor, sigma_1: Tensor) -> Tensor:
    """Per-image eta: std-scaled step * 0.5 / sigma_1^2, or error-scaled step / ||y - A_1(x0_hat)|| (SPEC §1.3)."""
    if guidance == "std":
        return step * 0.5 / sigma_1.square()
    return step / residual.flatten(1).norm(dim=1).clamp_min(torch.finfo(residual.dtype).tiny)


@dataclass(frozen=True)
class DiracSampler:
    """Settings of the Dirac reverse process (SPEC §1.3, presets §1.3b); calling it runs paper Alg. 1.

    `auto_stop` asks the caller to replace `stop_t` by the best stop on validation data (`best_stop_t`):
    the PSNR peak for Dirac-DO, the perception minimum for Dirac-PO; `auto_guidance` likewise picks
    `guidance_step` from `guidance_grid` (SPEC §1.3b: the reference's step sizes do not carry over).
    """

    dt: float = 0.02
    stop_t: float = 0.0
    output: Output = "x0_hat"
    incremental: str = "look_ahead"
    guidance: Guidance = "none"
    guidance_step: float = 0.5
    small_delta: float = 0.005
    auto_stop: bool = False
    auto_guidance: bool = False
    guidance_grid: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "guidance_grid", tuple(float(step) for step in self.guidance_grid))
        check_interval("dt", self.dt, 0.0, 1.0, open_low=True)
        check_interval("stop_t", self.stop_t, 0.0, 1.0)
        check_choice("output", self.output, OUTPUTS)
        check_choice("incremental reconstruction", self.incremental, INCREMENTAL_VARIANTS)
        check_choice("guidance", self.guidance, GUIDANCES)
        check_interval("guidance_step", self.guidance_step, 0.0, float("inf"))
        check_interval("small_delta", self.small_delta, 0.0, 1.0, open_low=True)
        for flag in ("auto_stop", "auto_guidance"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        for step in self.guidance_grid:
            check_interval("guidance_grid entry", step, 0.0, float("inf"))
        if self.auto_guidance and (self.guidance == "none" or not self.guidance_grid):
            raise ValueError("auto_guidance tunes guidance_step on validation data: it needs guidance std or error "
                             "and a non-empty guidance_grid")

    @property
    def nfe(self) -> int:
        """Number of phi evaluations of one run: the length of the time grid up to stop_t."""
        return len(time_grid(self.dt, self.stop_t))

    def with_stop(self, stop_t: float) -> DiracSampler:
        """This sampler with the fixed stop `stop_t` (e.g. DO's automatic stop from `best_stop_t`); auto_stop off."""
        return replace(self, stop_t=stop_t, auto_stop=False)

    @torch.no_grad()
    def __call__(
        self,
        phi: Phi,
        y: Tensor,
        degradation: Degradation,
        noise: NoiseSchedule,
        generator: Generators = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """Reverse the degradation process from the measurement y = y_1; the last x0_hat or iterate (SPEC §1.3)."""
        degradation.check_image(y)
        check_generators(generator, y.shape[0])
        grid = time_grid(self.dt, self.stop_t)
        num_steps = len(time_grid(self.dt))
        with autocast_network_only(y.device.type) as under_autocast:
            phi = under_autocast(phi)
            y_t = y.float()
            for index, (t, t_next) in enumerate(grid):
                is_last = index == len(grid) - 1
                if is_last and self.output == "x0_hat" and callback is None:
                    return _predict(phi, y_t, y_t.new_full((y.shape[0],), t))
                x0_hat, y_next = self._step(phi, y_t, y, degradation, noise, t, t_next, generator)
                if callback is not None:
                    callback(StepState(index, t, t_next, y_t, x0_hat, y_next, is_last, num_steps))
                y_t = y_next
        return x0_hat if self.output == "x0_hat" else y_t

    def _step(
        self, phi: Phi, y_t: Tensor, y: Tensor, degradation: Degradation, noise: NoiseSchedule,
        t: float, t_next: float, generator: Generators,
    ) -> tuple[Tensor, Tensor]:
        """x0_hat and y_t' = y_t + R + D + G + sqrt(s_t^2 - s_t'^2) z for one step from t to t_next (SPEC §1.3);
        R uses the step's actual length t - t_next (shorter than dt on the last step when dt does not divide 1)."""
        times = y_t.new_full((y_t.shape[0],), t)
        x0_hat, ascent = self._denoise(phi, y_t, times, y, degradation, noise)
        y_hat = degradation.apply(x0_hat, times)
        var_t, var_next = noise.sigma(times).square(), noise.sigma(times.new_full(times.shape, t_next)).square()
        released = var_t - var_next
        reconstruction = incremental_reconstruction(
            self.incremental, degradation, x0_hat, y_hat, t, t - t_next, self.small_delta)
        denoising = per_image(released / var_t) * (y_hat - y_t)
        y_next = y_t + reconstruction + denoising + per_image(released.sqrt()) * gaussian_like(y_t, generator)
        if ascent is not None:
            y_next = y_next - per_image(released) * ascent
        return x0_hat, y_next

    def _denoise(
        self, phi: Phi, y_t: Tensor, times: Tensor, y: Tensor, degradation: Degradation, noise: NoiseSchedule
    ) -> tuple[Tensor, Tensor | None]:
        """x0_hat = phi(y_t, t) and, if guided, eta * grad_{y_t} ||y - A_1(x0_hat)||^2 through phi (SPEC §1.3b)."""
        if self.guidance == "none":
            return _predict(phi, y_t, times), None
        with torch.inference_mode(False), torch.enable_grad():  # Lightning validates under inference mode
            y_in = _trackable(y_t).detach().requires_grad_(True)
            times, y = _trackable(times), _trackable(y)
            x0_hat = _predict(phi, y_in, times)
            if not x0_hat.requires_grad:
                raise ValueError("guidance differentiates phi in y_t, but phi's output carries no gradient "
                                 "(does phi ignore y_t or disable gradients itself?)")
            ones = torch.ones_like(times)
            residual = y - degradation.apply(x0_hat, ones)
            (grad,) = torch.autograd.grad(residual.square().sum(), y_in)
        eta = _guidance_scale(self.guidance, self.guidance_step, residual.detach(), noise.sigma(ones))
        return x0_hat.detach(), per_image(eta) * grad


def dirac_reverse(
    phi: Phi,
    y: Tensor,
    degradation: Degradation,
    noise: NoiseSchedule,
    *,
    dt: float = 0.02,
    stop_t: float = 0.0,
    output: Output = "x0_hat",
    incremental: str = "look_ahead",
    guidance: Guidance = "none",
    guidance_step: float = 0.5,
    small_delta: float = 0.005,
    generator: Generators = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """The Dirac reverse process (SPEC §1.3, paper Alg. 1) as a pure function of its settings; see `DiracSampler`.

    Each step: x0_hat = phi(y_t, t), y_hat = A_t(x0_hat), y_t' = y_t + R + D + G + sqrt(s_t^2 - s_t'^2) z with
    D = (s_t^2 - s_t'^2) / s_t^2 (y_hat - y_t) and G descending ||y - A_1(x0_hat)||^2 (SPEC §1.3b).
    `generator` is one torch generator or one per image (per-image noise independent of the batch).
    """
    sampler = DiracSampler(dt=dt, stop_t=stop_t, output=output, incremental=incremental, guidance=guidance,
                           guidance_step=guidance_step, small_delta=small_delta)
    return sampler(phi, y, degradation, noise, generator=generator, callback=callback)
