"""Train-time augmentation of image batches (SPEC §4): the symmetries of the square and colour/intensity changes,
drawn per image.

The reference trains without augmentation; this project adds it as an option for small datasets such as the
embedded photographs (`data.augment`, off unless an experiment enables it). Blur, inpainting masks with a
symmetric profile and noise commute with these symmetries, so the degradation's statistics are unchanged; colour
changes act on the clean images before the degradation, whose operator acts on each channel alike.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SeededAugment(nn.Module):
    """An augmentation drawing from its own seeded generator, whose state a training checkpoint saves."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(int(seed))

    def random_state(self) -> Tensor:
        """The generator's state (saved with the DataModule so that a resumed run continues the same draws)."""
        return self.generator.get_state()

    def set_random_state(self, state: Tensor) -> None:
        """Restore the generator's state."""
        self.generator.set_state(state)


class Dihedral(SeededAugment):
    """Random horizontal flips and 90° rotations of a `(B, C, S, S)` batch, one draw per image, seeded (SPEC §4)."""

    def __init__(self, flips: bool = True, rotations: bool = True, seed: int = 0) -> None:
        super().__init__(seed)
        self.flips, self.rotations = bool(flips), bool(rotations)

    def forward(self, images: Tensor) -> Tensor:
        """The batch with image b flipped when flip[b] and rotated by 90° · turns[b] (all on the batch's device)."""
        if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
            raise ValueError("dihedral augmentation needs a (B, C, S, S) batch of square images, got "
                             f"{tuple(images.shape)}")
        count = images.shape[0]
        flip = torch.rand(count, generator=self.generator) < 0.5 if self.flips else torch.zeros(count, dtype=torch.bool)
        turns = torch.randint(4 if self.rotations else 1, (count,), generator=self.generator)
        flip, turns = flip.to(images.device), turns.to(images.device)
        images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        rotated = torch.stack([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
        return rotated[turns, torch.arange(count, device=images.device)]


class Colour(SeededAugment):
    """Per image of a `(B, C, H, W)` batch in [0, 1]: a random permutation of the channels (when `permute`), then
    x -> a x + b with contrast a ~ U[`contrast`, 1] and offset b ~ U[0, 1 - a], so the image stays in [0, 1]
    without clipping (SPEC §4 data range)."""

    def __init__(self, permute: bool = True, contrast: float = 0.6, seed: int = 0) -> None:
        super().__init__(seed)
        if not 0 < contrast <= 1:
            raise ValueError(f"the lowest contrast must lie in (0, 1], got {contrast}")
        self.permute, self.contrast = bool(permute), float(contrast)

    def forward(self, images: Tensor) -> Tensor:
        """The batch with image b's channels in order[b], scaled by a[b] and lifted by b[b]."""
        if images.ndim != 4:
            raise ValueError(f"colour augmentation needs a (B, C, H, W) batch, got {tuple(images.shape)}")
        count, channels = images.shape[:2]
        order = (torch.rand(count, channels, generator=self.generator).argsort(1) if self.permute
                 else torch.arange(channels).expand(count, channels))
        scale, lift = torch.rand(2, count, generator=self.generator)
        scale = self.contrast + (1 - self.contrast) * scale
        shape = (count, 1, 1, 1)
        permuted = images.gather(1, order.to(images.device)[:, :, None, None].expand_as(images))
        return permuted * scale.to(images).view(shape) + ((1 - scale) * lift).to(images).view(shape)


class Chain(nn.Module):
    """Several augmentations applied in turn (e.g. Dihedral then Colour), their random states saved together."""

    def __init__(self, augments: list[SeededAugment]) -> None:
        super().__init__()
        self.augments = nn.ModuleList(augments)

    def forward(self, images: Tensor) -> Tensor:
        """The batch through every augmentation in order."""
        for augment in self.augments:
            images = augment(images)
        return images

    def random_state(self) -> list[Tensor]:
        """Every augmentation's generator state, in order."""
        return [augment.random_state() for augment in self.augments]

    def set_random_state(self, states: list[Tensor]) -> None:
        """Restore every augmentation's generator state."""
        for augment, state in zip(self.augments, states, strict=True):
            augment.set_random_state(state)
