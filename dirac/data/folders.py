"""Image-folder datasets: CelebA-HQ, FFHQ, ImageNet and any user folder (SPEC §4; splits of reference/dirac.md §6).

Every folder source accepts optional split-list text files (`train_list`, `val_list`, `test_list`): one
image path per line, relative to the root (blank lines and lines starting with `#` are ignored); a given
list replaces the built-in split. Item names are the image paths relative to the root (POSIX, with
suffix), e.g. `00000/00012.png` for FFHQ.
"""

from __future__ import annotations

import random
import warnings
from abc import abstractmethod
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from dirac.data.source import (SPLITS, FileImageDataset, ImageSource, KFold, check_split, list_images,
                               require_root)


def read_split_list(path: str | Path, root: Path) -> list[Path]:
    """The image files named in a split-list text file (paths relative to `root`), checked to exist under `root`
    (SPEC §4)."""
    listing = Path(path).expanduser()
    if not listing.is_file():
        raise FileNotFoundError(f"split list {str(listing)!r} not found (a text file with one image path per line, "
                                f"relative to {root})")
    lines = [line.strip() for line in listing.read_text().splitlines()]
    files = [root / line for line in lines if line and not line.startswith("#")]
    outside = [str(file) for file in files if root not in file.parents]
    if outside:
        raise ValueError(f"split list {listing} names paths outside the root {root}: {outside[:5]}")
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise FileNotFoundError(f"split list {listing} names {len(missing)} missing file(s), e.g. {missing[:5]}")
    if not files:
        raise ValueError(f"split list {listing} names no files")
    return files


class FolderSplitSource(ImageSource):
    """Base of the folder sources: built-in per-split file lists (`split_files`),
    or split-list files that replace them (SPEC §4)."""

    name: str  # dataset name used in messages
    layout: str  # the expected on-disk layout, for missing-data messages
    how: str  # how to obtain the data, for missing-data messages

    def __init__(
        self,
        root: str | Path | None,
        image_size: int = 256,
        verify: bool = True,
        train_list: str | None = None,
        val_list: str | None = None,
        test_list: str | None = None,
    ) -> None:
        self.root = require_root(root, self.name, self.layout, self.how)
        self.image_size = int(image_size)
        self.verify = bool(verify)
        self.split_lists = {"train": train_list, "val": val_list, "test": test_list}

    @abstractmethod
    def split_files(self, split: str) -> list[Path]:
        """The built-in file list of `split`."""

    def dataset(self, split: str) -> FileImageDataset:
        """The images of `split`, from its split-list file when one is given, else from the built-in split."""
        listed = self.split_lists[check_split(split)]
        files = read_split_list(listed, self.root) if listed else self.split_files(split)
        return FileImageDataset(files, self.root, self.image_size)

    def images(self, directories: Sequence[Path], exclude: Sequence[Path] = ()) -> list[Path]:
        """Usable images under `directories` (recursive, sorted), skipping bad files with a warning."""
        return list_images(directories, exclude=exclude, verify=self.verify)


class CelebAHQSource(FolderSplitSource):
    """CelebA-HQ: all images sorted, shuffled with Python's `random.seed(split_seed)`, split 80/10/10 (train/val/test)
    (SPEC §4)."""

    name = "CelebA-HQ"
    layout = "root/*.jpg (the 30,000 CelebA-HQ images, any resolution; subfolders are searched too)"
    how = ("Get CelebA-HQ from the CelebA / CelebAMask-HQ release pages (MMLAB, CUHK) or regenerate it with the "
           "Progressive GAN tools.")

    def __init__(self, root: str | Path | None, image_size: int = 256, split_seed: int = 0, **options) -> None:
        super().__init__(root, image_size, **options)
        self.split_seed = int(split_seed)

    @cached_property
    def _shuffled(self) -> list[Path]:
        files = self.images([self.root])
        random.Random(self.split_seed).shuffle(files)
        return files

    def split_files(self, split: str) -> list[Path]:
        """Slice `split` of the shuffled list: the first 80 % train, the next 10 % val, the rest test."""
        count = len(self._shuffled)
        n_train, n_val = int(round(0.8 * count)), int(round(0.1 * count))
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, count)}[split]
        return self._shuffled[slice(*bounds)]


