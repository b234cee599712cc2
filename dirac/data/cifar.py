"""CIFAR-10 from the standard python pickle batches in a local folder (SPEC §4)."""

from __future__ import annotations

import pickle
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dirac.data.source import ImageSource, TensorImageDataset, check_split, require_root

TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_BATCH = "test_batch"
LAYOUT = ("root/cifar-10-batches-py/{data_batch_1..5, test_batch} (root may also be the cifar-10-batches-py folder "
          "itself)")
HOW = ("Get 'CIFAR-10 python version' (cifar-10-python.tar.gz) from the CIFAR-10 page of the University of Toronto and "
       "extract it under root.")


def read_batch(path: Path) -> Tensor:
    """The images of one CIFAR pickle batch as a uint8 `(N, 3, 32, 32)` tensor (rows of 3072 bytes, R, G, B planes)
    (SPEC §4)."""
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch {str(path)!r} not found. Expected layout: {LAYOUT}. {HOW}")
    try:
        with path.open("rb") as handle:
            entry = pickle.load(handle, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (cannot unpickle: {err})") from err
    rows = entry.get(b"data") if isinstance(entry, dict) else None
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: need a dict whose b'data' holds uint8 rows "
                         "of 3072 values")
    return torch.from_numpy(rows.reshape(-1, 3, 32, 32).copy())


class Cifar10Source(ImageSource):
    """CIFAR-10: train = data_batch_1..5 minus a seeded hold-out of `val_size` images (val); test = test_batch
    (SPEC §4).

    Names are `train_<index>` / `test_<index>` with the index in the official order, so they are stable.
    `val_size = 0` trains on all 50,000 images and leaves val empty.
    """

    def __init__(self, root: str | Path | None, image_size: int = 32, val_size: int = 1000,
                 split_seed: int = 0) -> None:
        self.root = require_root(root, "CIFAR-10", LAYOUT, HOW)
        self.image_size = int(image_size)
        self.val_size = int(val_size)
        self.split_seed = int(split_seed)

    @cached_property
    def folder(self) -> Path:
        """The folder holding the batches: `root/cifar-10-batches-py` or `root` itself."""
        nested = self.root / "cifar-10-batches-py"
        return nested if nested.is_dir() else self.root

    @cached_property
    def _train_images(self) -> Tensor:
        images = torch.cat([read_batch(self.folder / name) for name in TRAIN_BATCHES])
        if not 0 <= self.val_size < len(images):
            raise ValueError(f"val_size must be in [0, {len(images)}), got {self.val_size}")
        return images

    def _train_val_indices(self) -> dict[str, Tensor]:
        order = torch.randperm(len(self._train_images), generator=torch.Generator().manual_seed(self.split_seed))
        return {"val": order[: self.val_size].sort().values, "train": order[self.val_size :].sort().values}

    def dataset(self, split: str) -> TensorImageDataset:
        """The images of `split` (train, val or test) as an in-memory uint8 dataset."""
        if check_split(split) == "test":
            images = read_batch(self.folder / TEST_BATCH)
            return TensorImageDataset(images, [f"test_{index:05d}" for index in range(len(images))], self.image_size)
        indices = self._train_val_indices()[split]
        return TensorImageDataset(self._train_images[indices], [f"train_{index:05d}" for index in indices.tolist()],
                                  self.image_size)
