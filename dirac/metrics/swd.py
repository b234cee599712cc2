"""Sliced Wasserstein distance between distributions of small image patches: a perception measure needing no weights."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from dirac.metrics.distortion import check_pair, clip01
from dirac.seeding import image_generators


@lru_cache(maxsize=16)
def projection_directions(dim: int, projections: int, seed: int) -> Tensor:
    """`(dim, projections)` unit directions drawn from a generator seeded with `seed` (CPU, cached)."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(dim, projections, generator=generator, dtype=torch.float64)
    return (directions / directions.norm(dim=0, keepdim=True)).float()


def patch_positions(x: Tensor, patch: int, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Row and column indices `(B, count, patch, 1)`, `(B, count, 1, patch)` of `count` random patches per image."""
    batch, _, height, width = x.shape
    if patch < 1 or patch > min(height, width):
        raise ValueError(f"patch size must lie in [1, {min(height, width)}] for {height}x{width} images, got {patch}")
    offsets = torch.arange(patch)
    rows = torch.randint(0, height - patch + 1, (batch, count), generator=generator)[..., None] + offsets
    cols = torch.randint(0, width - patch + 1, (batch, count), generator=generator)[..., None] + offsets
    return rows[..., :, None].to(x.device), cols[..., None, :].to(x.device)


def gather_patches(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """The patches of `x` at `patch_positions`, flattened: `(B, count, C·patch²)`."""
    images = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    return x[images, :, rows, cols].reshape(x.shape[0], rows.shape[1], -1)


def _quantiles(values: Tensor, levels: int) -> Tensor:
    """Linearly interpolated quantiles at `levels` mid-point levels of sorted `values` along dim 1."""
    size = values.shape[1]
    if size == levels:
        return values
    position = ((torch.arange(levels, device=values.device) + 0.5) * size / levels - 0.5).clamp(0, size - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=size - 1)
    weight = (position - low)[None, :, None].to(values.dtype)
    return values[:, low] * (1 - weight) + values[:, high] * weight


def sliced_wasserstein(a: Tensor, b: Tensor, directions: Tensor) -> Tensor:
    """SW_2 = sqrt(mean over directions of W_2² of the projections) between `a` `(G, N, D)` and `b` `(G, M, D)`."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"point sets must be (G, N, D) and (G, M, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    levels = max(a.shape[1], b.shape[1])
    projected_a = _quantiles((a @ directions).sort(dim=1).values, levels)
    projected_b = _quantiles((b @ directions).sort(dim=1).values, levels)
    return (projected_a - projected_b).square().mean(dim=(1, 2)).sqrt()


def _seeded_patches(x: Tensor, patch: int, per_image: int, seed: int) -> Tensor:
    """Patches of the clipped images `x` at positions drawn from a generator seeded with `seed`."""
    rows, cols = patch_positions(x, patch, per_image, torch.Generator().manual_seed(seed))
    return gather_patches(clip01(x), rows, cols)


def _patch_sets(pred: Tensor, target: Tensor, patch: int, per_image: int, seed: int) -> tuple[Tensor, Tensor]:
    """Patches of the `pred` and `target` sets; the positions are shared when the sets have one size."""
    if pred.ndim != 4 or target.ndim != 4 or pred.shape[1:] != target.shape[1:]:
        raise ValueError(f"pred and target must be (N, C, H, W) sets of one image shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    return _seeded_patches(pred, patch, per_image, seed), _seeded_patches(target, patch, per_image, seed)


def patch_swd(pred: Tensor, target: Tensor, patch: int = 7, projections: int = 256, seed: int = 0,
              patches_per_image: int = 256) -> Tensor:
    """Patch SWD between a set of outputs and a set of targets: the weight-free perception measure (SPEC §4)."""
    pred_patches, target_patches = _patch_sets(pred, target, patch, patches_per_image, seed)
    directions = projection_directions(pred_patches.shape[-1], projections, seed).to(pred.device)
    return sliced_wasserstein(pred_patches.flatten(0, 1)[None], target_patches.flatten(0, 1)[None], directions)[0]


def patch_swd_per_image(pred: Tensor, target: Tensor, patch: int = 7, projections: int = 256, seed: int = 0,
                        patches_per_image: int = 256) -> Tensor:
    """Per-image patch SWD between the patch distributions of paired images (SPEC §4), shape `(B,)`."""
    check_pair(pred, target)
    pred_patches, target_patches = _patch_sets(pred, target, patch, patches_per_image, seed)
    directions = projection_directions(pred_patches.shape[-1], projections, seed).to(pred.device)
    return sliced_wasserstein(pred_patches, target_patches, directions)


class PatchSWD(Metric):
    """Running patch SWD (as `patch_swd`) over a bounded uniform random subset of the patches seen.

    Every patch gets a random key and the `max_patches` smallest keys are kept (bottom-k sampling), so the
    kept set is a uniform sample of all patches seen; merging ranks under DDP and keeping the smallest
    keys again gives the same kind of sample over all ranks.
    """

    full_state_update = False

    def __init__(self, patch: int = 7, projections: int = 256, patches_per_image: int = 256,
                 max_patches: int = 16384, seed: int = 0) -> None:
        super().__init__()
        if min(patch, projections, patches_per_image, max_patches) < 1:
            raise ValueError("patch, projections, patches_per_image and max_patches must all be positive")
        self.patch, self.projections, self.seed = patch, projections, seed
        self.patches_per_image, self.max_patches = patches_per_image, max_patches
        self.add_state("pred_patches", [], dist_reduce_fx="cat")
        self.add_state("target_patches", [], dist_reduce_fx="cat")
        self.add_state("keys", [], dist_reduce_fx="cat")
        self._generator: torch.Generator | None = None

    def _rng(self) -> torch.Generator:
        """The patch-position and key generator, seeded with `seed + rank` on first use after a reset."""
        if self._generator is None:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            self._generator = torch.Generator().manual_seed(self.seed + rank)
        return self._generator

    def update(self, pred: Tensor, target: Tensor, names: Sequence[str] | None = None) -> None:
        """Add the patches of a batch of outputs and targets (same positions in both) to the kept subset. With
        `names`, each image draws its positions and keys from its own generator (seed, name), so the kept set does
        not depend on batching, order or the number of ranks."""
        check_pair(pred, target)
        if names is None:
            rows, cols = patch_positions(pred, self.patch, self.patches_per_image, self._rng())
            keys = torch.rand(pred.shape[0] * self.patches_per_image, generator=self._rng())
        else:
            rows, cols, keys = self._per_image_draws(pred, names)
        pred_patches = gather_patches(clip01(pred), rows, cols).flatten(0, 1)
        target_patches = gather_patches(clip01(target), rows, cols).flatten(0, 1)
        kept_pred, kept_target, kept_keys = self._bottom_k(
            torch.cat([*self.pred_patches, pred_patches]), torch.cat([*self.target_patches, target_patches]),
            torch.cat([*self.keys, keys.to(pred.device)]),
        )
        self.pred_patches, self.target_patches, self.keys = [kept_pred], [kept_target], [kept_keys]

    def _per_image_draws(self, pred: Tensor, names: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """Patch rows, columns and keys of each image from the generator of (seed, its name)."""
        draws = []
        for image, generator in zip(pred, image_generators(self.seed, names, "swd")):
            rows, cols = patch_positions(image[None], self.patch, self.patches_per_image, generator)
            draws.append((rows, cols, torch.rand(self.patches_per_image, generator=generator)))
        rows, cols, keys = zip(*draws)
        return torch.cat(rows), torch.cat(cols), torch.cat(keys)

    def _bottom_k(self, pred: Tensor, target: Tensor, keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The rows with the `max_patches` smallest keys."""
        if keys.shape[0] <= self.max_patches:
            return pred, target, keys
        index = keys.topk(self.max_patches, largest=False).indices
        return pred[index], target[index], keys[index]

    def compute(self) -> Tensor:
        """SW_2 between the kept output and target patch sets."""
        pred, target, keys = self._bottom_k(dim_zero_cat(self.pred_patches), dim_zero_cat(self.target_patches),
                                            dim_zero_cat(self.keys))
        order = keys.argsort()  # a fixed order of the kept patches, whatever order they arrived in
        pred, target = pred[order], target[order]
        directions = projection_directions(pred.shape[-1], self.projections, self.seed).to(pred.device)
        return sliced_wasserstein(pred[None], target[None], directions)[0]

    def reset(self) -> None:
        """Drop the kept patches and restart the generator from the seed."""
        super().reset()
        self._generator = None
