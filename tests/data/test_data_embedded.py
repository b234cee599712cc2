"""The embedded scikit-image dataset: size, photo-disjoint splits, determinism."""

import pytest
import torch

from dirac.data import EmbeddedSource
from dirac.data.embedded import PHOTOS, patches


def photo_of(name):
    return name.rsplit("_r", 1)[0]


@pytest.fixture(scope="module")
def source():
    return EmbeddedSource(image_size=32)


def test_sizes_and_photo_disjoint_splits(source):
    sizes = {split: len(source.dataset(split)) for split in ("train", "val", "test")}
    assert sizes["train"] >= 300 and sizes["val"] >= 20 and sizes["test"] >= 20
    photos = {split: {photo_of(item["name"]) for item in source.dataset(split)} for split in sizes}
    assert photos["test"] == {"chelsea", "coffee"} and photos["val"] == {"rocket"}
    assert not photos["train"] & (photos["val"] | photos["test"])
    assert {"motorcycle_left", "motorcycle_right"} <= photos["train"]


def test_items_and_determinism(source):
    dataset = source.dataset("test")
    first = dataset[0]
    assert first["image"].shape == (3, 32, 32) and first["image"].dtype == torch.float32
    assert 0 <= first["image"].min() and first["image"].max() <= 1
    assert first["image"].std() >= 0.02
    again = EmbeddedSource(image_size=32).dataset("test")
    assert [item["name"] for item in again] == [item["name"] for item in dataset]
    assert torch.equal(again[5]["image"], dataset[5]["image"])
    assert len({item["name"] for item in dataset}) == len(dataset)


def test_patches_tile_row_major():
    image = torch.arange(2 * 5 * 7, dtype=torch.float32).view(2, 5, 7)
    tiles, places = patches(image, 2)
    assert tiles.shape == (6, 2, 2, 2) and places[:4] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert torch.equal(tiles[4], image[:, 2:4, 2:4])


def test_bad_options():
    with pytest.raises(ValueError, match="unknown embedded photo"):
        EmbeddedSource(val=("eagle",))
    with pytest.raises(ValueError, match="one split only"):
        EmbeddedSource(val=("astronaut",))
    with pytest.raises(ValueError, match="takes no root"):
        EmbeddedSource(root="/data")
    assert "cat" not in PHOTOS  # skimage's cat() is the chelsea photo


def test_overlapping_patches_start_every_stride_pixels():
    image = torch.arange(2 * 8 * 12, dtype=torch.float32).view(2, 8, 12)
    tiles, places = patches(image, 4, stride=2)
    assert tiles.shape == (3 * 5, 2, 4, 4) and places[:2] == [(0, 0), (0, 1)]
    assert torch.equal(tiles[1], image[:, 0:4, 2:6]) and torch.equal(tiles[5], image[:, 2:6, 0:4])


def test_train_scales_and_stride_enlarge_only_the_train_split(source):
    richer = EmbeddedSource(image_size=32, train_scales=[1.5, 2.0, 3.0], train_stride=16)
    assert len(richer.dataset("train")) > 8 * len(source.dataset("train"))
    for split in ("val", "test"):
        assert [item["name"] for item in richer.dataset(split)] == [item["name"] for item in source.dataset(split)]
    names = [item["name"] for item in richer.dataset("train")]
    assert len(set(names)) == len(names) and any("_x1.5_" in name for name in names)
    assert not any("_x2_" in name for name in names)  # the base scale keeps the plain names
    with pytest.raises(ValueError, match="train_stride"):
        EmbeddedSource(image_size=32, train_stride=40)
    with pytest.raises(ValueError, match="train_scales"):
        EmbeddedSource(image_size=32, train_scales=[0.5])


def test_extra_training_photographs_join_training_in_every_fold_and_are_never_judged():
    from dirac.data.source import KFold

    grey = ("brick", "moon")
    plain = EmbeddedSource(image_size=32, extra_train=grey)
    names = {photo_of(item["name"]) for item in plain.dataset("train")}
    assert set(grey) <= names and {"astronaut", "retina"} <= names
    brick = next(item["image"] for item in plain.dataset("train") if item["name"].startswith("brick_"))
    assert brick.shape == (3, 32, 32) and torch.equal(brick[0], brick[1]) and torch.equal(brick[1], brick[2])
    for index in range(4):
        fold, without = (EmbeddedSource(image_size=32, fold=KFold(4, index, 0, 2), extra_train=extra)
                         for extra in (grey, ()))
        assert fold.split_groups()["test"] == without.split_groups()["test"]  # the deal of the 8 scenes is unchanged
        assert fold.split_groups()["val"] == without.split_groups()["val"]
        assert set(fold.photos["train"]) == set(without.photos["train"]) | set(grey)
    with pytest.raises(ValueError, match="unknown embedded photo"):
        EmbeddedSource(extra_train=("lena",))
    with pytest.raises(ValueError, match="one split only"):
        EmbeddedSource(extra_train=("rocket",))
