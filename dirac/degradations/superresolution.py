"""Block-average super-resolution with a continuous severity (SPEC §1.1 and §2, block averaging)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dirac.degradations.operators import BlockAverageOperator, as_severities
from dirac.degradations.scheduled import ScheduledDegradation
from dirac.degradations.schedules import SeverityMap


def block_pyramid(x: Tensor, depth: int) -> Iterator[tuple[int, Tensor]]:
    """(l, Up^l Down^l x) for l = 1..depth: each 2^l block replaced by its mean (2x2 average pooling l times),
    shown at full size by nearest upsampling; one level at a time (no stacked pyramid)."""
    if x.shape[-1] % 2**depth or x.shape[-2] % 2**depth:
        raise ValueError(f"block averaging {depth} times by 2 needs H and W divisible by {2**depth}, "
                         f"got images of shape {tuple(x.shape)}")
    pooled = x
    for level in range(1, depth + 1):
        pooled = F.avg_pool2d(pooled, 2)
        yield level, F.interpolate(pooled, scale_factor=2**level, mode="nearest")


def block_average(x: Tensor, depth: Tensor, max_depth: int) -> Tensor:
    """Up^d Down^d x per image, d = depth[b] in 0..max_depth (int `(B,)`): the 2^d block means at full size."""
    out = x
    for level, shown in block_pyramid(x, max_depth):
        out = torch.where((depth == level).view(-1, *([1] * (x.dim() - 1))), shown, out)
    return out


class BlockSuperResolution(ScheduledDegradation):
    """Replace each block by its mean, shown at full size (nearest upsampling), blended across block sizes.

    The severity c = log2 of the block size runs from 0 (identity) to log2(factor) (A_1: block average
    by `factor`). Between the integers, A is the linear blend of the block-average operators of size
    2^floor(c) and 2^ceil(c), so it is continuous and piecewise linear in c.
    """

    levels: Tensor

    def __init__(self, channels: int, image_size: int, factor: int = 4, schedule: SeverityMap | str | Path | None = None) -> None:
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of two >= 2, got {factor}")
        if image_size % factor:
            raise ValueError(f"image_size {image_size} must be divisible by the super-resolution factor {factor}")
        depth = factor.bit_length() - 1
        super().__init__(channels, image_size, 0.0, float(depth), schedule)
        self.factor = int(factor)
        self.register_buffer("levels", torch.arange(depth + 1, dtype=torch.get_default_dtype()))

    def apply_at(self, x: Tensor, c: Tensor) -> Tensor:
        """Sum over block sizes 2^k of the hat weight max(0, 1 - |c - k|) times the block-average image."""
        weights = self.level_weights(c).to(x.dtype)
        blended = weights[:, 0, None, None, None] * x
        for level, shown in block_pyramid(x, len(self.levels) - 1):
            blended = blended + weights[:, level, None, None, None] * shown
        return blended

    def level_weights(self, c: Tensor) -> Tensor:
        """Hat weights `(B, levels)` max(0, 1 - |c - k|) of the block-average operators of size 2^k."""
        return (1 - (c[:, None] - self.levels.to(c.dtype)).abs()).clamp(min=0)

    def operator(self, t: Tensor | float) -> BlockAverageOperator:
        """A_t at fixed severities: symmetric, diagonalised by the Haar transform (SPEC §1.5, §2 block averaging)."""
        t = as_severities(t)
        return BlockAverageOperator(self, t, self.level_weights(self.schedule(t)))

    def extra_signature(self) -> dict:
        """The downsampling factor at t = 1."""
        return {**super().extra_signature(), "factor": self.factor}
