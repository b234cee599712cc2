"""Validation of image batches entering a model (SPEC §4: images in [0, 1], batches `(B, C, H, W)`)."""

from __future__ import annotations

import torch
from torch import Tensor


def check_batch(images: Tensor, channels: int, image_size: int, atol: float = 1e-3) -> Tensor:
    """Return `images` if it is a finite `(B, channels, image_size, image_size)` batch in [0, 1] (up to `atol`),
    else raise ValueError (SPEC §4).

    The error names the first offending sample; the check costs one device-to-host sync.
    """
    expected = (channels, image_size, image_size)
    if not isinstance(images, Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != expected:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"expected an image batch of shape (B, {channels}, {image_size}, {image_size}), got {shape}")
    flat = images.detach().flatten(1)
    finite = torch.isfinite(flat).all(dim=1)
    in_range = ((flat >= -atol) & (flat <= 1 + atol)).all(dim=1)
    bad = ~(finite & in_range)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        if not bool(finite[index]):
            raise ValueError(f"image batch sample {index} contains NaN or Inf values")
        low, high = float(flat[index].min()), float(flat[index].max())
        raise ValueError(f"image batch sample {index} has values in [{low:.4g}, {high:.4g}], outside [0, 1] "
                         f"(tolerance {atol})")
    return images
