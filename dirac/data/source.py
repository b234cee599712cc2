"""The image-source interface and the datasets it hands out (SPEC §4: one DataModule, many sources)."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from dirac.data.transforms import is_readable_image, read_rgb, square_resize

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def check_split(split: str) -> str:
    """Return `split` if it is one of train/val/test, else raise a ValueError (SPEC §4)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


class ImageSource(ABC):
    """A dataset on disk or in memory that yields `{"image": (3, S, S) float in [0, 1], "name": str}` per split (SPEC §4)."""

    @abstractmethod
    def dataset(self, split: str) -> Dataset:
        """The dataset of one split (train, val or test)."""


class FileImageDataset(Dataset):
    """Images read lazily from files, centre-cropped and resized to `image_size`; names are paths relative to `base` (SPEC §4)."""

    def __init__(self, files: Sequence[Path], base: Path, image_size: int) -> None:
        self.files = list(files)
        self.names = [path.relative_to(base).as_posix() for path in self.files]
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return {"image": square_resize(read_rgb(self.files[index]), self.image_size), "name": self.names[index]}


class TensorImageDataset(Dataset):
    """Images held in memory as one `(N, 3, H, W)` tensor (uint8 or float), resized to `image_size` on access (SPEC §4)."""

    def __init__(self, images: Tensor, names: Sequence[str], image_size: int) -> None:
        if images.ndim != 4 or images.shape[0] != len(names):
            raise ValueError(f"need (N, C, H, W) images and N names, got {tuple(images.shape)} and {len(names)} names")
        self.images = images
        self.names = list(names)
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        return {"image": square_resize(self.images[index], self.image_size), "name": self.names[index]}


def require_root(root: str | Path | None, dataset: str, layout: str, how: str) -> Path:
    """The existing data root as a Path, or a FileNotFoundError naming the path, the layout and how to get the data (SPEC §4)."""
    if root is None:
        raise FileNotFoundError(f"{dataset}: no data root given; set data.root=/path/to/{dataset.lower()}. Expected layout: {layout}. {how}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: data root {str(path)!r} is not a directory. Expected layout: {layout}. {how}")
    return path


def list_images(directories: Sequence[Path], exclude: Iterable[Path] = (), verify: bool = True) -> list[Path]:
    """Image files under `directories` (recursive, sorted), skipping unusable files with a warning (SPEC §4).

    Hidden files and the `exclude`d subfolders are ignored; files without an image suffix are skipped, and
    with `verify` so are files whose image header PIL cannot read. Raises FileNotFoundError when nothing
    usable is left.
    """
    excluded = [Path(path) for path in exclude]
    candidates = sorted(
        path
        for directory in directories
        for path in directory.rglob("*")
        if path.is_file() and not _inside(path, excluded) and not _hidden(path, directory)
    )
    usable = [path for path in candidates if path.suffix.lower() in IMAGE_SUFFIXES and (not verify or is_readable_image(path))]
    skipped = sorted(set(candidates) - set(usable))
    if skipped:
        listing = ", ".join(str(path) for path in skipped[:20]) + (f", ... ({len(skipped)} in all)" if len(skipped) > 20 else "")
        warnings.warn(f"skipping {len(skipped)} non-image or unreadable file(s): {listing}", stacklevel=2)
    if not usable:
        raise FileNotFoundError(f"no readable image files under {', '.join(map(str, directories))} (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    return usable


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    return any(folder in path.parents for folder in folders)


def _hidden(path: Path, directory: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(directory).parts)
