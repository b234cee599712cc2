"""The 2-D toy data of RGM (SPEC §2): a mixture of Gaussians with means equally spaced on a circle."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import Dataset

from dirac.data.datamodule import SplitDataModule, positive

SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}


def mixture_means(num_modes: int = 8, radius: float = 2.0) -> Tensor:
    """The `(num_modes, 2)` mixture means `radius * (cos 2πk/K, sin 2πk/K)`, k = 0..K-1 (SPEC §2, 2-D toy)."""
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).to(torch.float32)


def sample_mixture(num_samples: int, generator: torch.Generator, num_modes: int = 8, radius: float = 2.0,
                   std: float = 0.02) -> Tensor:
    """`(num_samples, 2)` draws of the equal-weight isotropic Gaussian mixture around `mixture_means` (SPEC §2)."""
    modes = torch.randint(num_modes, (num_samples,), generator=generator)
    noise = torch.randn(num_samples, 2, generator=generator)
    return mixture_means(num_modes, radius)[modes] + std * noise


class PointDataset(Dataset):
    """A fixed set of points; each item is one `(dim,)` float tensor (SPEC §2)."""

    def __init__(self, points: Tensor) -> None:
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> Tensor:
        return self.points[index]


class ToyDataModule(SplitDataModule):
    """Seeded samples of the 8-Gaussian mixture (SPEC §2): `num_samples` train points and `eval_samples` val/test
    points.

    Each split draws from its own generator (seed, seed + 1, seed + 2), so splits are independent and
    reproducible. Batches are `(batch_size, 2)` tensors (reference batch 1000).
    """

    dim = 2

    def __init__(
        self,
        num_samples: int = 100_000,
        eval_samples: int = 10_000,
        batch_size: int = 1000,
        eval_batch_size: int | None = None,
        num_modes: int = 8,
        radius: float = 2.0,
        std: float = 0.02,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed)
        if radius <= 0 or std <= 0:
            raise ValueError(f"radius and std must be positive, got radius={radius}, std={std}")
        eval_count = positive("eval_samples", eval_samples)
        self.sizes = {"train": positive("num_samples", num_samples), "val": eval_count, "test": eval_count}
        self.num_modes = positive("num_modes", num_modes)
        self.radius = float(radius)
        self.std = float(std)

    def means(self) -> Tensor:
        """The `(num_modes, 2)` mixture means of this module."""
        return mixture_means(self.num_modes, self.radius)

    def build(self, split: str) -> PointDataset:
        """The points of `split`, drawn from a generator seeded with seed + split offset."""
        generator = torch.Generator().manual_seed(self.seed + SPLIT_OFFSETS[split])
        return PointDataset(sample_mixture(self.sizes[split], generator, self.num_modes, self.radius, self.std))
