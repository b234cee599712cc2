"""The denoiser protocol `D(x, sigma) -> x0_hat` and its input checks (ARCHITECTURE "Denoiser")."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

CENTRED_SCALE = 2.0  # [0, 1] data -> [-1, 1] model range: x_m = 2 x - 1, sigma_m = 2 sigma


@runtime_checkable
class Denoiser(Protocol):
    """Anything that maps noisy images `x = x0 + sigma n` of shape `(B, C, H, W)` and noise levels `(B,)` to an
    estimate of x0."""

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        """x0_hat = D(x, sigma), in the data range of x."""
        ...


def check_denoiser_inputs(x: Tensor, sigma: Tensor) -> None:
    """Raise a ValueError unless x is a `(B, C, H, W)` batch and sigma a `(B,)` tensor of finite positive noise
    levels."""
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise ValueError("x must be a (B, C, H, W) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not isinstance(sigma, Tensor) or sigma.shape != (x.shape[0],):
        shape = tuple(sigma.shape) if isinstance(sigma, Tensor) else type(sigma).__name__
        raise ValueError(f"sigma must be a tensor of shape ({x.shape[0]},), one noise level per image, got {shape}")
    if not bool(((sigma > 0) & sigma.isfinite()).all()):
        raise ValueError(f"sigma must be finite and > 0, got min {sigma.min().item():.4g}, "
                         f"max {sigma.max().item():.4g}")


def to_centred(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """([0, 1] image, noise level) -> (2 x - 1, 2 sigma) in the [-1, 1] model range."""
    return CENTRED_SCALE * x - 1, CENTRED_SCALE * sigma


def from_centred(x: Tensor) -> Tensor:
    """A [-1, 1] model-range image back to [0, 1]: (x + 1) / 2."""
    return (x + 1) / CENTRED_SCALE


class DenoiserModule(nn.Module, ABC):
    """An nn.Module denoiser: `forward(x, sigma)` checks its inputs and calls `denoise`."""

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """x0_hat = D(x, sigma) for x = x0 + sigma n (VE), after `check_denoiser_inputs`."""
        check_denoiser_inputs(x, sigma)
        return self.denoise(x, sigma)

    @abstractmethod
    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """D(x, sigma) on checked inputs."""
