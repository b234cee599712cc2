"""The image-source interface and the datasets it hands out (SPEC §4: one DataModule, many sources)."""

from __future__ import annotations

import math
import os
import random
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from dirac.data.transforms import is_readable_image, read_rgb, square_resize

SPLITS = ("train", "val", "test")
LINK_SKIPPED = "a symbolic link, not followed"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def check_split(split: str) -> str:
    """Return `split` if it is one of train/val/test, else raise a ValueError (SPEC §4)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


@dataclass(frozen=True)
class KFold:
    """Fold `index` of a k-fold split of a data set's groups (photographs, or image files): the groups are shuffled by
    `seed` and dealt round-robin into `folds` test folds; fold `index` tests its own groups, validates on the first
    `validation_groups` groups of the folds after it (cyclically) and trains on the rest (SPEC §4)."""

    folds: int = 4
    index: int = 0
    seed: int = 0
    validation_groups: int = 2

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"cross-validation needs at least 2 folds, got folds={self.folds}")
        if not 0 <= self.index < self.folds:
            raise ValueError(f"fold index must lie in [0, {self.folds - 1}], got {self.index}")
        if self.validation_groups < 2:
            raise ValueError("validation must use several photographs (validation_groups >= 2), "
                             f"got {self.validation_groups}")

    def minimum_groups(self) -> int:
        """The fewest groups for which every fold keeps at least one training group."""
        return next(n for n in count(self.folds) if n - math.ceil(n / self.folds) - self.validation_groups >= 1)

    def assign(self, groups: Sequence[str], what: str = "group") -> dict[str, tuple[str, ...]]:
        """The groups of each split (train, val, test) of this fold; a ValueError naming `what` when there are too
        few groups for the folds."""
        unique = sorted(set(groups))
        if len(unique) < self.minimum_groups():
            raise ValueError(f"{self.folds}-fold cross-validation with {self.validation_groups} validation {what}s "
                             f"needs at least {self.minimum_groups()} {what}s, got {len(unique)}"
                             + (f" ({', '.join(unique)})" if len(unique) <= 10 else ""))
        random.Random(self.seed).shuffle(unique)
        dealt = [unique[fold :: self.folds] for fold in range(self.folds)]
        following = [group for step in range(1, self.folds) for group in dealt[(self.index + step) % self.folds]]
        val = following[: self.validation_groups]
        return {"train": tuple(sorted(following[self.validation_groups :])), "val": tuple(sorted(val)),
                "test": tuple(sorted(dealt[self.index]))}


class ImageSource(ABC):
    """A dataset on disk or in memory that yields `{"image": (3, S, S) float in [0, 1], "name": str}` per split
    (SPEC §4)."""

    @abstractmethod
    def dataset(self, split: str) -> Dataset:
        """The dataset of one split (train, val or test)."""

    def group_of(self, name: str) -> str:
        """The group (photograph) of the item called `name`: the name itself unless the source cuts items from
        larger images."""
        return name

    def split_groups(self) -> dict[str, tuple[str, ...]]:
        """The groups of each split of a source split into folds (`fold`); sources without folds refuse."""
        raise ValueError(f"{type(self).__name__} has no k-fold split by photograph; cross-validation needs "
                         "data=embedded or data=folder")


class FileImageDataset(Dataset):
    """Images read lazily from files, centre-cropped and resized to `image_size`; names are paths relative to `base`
    (SPEC §4)."""

    def __init__(self, files: Sequence[Path], base: Path, image_size: int) -> None:
        self.files = list(files)
        self.names = [path.relative_to(base).as_posix() for path in self.files]
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return {"image": square_resize(read_rgb(self.files[index]), self.image_size), "name": self.names[index]}


class TensorImageDataset(Dataset):
    """Images held in memory as one `(N, 3, H, W)` tensor (uint8 or float), resized to `image_size` on access
    (SPEC §4)."""

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
    """The existing data root as a Path, or a FileNotFoundError naming the path, the layout and how to get the data
    (SPEC §4)."""
    if root is None:
        raise FileNotFoundError(f"{dataset}: no data root given; set data.root=/path/to/{dataset.lower()}. Expected "
                                f"layout: {layout}. {how}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: data root {str(path)!r} is not a directory. Expected layout: "
                                f"{layout}. {how}")
    return path


def walk_files(directory: Path, exclude: Iterable[Path] = ()) -> tuple[list[Path], list[Path]]:
    """The regular files under `directory` (recursive, sorted) and the symbolic links met on the way, files or
    folders, which are never followed (a link could lead anywhere on the disk); hidden entries and the `exclude`d
    folders (compared resolved) are left out of both."""
    excluded = {Path(path).resolve() for path in exclude}
    files, links = [], []
    for root, folders, names in os.walk(directory):  # links to folders are listed in `folders`, never entered
        here = Path(root)
        folders[:] = [name for name in folders if not name.startswith(".") and (here / name).resolve() not in excluded]
        links.extend(here / name for name in folders if (here / name).is_symlink())
        for path in (here / name for name in names if not name.startswith(".")):
            if path.is_symlink():
                links.append(path)
            elif path.is_file():
                files.append(path)
    return sorted(files), sorted(links)


def scan_images(directories: Sequence[Path], exclude: Iterable[Path] = (),
                verify: bool = True) -> tuple[list[Path], dict[Path, str]]:
    """The usable image files under `directories` (recursive, sorted; hidden files, `exclude`d folders and symbolic
    links left out, as in `walk_files`) and the reason each other file or link was skipped (SPEC §4)."""
    exclude = list(exclude)
    usable, skipped = [], {}
    for directory in directories:
        files, links = walk_files(directory, exclude)
        skipped.update(dict.fromkeys(links, LINK_SKIPPED))
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped[path] = "not an image file (by its suffix)"
            elif verify and not is_readable_image(path):
                skipped[path] = "not a readable image"
            else:
                usable.append(path)
    return sorted(usable), skipped


def list_images(directories: Sequence[Path], exclude: Iterable[Path] = (), verify: bool = True) -> list[Path]:
    """Image files under `directories` (recursive, sorted), skipping unusable files with a warning (SPEC §4).

    Hidden files, the `exclude`d subfolders and symbolic links (files or folders, named in a warning) are ignored;
    files without an image suffix are skipped, and with `verify` so are files whose image header PIL cannot read.
    Raises FileNotFoundError when nothing usable is left.
    """
    usable, skipped = scan_images(directories, exclude, verify)
    links = sorted(path for path, reason in skipped.items() if reason == LINK_SKIPPED)
    others = sorted(path for path, reason in skipped.items() if reason != LINK_SKIPPED)
    if links:
        warnings.warn(f"skipping {len(links)} symbolic link(s), not followed: {listing(links)}", stacklevel=2)
    if others:
        warnings.warn(f"skipping {len(others)} non-image or unreadable file(s): {listing(others)}", stacklevel=2)
    if not usable:
        raise FileNotFoundError(f"no readable image files under {', '.join(map(str, directories))} "
                                f"(suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    return usable


def listing(paths: Sequence[Path]) -> str:
    """The first 20 paths, comma-separated, and how many there are in all when more."""
    return ", ".join(str(path) for path in paths[:20]) + (f", ... ({len(paths)} in all)" if len(paths) > 20 else "")
