"""Colorization: fade the colours into the channel mean (SPEC §1.1 and §2, colorization)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dirac.degradations.operators import SVD, SymmetricOperator, SymmetricSVD, as_severities
from dirac.degradations.scheduled import ScheduledDegradation
from dirac.degradations.schedules import SeverityMap


class Colorization(ScheduledDegradation):
    """A(x) = (1 - c) x + c mean_channels(x), c from 0 (identity) to 1 (grayscale in every channel)."""

    def __init__(self, channels: int = 3, image_size: int = 32,
                 schedule: SeverityMap | str | Path | None = None) -> None:
        if channels < 2:
            raise ValueError(f"colorization needs at least two channels, got {channels}")
        super().__init__(channels, image_size, 0.0, 1.0, schedule)

    def apply_at(self, x: Tensor, c: Tensor) -> Tensor:
        """Blend each sample with its channel mean by its weight c."""
        weight = c[:, None, None, None]
        return (1 - weight) * x + weight * x.mean(dim=1, keepdim=True)

    def operator(self, t: Tensor | float) -> ColorizationOperator:
        """A_t at fixed severities: symmetric, diagonal in a per-pixel basis led by the grey axis (SPEC §1.5)."""
        t = as_severities(t)
        return ColorizationOperator(self, t, self.schedule(t))


class ChannelSVD(SymmetricSVD):
    """The same orthogonal `(C, C)` basis at every pixel, singular values `(B, C, 1, 1)` (colour operators)."""

    def __init__(self, basis: Tensor, s: Tensor) -> None:
        super().__init__(s)
        self.basis = basis

    def V_T(self, x: Tensor) -> Tensor:
        """Per-pixel coordinates in the basis: Q^T x."""
        return torch.einsum("ck,bchw->bkhw", self.basis, x)

    def V(self, z: Tensor) -> Tensor:
        """Per-pixel Q z."""
        return torch.einsum("ck,bkhw->bchw", self.basis, z)


class ColorizationOperator(SymmetricOperator):
    """A = (1 - c) I + c P per pixel, P the projector onto the grey axis (Colorization at fixed severities).

    Eigenvalues: 1 on the grey axis 1/sqrt(C) (P's range), 1 - c on its orthogonal complement.
    """

    def __init__(self, degradation: Colorization, t: Tensor | float, weights: Tensor) -> None:
        super().__init__(degradation, t)
        self.weights = weights

    def build_svd(self) -> SVD:
        """A fixed orthonormal basis whose first vector is the grey axis; s = (1, 1 - c, ..., 1 - c)."""
        channels = self.degradation.channels
        seed = torch.eye(channels, dtype=self.weights.dtype, device=self.weights.device)
        seed[:, 0] = 1
        basis, _ = torch.linalg.qr(seed)
        s = (1 - self.weights)[:, None].repeat(1, channels)
        s[:, 0] = 1
        return ChannelSVD(basis, s[:, :, None, None])
