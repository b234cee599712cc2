"""Train-time augmentation of image batches (SPEC §4): the symmetries of the square, drawn per image.

The reference trains without augmentation; this project adds it as an option for small datasets such as the
embedded photographs (`data.augment`, off unless an experiment enables it). Blur, inpainting masks with a
symmetric profile and noise commute with these symmetries, so the degradation's statistics are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Dihedral(nn.Module):
    """Random horizontal flips and 90° rotations of a `(B, C, S, S)` batch, one draw per image, seeded (SPEC §4)."""

    def __init__(self, flips: bool = True, rotations: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.flips, self.rotations = bool(flips), bool(rotations)
        self.generator = torch.Generator().manual_seed(int(seed))

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

    def random_state(self) -> Tensor:
        """The generator's state (saved with the DataModule so that a resumed run continues the same draws)."""
        return self.generator.get_state()

    def set_random_state(self, state: Tensor) -> None:
        """Restore the generator's state."""
        self.generator.set_state(state)
