"""The MMD prior of RGM (SPEC §2 "Priors: MMD"; rgm.md §5): a fixed mixture of RBF kernels, on raw points or on
discriminator features; the loss is sqrt(ReLU(MMD²)) of the biased estimator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def rbf_mixture(x: Tensor, y: Tensor, bandwidths: Sequence[float]) -> Tensor:
    """The kernel matrix Σ_σ exp(−‖x_i − y_j‖² / (2σ²)) between flattened rows of x and y (rgm.md §5)."""
    d2 = torch.cdist(x.flatten(1), y.flatten(1)).pow(2)
    return sum(torch.exp(-d2 / (2 * float(s) ** 2)) for s in bandwidths)


def mmd2(x: Tensor, y: Tensor, bandwidths: Sequence[float], biased: bool = True) -> Tensor:
    """MMD² = E k(x, x') + E k(y, y') − 2 E k(x, y) (Gretton et al. 2012, eq. 3 biased / eq. 4 unbiased)."""
    kxx, kyy, kxy = rbf_mixture(x, x, bandwidths), rbf_mixture(y, y, bandwidths), rbf_mixture(x, y, bandwidths)
    if biased:
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    n, m = len(x), len(y)
    off = lambda k, size: (k.sum() - k.diagonal().sum()) / (size * (size - 1))  # noqa: E731
    return off(kxx, n) + off(kyy, m) - 2 * kxy.mean()


class MMDPrior(nn.Module):
    """g_phi = sqrt(ReLU(MMD²)) between real and generated level-(k−1) samples, one level per batch."""

    uses_discriminator = False
    shared_level = True   # a distance between two sets: both at the same level

    def __init__(self, bandwidths: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 10.0), on_features: bool = False) -> None:
        super().__init__()
        self.bandwidths = [float(s) for s in bandwidths]
        if not self.bandwidths or min(self.bandwidths) <= 0:
            raise ValueError(f"prior.bandwidths must be positive numbers, got {list(bandwidths)}")
        self.on_features = bool(on_features)
        self.uses_discriminator = self.on_features  # D features: D itself trained with the GAN loss

    def distance(self, real: Tensor, fake: Tensor) -> Tensor:
        """sqrt(ReLU(MMD²_biased)) of the two sets (rgm.md §5 "MMD")."""
        return torch.relu(mmd2(real, fake, self.bandwidths)).sqrt()

    def extra_repr(self) -> str:
        return f"bandwidths={self.bandwidths}, on_features={self.on_features}"
