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