class FFHQSource(FolderSplitSource):
    """FFHQ: folders 00008–00069 train, 00001–00007 val, 00000 test (optionally only its first `test_first_n` images)
    (SPEC §4)."""

    name = "FFHQ"
    layout = "root/00000 ... root/00069, each with 1,000 PNGs (e.g. root/00000/00000.png)"
    how = ("Get FFHQ (images1024x1024, or a resized copy) from the NVlabs ffhq-dataset release and point data.root at "
           "the folder holding 00000..00069.")
    folders = {"train": range(8, 70), "val": range(1, 8), "test": range(0, 1)}

    def __init__(self, root: str | Path | None, image_size: int = 256, test_first_n: int | None = None,
                 **options) -> None:
        super().__init__(root, image_size, **options)
        if test_first_n is not None and test_first_n < 1:
            raise ValueError(f"test_first_n must be a positive count or None, got {test_first_n}")
        self.test_first_n = test_first_n

    def split_files(self, split: str) -> list[Path]:
        """The sorted images of the numbered folders of `split`; missing folders are named in a warning."""
        expected = [self.root / f"{index:05d}" for index in self.folders[split]]
        present = [folder for folder in expected if folder.is_dir()]
        if not present:
            raise FileNotFoundError(f"FFHQ {split} split: none of the folders {expected[0].name}..{expected[-1].name} "
                                    f"exist under {self.root}. Expected layout: {self.layout}. {self.how}")
        if len(present) < len(expected):
            missing = sorted({folder.name for folder in expected} - {folder.name for folder in present})
            warnings.warn(f"FFHQ {split} split: {len(missing)} folder(s) missing under {self.root}: "
                          f"{', '.join(missing)}", stacklevel=2)
        files = self.images(present)
        return files[: self.test_first_n] if split == "test" and self.test_first_n else files


class ImageNetSource(FolderSplitSource):
    """ImageNet: train = root/train/<class>/*; test = last file (sorted) per val class; val = first file per val class
    (SPEC §4)."""

    name = "ImageNet"
    layout = "root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG (val images sorted into their 1,000 class folders)"
    how = ("Get ILSVRC2012 (ImageNet-1k) train and val from image-net.org (registration required) and sort val into "
           "class folders with the devkit's ground-truth labels.")

    def _split_dir(self, name: str) -> Path:
        directory = self.root / name
        if not directory.is_dir():
            raise FileNotFoundError(f"ImageNet: {str(directory)!r} not found. Expected layout: "
                                    f"{self.layout}. {self.how}")
        return directory

    @cached_property
    def _val_by_class(self) -> list[list[Path]]:
        val = self._split_dir("val")
        by_class: dict[str, list[Path]] = {}
        for file in self.images([val]):
            parts = file.relative_to(val).parts
            if len(parts) == 1:
                raise ValueError(f"ImageNet: {file} lies directly in {val}; val images must be sorted into class "
                                 f"folders. {self.how}")
            by_class.setdefault(parts[0], []).append(file)
        return [by_class[label] for label in sorted(by_class)]

    def split_files(self, split: str) -> list[Path]:
        """All train images, or one val image per class (the first for val, the last for test)."""
        if split == "train":
            return self.images([self._split_dir("train")])
        position = 0 if split == "val" else -1
        return [files[position] for files in self._val_by_class]


class FolderSource(FolderSplitSource):
    """Any folder of images (recursive, sorted): a split uses root/<split> when that subfolder exists,
    else the whole folder (SPEC §4).

    The whole-folder fallback leaves out any train/val/test subfolders, so that evaluation on one's own
    images (`data=folder data.root=/my/images`) sees the same set in every split. With `fold` (a `KFold`), the
    splits are instead fold `fold.index` of a k-fold split of every image under the root, each file its own group.
    """

    name = "folder"
    layout = "root/**/*.{png,jpg,...}, optionally with root/train, root/val, root/test subfolders"
    how = "Point data.root at a folder of images."

    def __init__(self, root: str | Path | None, image_size: int = 256, fold: KFold | None = None, **options) -> None:
        super().__init__(root, image_size, **options)
        listed = [split for split, path in self.split_lists.items() if path]
        if fold is not None and listed:
            raise ValueError(f"data.source.fold splits the whole folder into folds; drop the split list(s) of {listed}")
        self.fold = fold

    @cached_property
    def _fold_files(self) -> dict[str, list[Path]]:
        """The image files of each split of the fold, every image under the root one group."""
        files = {path.relative_to(self.root).as_posix(): path for path in self.images([self.root])}
        try:
            groups = self.fold.assign(list(files), what="image")
        except ValueError as error:
            raise ValueError(f"data.root {str(self.root)!r}: {error}") from None
        return {split: [files[name] for name in groups[split]] for split in SPLITS}

    def split_groups(self) -> dict[str, tuple[str, ...]]:
        """The image files (names relative to the root) of each split of the fold."""
        if self.fold is None:
            return super().split_groups()
        return {split: tuple(path.relative_to(self.root).as_posix() for path in files)
                for split, files in self._fold_files.items()}

    def split_files(self, split: str) -> list[Path]:
        """The fold's images of `split`; else the images of root/<split> if present, else of the whole root minus
        split subfolders."""
        if self.fold is not None:
            return self._fold_files[split]
        own = self.root / split
        if own.is_dir():
            return self.images([own])
        return self.images([self.root], exclude=[self.root / name for name in SPLITS if (self.root / name).is_dir()])
