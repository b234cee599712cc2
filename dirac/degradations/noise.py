"""Noise schedules sigma_t of the stochastic degradation process (SPEC §1.1)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class NoiseSchedule(nn.Module, ABC):
    """Maps severities `t` of shape `(B,)` to noise stds `sigma_t` of shape `(B,)`."""

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """sigma_t for a tensor of times."""

    def forward(self, t: Tensor) -> Tensor:
        return self.sigma(t)

    def signature(self) -> dict:
        """What a checkpoint must agree on to reuse this schedule."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}",
                **{k: float(v) for k, v in vars(self).items() if isinstance(v, float)}}


class GeometricNoise(NoiseSchedule):
    """sigma_t = sigma_min * (sigma_max / sigma_min) ** t (SPEC §1.1; reference 0.01 -> 0.05)."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 0.05) -> None:
        super().__init__()
        if not 0 < sigma_min <= sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)

    def sigma(self, t: Tensor) -> Tensor:
        """Geometric interpolation between sigma_min (t=0) and sigma_max (t=1)."""
        return self.sigma_min * torch.exp(t * math.log(self.sigma_max / self.sigma_min))


class ConstantNoise(NoiseSchedule):
    """sigma_t = sigma for every t."""

    def __init__(self, sigma: float = 0.05) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma_value = float(sigma)

    def sigma(self, t: Tensor) -> Tensor:
        """The same std at every time."""
        return torch.full_like(t, self.sigma_value)
