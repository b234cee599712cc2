"""Image grids (one column per method, one row per image) as PNGs, logged to wandb or the run folder (SPEC §4)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image, ImageDraw
from torch import Tensor
from torchvision.utils import make_grid, save_image

from dirac.reporting.files import atomic_path

LABEL_HEIGHT = 12
PADDING = 2


def _label(name: str, width: int) -> Tensor:
    """A white `(1, LABEL_HEIGHT, width)` strip with `name` written in black (clipped to the width)."""
    strip = Image.new("L", (width, LABEL_HEIGHT), 255)
    ImageDraw.Draw(strip).text((1, 0), name, fill=0)
    return torch.from_numpy(np.asarray(strip, dtype=np.float32) / 255.0)[None]


def _fit(column: Tensor, channels: int, size: tuple[int, int]) -> Tensor:
    """A column clipped to [0, 1], grey expanded to `channels` and resized (nearest) to `size`."""
    column = column.detach().float().clamp(0.0, 1.0).expand(-1, channels, -1, -1)
    return column if column.shape[-2:] == size else F.interpolate(column, size=size, mode="nearest")


def image_grid(columns: Sequence[Tensor], names: Sequence[str] | None = None) -> Tensor:
    """A `(C, H', W')` grid: one column per method (e.g. target, measurement, output), one row per image,
    with a header row of column names when `names` are given."""
    if not columns or (names is not None and len(columns) != len(names)):
        raise ValueError(f"need at least one column and one name per column, got {len(columns)} columns and names "
                         f"{names}")
    if any(column.ndim != 4 or column.shape[0] != columns[0].shape[0] for column in columns):
        raise ValueError(f"columns must be (B, C, H, W) batches of one size, got {[tuple(c.shape) for c in columns]}")
    channels = max(column.shape[1] for column in columns)
    if any(column.shape[1] not in (1, channels) for column in columns):
        raise ValueError(f"columns must have {channels} or 1 channels, got {[c.shape[1] for c in columns]}")
    size = (max(c.shape[2] for c in columns), max(c.shape[3] for c in columns))
    images = torch.stack([_fit(column, channels, size).cpu() for column in columns], dim=1).flatten(0, 1)
    grid = make_grid(images, nrow=len(columns), padding=PADDING, pad_value=1.0)
    if names is None:
        return grid
    labels = torch.stack([_label(name, size[1]).expand(channels, -1, -1) for name in names])
    header = make_grid(labels, nrow=len(columns), padding=PADDING, pad_value=1.0)
    return torch.cat([header[:, :-PADDING], grid], dim=1)


def save_png(image: Tensor, path: str | Path) -> Path:
    """Save a `(C, H, W)` image in [0, 1] (values clipped) as a PNG atomically and return the path."""
    with atomic_path(path) as temporary:
        save_image(image.detach().float().clamp(0.0, 1.0), temporary, format="png")
    return Path(path)


def save_grid(path: str | Path, columns: Sequence[Tensor], names: Sequence[str] | None = None) -> Path:
    """Save `image_grid(columns, names)` as a PNG and return the path."""
    return save_png(image_grid(columns, names), path)


def _slug(text: str) -> str:
    """`text` reduced to characters safe in file names."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "image"


def _as_image(image: Tensor) -> Tensor:
    """A clipped `(C, H, W)` CPU image; a `(B, C, H, W)` batch is tiled into one row."""
    if image.ndim not in (3, 4):
        raise ValueError(f"images must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
    image = image.detach().float().clamp(0.0, 1.0).cpu()
    return make_grid(image, nrow=image.shape[0], padding=PADDING, pad_value=1.0) if image.ndim == 4 else image


@rank_zero_only
def log_images(logger: Logger | None, key: str, images: Sequence[Tensor], captions: Sequence[str],
               step: int | None = None) -> list[Path]:
    """Log images (each `(C, H, W)`, or a `(B, C, H, W)` batch shown as one row): wandb images on a WandbLogger,
    PNGs under `<log_dir>/images` on loggers with a run folder (CSVLogger), nothing without a logger.

    Returns the PNG paths written.
    """
    if len(images) != len(captions):
        raise ValueError(f"need one caption per image, got {len(images)} images and {len(captions)} captions")
    clipped = [_as_image(image) for image in images]
    if isinstance(logger, WandbLogger):
        logger.log_image(key, clipped, step=step, caption=list(captions))
        return []
    log_dir = getattr(logger, "log_dir", None)
    if log_dir is None:
        return []
    prefix = _slug(key) + (f"-step{step:07d}" if step is not None else "")
    return [save_png(image, Path(log_dir) / "images" / f"{prefix}-{index}-{_slug(caption)}.png")
            for index, (image, caption) in enumerate(zip(clipped, captions))]
