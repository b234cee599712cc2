"""The 2-D toy networks of RGM (SPEC §2 "2-D toy"; rgm.md §6): 3 × (Linear → Tanh), 32 hidden, then a linear head."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def tanh_mlp(in_features: int, hidden: int, layers: int = 3) -> nn.Sequential:
    """`layers` × (Linear → Tanh) from in_features to `hidden` features."""
    blocks: list[nn.Module] = []
    for index in range(layers):
        blocks += [nn.Linear(in_features if index == 0 else hidden, hidden), nn.Tanh()]
    return nn.Sequential(*blocks)


def check_points(x: Tensor, dim: int, who: str) -> None:
    """Refuse anything but a `(B, dim)` batch of points (e.g. images given to a toy network)."""
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"the toy {who} takes (batch, {dim}) points, got a tensor of shape {tuple(x.shape)}; "
                         "image data needs an image generator/discriminator, not the 2-D toy MLP")


class ToyGenerator(nn.Module):
    """G(x_k, z, k) → x̂_0: concat[x_k, k / N, z] → 3 × (Linear → Tanh) → Linear(hidden, dim) (rgm.md §6)."""

    def __init__(self, dim: int = 2, nz: int = 100, hidden: int = 32, steps: int = 4, layers: int = 3) -> None:
        super().__init__()
        self.dim, self.nz, self.steps = int(dim), int(nz), int(steps)
        self.sample_shape = (self.dim,)
        self.body = tanh_mlp(self.dim + 1 + self.nz, hidden, layers)
        self.head = nn.Linear(hidden, self.dim)

    def forward(self, x: Tensor, z: Tensor, k: Tensor) -> Tensor:
        """x̂_0 from level-k points x, latent z `(B, nz)` and levels k `(B,)`."""
        check_points(x, self.dim, "generator")
        label = k.to(x.dtype).view(-1, 1) / self.steps
        return self.head(self.body(torch.cat([x, label, z], dim=1)))


class ToyDiscriminator(nn.Module):
    """D(x_{k-1}, x_k, k) → logit: concat[x_{k-1}, (x_k if conditional), k / N] → 3 × (Linear → Tanh)
    → Linear(hidden, 1).
    The reference's D sees only (x_{k-1}, k) (`conditional: false`); `features` is the last hidden layer."""

    def __init__(self, dim: int = 2, hidden: int = 32, steps: int = 4, conditional: bool = False,
                 layers: int = 3) -> None:
        super().__init__()
        self.dim, self.steps, self.conditional = int(dim), int(steps), bool(conditional)
        self.feature_dim, self.sample_shape = int(hidden), (self.dim,)
        self.body = tanh_mlp(self.dim * (2 if self.conditional else 1) + 1, hidden, layers)
        self.head = nn.Linear(hidden, 1)

    def features(self, x_prev: Tensor, x_k: Tensor, k: Tensor) -> Tensor:
        """The `(B, hidden)` last hidden layer (what the MMD/DSWD priors compare when `on_features`)."""
        check_points(x_prev, self.dim, "discriminator")
        inputs = [x_prev, x_k] if self.conditional else [x_prev]
        return self.body(torch.cat([*inputs, k.to(x_prev.dtype).view(-1, 1) / self.steps], dim=1))

    def forward(self, x_prev: Tensor, x_k: Tensor, k: Tensor) -> Tensor:
        """The `(B,)` logit of level-(k−1) points x_prev (given x_k when conditional) at levels k."""
        return self.head(self.features(x_prev, x_k, k)).squeeze(1)
