"""Test-local degradations with closed forms for the sampler tests."""

import torch
from torch import Tensor

from dirac.degradations.base import Degradation


class Fading(Degradation):
    """A_t(x) = (1 - 0.5 t) x: linear in x and in t, so every incremental reconstruction is exact."""

    def apply(self, x: Tensor, t: Tensor) -> Tensor:
        return (1 - 0.5 * t).view(-1, 1, 1, 1) * x


class SmoothMask(Degradation):
    """A_t(x) = exp(-t w) * x with a fixed ramp w in [0, 2]: a masking family, smooth (not linear) in t."""

    def __init__(self, channels: int, image_size: int) -> None:
        super().__init__(channels, image_size)
        ramp = torch.linspace(0, 2, image_size * image_size).view(1, 1, image_size, image_size)
        self.register_buffer("weight", ramp.expand(1, channels, image_size, image_size).clone())

    def apply(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.exp(-t.view(-1, 1, 1, 1) * self.weight) * x
