"""Variance-preserving DDPM models as VE denoisers by the change of variables x_t = sqrt(abar) x_ve
(Karras et al. 2022, §2 / Table 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from dirac.denoisers.base import DenoiserModule, from_centred, to_centred

PredictionType = Literal["epsilon", "v_prediction", "sample"]
TimestepMode = Literal["interpolate", "nearest"]
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def vp_sigmas(alphas_cumprod: Tensor) -> Tensor:
    """VE noise levels of the discrete VP steps, sigma_i = sqrt((1 - abar_i) / abar_i) (model units,
    increasing in i)."""
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


def sigma_to_timestep(sigma: Tensor, sigmas: Tensor, mode: TimestepMode = "interpolate") -> Tensor:
    """Continuous timesteps `(B,)` for noise levels `sigma` by piecewise-linear interpolation of log sigma over the
    schedule `sigmas` (increasing), clamped to [0, T - 1]; `nearest` rounds to the step nearest in log sigma."""
    log_sigmas = sigmas.log()
    query = sigma.to(sigmas.dtype).log().clamp(log_sigmas[0], log_sigmas[-1])
    upper = torch.searchsorted(log_sigmas, query.contiguous(), right=True).clamp(1, len(sigmas) - 1)
    lower = upper - 1
    fraction = (query - log_sigmas[lower]) / (log_sigmas[upper] - log_sigmas[lower])
    timestep = lower + fraction
    return timestep.round() if mode == "nearest" else timestep


class VPDenoiser(DenoiserModule):
    """D(x, sigma) from a VP model `model(x_t, timestep)` trained on [-1, 1] data with cumulative alphas `abar` (T,).

    In model units x_m = 2 x - 1 and sigma_m = 2 sigma; the VE image x_m = x0_m + sigma_m n is the VP
    input x_t = sqrt(abar) x_m with abar = 1 / (1 + sigma_m^2) (exact for every sigma), at the timestep
    of `sigma_to_timestep` (`timestep_mode`: interpolated, fractional timesteps, or the nearest step;
    sigma beyond the schedule's range uses its end step). The prediction becomes x0_m by
    epsilon: x_m - sigma_m eps; v_prediction: sqrt(abar) x_t - sqrt(1 - abar) v; sample: the output itself.
    """

    sigmas: Tensor

    def __init__(self, model: Callable[[Tensor, Tensor], Tensor], alphas_cumprod: Tensor,
                 prediction_type: PredictionType = "epsilon", timestep_mode: TimestepMode = "interpolate") -> None:
        super().__init__()
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64).flatten()
        if len(alphas_cumprod) < 2 or not bool(((alphas_cumprod > 0) & (alphas_cumprod < 1)).all()):
            raise ValueError("alphas_cumprod must have at least two entries, all in (0, 1)")
        if not bool((alphas_cumprod.diff() < 0).all()):
            raise ValueError("alphas_cumprod must be strictly decreasing (noise grows with the timestep)")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if timestep_mode not in ("interpolate", "nearest"):
            raise ValueError(f"timestep_mode must be 'interpolate' or 'nearest', got {timestep_mode!r}")
        self.model = model
        self.prediction_type, self.timestep_mode = prediction_type, timestep_mode
        self.register_buffer("sigmas", vp_sigmas(alphas_cumprod))

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """x0_hat in [0, 1] from the VP model's prediction at the matching timestep."""
        x_m, sigma_m = to_centred(x, sigma)
        scale = (1 + sigma_m**2).rsqrt()[:, None, None, None]  # sqrt(abar)
        x_t = scale * x_m
        timestep = sigma_to_timestep(sigma_m, self.sigmas, self.timestep_mode).to(x.dtype)
        out = self.model(x_t, timestep).to(x.dtype)
        if self.prediction_type == "epsilon":
            x0_m = x_m - sigma_m[:, None, None, None] * out
        elif self.prediction_type == "v_prediction":
            x0_m = scale * x_t - (1 - scale**2).sqrt() * out
        else:
            x0_m = out
        return from_centred(x0_m)
