"""Image transforms of the data layer (SPEC §4): file decoding, centre-crop to square, resize, channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

# ITU-R BT.601 luma weights, the usual RGB -> grayscale conversion.
_LUMA = (0.299, 0.587, 0.114)


def check_channels(channels: int) -> int:
    """Return `channels` if it is 1 (grayscale) or 3 (RGB), else raise a ValueError (SPEC §4)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return int(channels)


def to_float(image: Tensor) -> Tensor:
    """A uint8 (or float) image as a new float32 tensor in [0, 1] (never a view of the input) (SPEC §4)."""
    if image.dtype == torch.uint8:
        return image.to(torch.float32) / 255.0
    return image.to(torch.float32, copy=True)


def center_square(image: Tensor) -> Tensor:
    """Centre crop of a `(..., H, W)` image to a square with side min(H, W) (SPEC §4)."""
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[..., top : top + side, left : left + side]


def square_resize(image: Tensor, image_size: int) -> Tensor:
    """Centre-crop a `(C, H, W)` image to a square and resize it to `image_size` (bilinear, antialiased) (SPEC §4)."""
    image = to_float(center_square(image))
    if image.shape[-1] == image_size:
        return image.contiguous()
    resized = F.interpolate(image[None], size=(image_size, image_size), mode="bilinear", antialias=True,
                            align_corners=False)
    return resized[0].clamp_(0.0, 1.0)


def to_channels(image: Tensor, channels: int) -> Tensor:
    """Convert a `(..., 1 or 3, H, W)` image to `channels` channels (luma for RGB -> gray, repeat for gray -> RGB)
    (SPEC §4)."""
    have = image.shape[-3]
    if have == channels:
        return image
    if have == 3 and channels == 1:
        weights = image.new_tensor(_LUMA).view(3, 1, 1)
        return (image * weights).sum(dim=-3, keepdim=True)
    if have == 1 and channels == 3:
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).contiguous()
    raise ValueError(f"cannot convert an image with {have} channels to {channels} channels")


def read_rgb(path: Path) -> Tensor:
    """Decode an image file (any PIL mode: gray, palette, RGBA, CMYK, ...) to a uint8 `(3, H, W)` RGB tensor
    (SPEC §4)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"cannot decode image file {path}: {err}") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def is_readable_image(path: Path) -> bool:
    """Whether PIL recognises `path` as an image and its header/structure checks pass (no full decode) (SPEC §4)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception:  # PIL raises many exception types for corrupt files
        return False
    return True
