"""Block-average super-resolution with a continuous severity (SPEC §1.1 and §2, block averaging)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dirac.degradations.operators import SVD, SymmetricOperator, SymmetricSVD, as_severities
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

    def __init__(self, channels: int, image_size: int, factor: int = 4,
                 schedule: SeverityMap | str | Path | None = None) -> None:
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


class HaarSVD(SymmetricSVD):
    """The orthonormal 2-D Haar transform of `depth` levels, which diagonalises every block-average projector.

    Spectral layout (Mallat): level-l detail coefficients fill the three quadrants of the top-left
    (H / 2^l)-square outside its top-left (H / 2^(l+1))-square; the coarsest averages sit in the corner.
    """

    def __init__(self, depth: int, s: Tensor) -> None:
        super().__init__(s)
        self.depth = depth

    def V_T(self, x: Tensor) -> Tensor:
        """Haar analysis, finest level first."""
        for level in range(self.depth):
            n = x.shape[-1] >> level
            block = x[..., :n, :n]
            coefficients = hadamard4(block[..., 0::2, 0::2], block[..., 0::2, 1::2], block[..., 1::2, 0::2],
                                     block[..., 1::2, 1::2])
            x = replace_corner(x, tile_quadrants(*coefficients))
        return x

    def V(self, z: Tensor) -> Tensor:
        """Haar synthesis, coarsest level first (the inverse and transpose of V_T)."""
        for level in reversed(range(self.depth)):
            n, h = z.shape[-1] >> level, z.shape[-1] >> (level + 1)
            block = z[..., :n, :n]
            pixels = hadamard4(block[..., :h, :h], block[..., :h, h:], block[..., h:, :h], block[..., h:, h:])
            z = replace_corner(z, interleave(*pixels))
        return z


def hadamard4(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The orthonormal symmetric 4x4 Haar/Hadamard step on the pixels of 2x2 blocks (its own inverse)."""
    return (a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2


def tile_quadrants(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """[[a, b], [c, d]] as one image of twice the size."""
    return torch.cat([torch.cat([a, b], dim=-1), torch.cat([c, d], dim=-1)], dim=-2)


def interleave(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """The image whose 2x2 blocks are [[a, b], [c, d]] elementwise (the inverse of strided 2x2 slicing)."""
    rows = torch.stack([torch.stack([a, b], dim=-1), torch.stack([c, d], dim=-1)], dim=-3)
    return rows.reshape(*a.shape[:-2], 2 * a.shape[-2], 2 * a.shape[-1])


def replace_corner(x: Tensor, block: Tensor) -> Tensor:
    """A copy of x with its top-left square replaced by `block` (differentiable)."""
    x = x.clone()
    x[..., : block.shape[-2], : block.shape[-1]] = block
    return x


class BlockAverageOperator(SymmetricOperator):
    """A = sum_k w_k P_k, P_k the block-average projector of size 2^k (BlockSuperResolution at fixed severities).

    The P_k are nested, so the Haar transform diagonalises A: level-l details have eigenvalue
    w_0 + ... + w_l and the coarsest averages eigenvalue sum_k w_k = 1.
    """

    def __init__(self, degradation: BlockSuperResolution, t: Tensor | float, weights: Tensor) -> None:
        super().__init__(degradation, t)
        self.weights = weights

    def build_svd(self) -> SVD:
        """Haar SVD of depth log2(factor) with the cumulative hat weights as singular values."""
        depth, size = self.weights.shape[1] - 1, self.degradation.image_size
        cumulative = self.weights.cumsum(dim=1)
        s = cumulative[:, :1, None, None].repeat(1, 1, size, size)
        for level in range(1, depth + 1):
            s[..., : size >> level, : size >> level] = cumulative[:, level, None, None, None]
        return HaarSVD(depth, s)
