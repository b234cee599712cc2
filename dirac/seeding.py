"""Seeds that belong to an image, not to a batch: a stable hash of (seed, purpose, image name) (issue 15)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from torch import Tensor

Generators = torch.Generator | Sequence[torch.Generator] | None  # one generator, one per image, or the global one


def image_seed(seed: int, name: str, purpose: str) -> int:
    """A 63-bit seed from the run seed, what it is for ("measurement", "restoration", ...) and the image name (CRC-32,
    stable across processes and Python versions, unlike `hash()`)."""
    return (int(seed) * 1_000_003 + zlib.crc32(f"{purpose}/{name}".encode())) % (2**63)


def image_generators(seed: int, names: Sequence[str], purpose: str, device: torch.device | str = "cpu"
                     ) -> list[torch.Generator]:
    """One generator per image, seeded by `image_seed`, so an image's random draws do not depend on its batch, its
    position in it or the number of processes."""
    return [torch.Generator(device=device).manual_seed(image_seed(seed, name, purpose)) for name in names]


def step_generator(seed: int, rank: int, epoch: int, batch_idx: int, device: torch.device | str = "cpu"
                   ) -> torch.Generator:
    """The generator of one training batch, seeded by (train seed, process rank, epoch, batch index): training's
    draws then depend on nothing else that draws random numbers (validation's cadence, loaders, previews; issue 30)."""
    return torch.Generator(device=device).manual_seed(image_seed(seed, f"{rank}/{epoch}/{batch_idx}", "training"))


def per_image_normal(shape: torch.Size, generators: Sequence[torch.Generator], device: torch.device | str,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """z ~ N(0, I) of `shape` (B, ...), image b drawn from generators[b] alone."""
    if len(generators) != shape[0]:
        raise ValueError(f"got {len(generators)} generators for a batch of {shape[0]} images")
    return torch.stack([torch.randn(shape[1:], generator=g, device=device, dtype=dtype) for g in generators])


def check_generators(generator: Generators, batch: int) -> None:
    """A sequence of generators must hold one generator per image."""
    if isinstance(generator, Sequence) and len(generator) != batch:
        raise ValueError(f"got {len(generator)} generators for a batch of {batch} images; pass one per image or one")


def gaussian_like(like: Tensor, generator: Generators) -> Tensor:
    """z ~ N(0, I) shaped like `like`; with one generator per image, image b draws from generator b alone."""
    if isinstance(generator, Sequence):
        return per_image_normal(like.shape, generator, like.device, like.dtype)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
