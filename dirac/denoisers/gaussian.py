"""The analytic denoiser of a Gaussian source (SPEC §3, Gaussian check)."""

from __future__ import annotations

import torch
from torch import Tensor

from dirac.denoisers.base import DenoiserModule


class GaussianDenoiser(DenoiserModule):
    """Exact posterior mean for x0 ~ N(mu, diag v): D(x, sigma) = mu + v / (v + sigma^2) (x - mu) (SPEC §3).

    `mean` and `variance` are floats or tensors broadcastable to one image `(C, H, W)`; variance >= 0.
    """

    mean: Tensor
    variance: Tensor

    def __init__(self, mean: Tensor | float, variance: Tensor | float) -> None:
        super().__init__()
        mean, variance = as_float_tensor(mean), as_float_tensor(variance)
        if mean.ndim > 3 or variance.ndim > 3:
            raise ValueError(f"mean and variance must broadcast to one (C, H, W) image, got shapes "
                             f"{tuple(mean.shape)}, {tuple(variance.shape)}")
        if not bool((variance >= 0).all()):
            raise ValueError("the Gaussian source's variance must be >= 0")
        self.register_buffer("mean", mean)
        self.register_buffer("variance", variance)

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """mu + v / (v + sigma^2) (x - mu), the MMSE estimate of x0 from x = x0 + sigma n."""
        mean, variance = self.mean.to(x.dtype), self.variance.to(x.dtype)
        return mean + variance / (variance + sigma[:, None, None, None] ** 2) * (x - mean)


def as_float_tensor(value: Tensor | float) -> Tensor:
    """A float or tensor as a floating tensor, keeping a floating tensor's dtype (the default dtype otherwise)."""
    value = torch.as_tensor(value)
    return value if value.is_floating_point() else value.to(torch.get_default_dtype())
