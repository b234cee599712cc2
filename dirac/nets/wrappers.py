"""Denoiser-shaped wrappers `D(x, sigma)` around a backbone network (SPEC §1.2, §3)."""

from __future__ import annotations

from torch import Tensor, nn


class ResidualX0(nn.Module):
    """The residual x0-predictor `D(x, sigma) = x + net(x, sigma)` in float32 (SPEC §1.2, the Dirac Phi)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Estimate x0 from images `x` (B, C, H, W) at noise levels `sigma` (B,)."""
        if x.ndim != 4:
            raise ValueError(f"x must be a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
        return x + self.net(x, sigma).float()
