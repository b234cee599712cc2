"""Writers of tiny datasets in the real on-disk formats, for the data-layer tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (20, 12), mode: str = "RGB", value: int | tuple = 128) -> Path:
    """Write a solid image of (width, height) `size` in PIL `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


def write_numbered(folder: Path, count: int, suffix: str = ".png", start: int = 0) -> list[Path]:
    """Write `count` images named 00000<suffix>, ... whose grey level encodes their number."""
    return [write_image(folder / f"{start + index:05d}{suffix}", value=(index * 7 % 256,) * 3)
            for index in range(count)]


def write_cifar(root: Path, per_batch: int = 4, test: int = 3) -> Path:
    """Write CIFAR-10 python batches (bytes-keyed dicts, uint8 rows of 3072: R, G, B planes of 1024).

    Image k (counted over data_batch_1..5, then test_batch) has planes R = k, G = 255 - k, B = 7.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
    start = 0
    for name in names:
        count = test if name == "test_batch" else per_batch
        ids = np.arange(start, start + count, dtype=np.uint8)[:, None]
        rows = np.concatenate([np.repeat(plane, 1024, axis=1) for plane in (ids, 255 - ids, np.full_like(ids, 7))],
                              axis=1)
        entry = {b"batch_label": name.encode(), b"labels": [0] * count, b"data": rows, b"filenames": [b"x.png"] * count}
        with (folder / name).open("wb") as handle:
            pickle.dump(entry, handle, protocol=2)
        start += count
    return root


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    return write_cifar(tmp_path / "cifar")


@pytest.fixture
def celebahq_root(tmp_path: Path) -> Path:
    root = tmp_path / "celebahq"
    write_numbered(root, 20, ".jpg")
    return root


@pytest.fixture
def ffhq_root(tmp_path: Path) -> Path:
    root = tmp_path / "ffhq"
    for folder, count in {"00000": 3, "00001": 2, "00008": 2, "00069": 1}.items():
        write_numbered(root / folder, count, start=int(folder) * 1000)
    return root


@pytest.fixture
def imagenet_root(tmp_path: Path) -> Path:
    root = tmp_path / "imagenet"
    for wnid in ("n01440764", "n01443537"):
        write_numbered(root / "train" / wnid, 2, ".JPEG")
        for index in (3, 1, 2):
            write_image(root / "val" / wnid / f"ILSVRC2012_val_{wnid}_{index}.JPEG")
    return root


@pytest.fixture
def user_root(tmp_path: Path) -> Path:
    """A user folder: mixed sizes, RGBA, a nested grayscale PNG, a JPEG, a text file and a corrupt PNG."""
    root = tmp_path / "mine"
    write_image(root / "wide.png", (60, 20), value=(255, 0, 0))
    write_image(root / "tall.jpg", (16, 40), value=(0, 255, 0))
    write_image(root / "alpha.png", (24, 24), mode="RGBA", value=(0, 0, 255, 100))
    write_image(root / "sub" / "gray.png", (30, 18), mode="L", value=200)
    (root / "notes.txt").write_text("not an image")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


@pytest.fixture
def make_image():
    """The `write_image` helper, for tests that need their own files."""
    return write_image
