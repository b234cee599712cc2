"""Block-average super-resolution with a continuous severity (SPEC §1.1 and §2, block averaging)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dirac.degradations.operators import BlockAverageOperator, as_severities
from dirac.degradations.scheduled import ScheduledDegradation
from dirac.degradations.schedules import SeverityMap


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
        pooled = x
        for level in range(1, len(self.levels)):
            pooled = F.avg_pool2d(pooled, 2)
            shown = F.interpolate(pooled, scale_factor=2**level, mode="nearest")  # each mean over its block
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
