"""Every image source, loaded from tiny datasets written in the real formats."""

import random

import pytest
import torch

from dirac.data import CelebAHQSource, Cifar10Source, FFHQSource, FolderSource, ImageNetSource


def names(dataset):
    return [dataset[index]["name"] for index in range(len(dataset))]


def check_items(dataset, image_size):
    for index in range(len(dataset)):
        item = dataset[index]
        image = item["image"]
        assert image.dtype == torch.float32 and image.shape == (3, image_size, image_size)
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert isinstance(item["name"], str)


def check_disjoint(source):
    splits = {split: set(names(source.dataset(split))) for split in ("train", "val", "test")}
    assert not splits["train"] & splits["val"] and not splits["train"] & splits["test"]
    assert not splits["val"] & splits["test"]
    return splits


def test_cifar10_splits_values_and_determinism(cifar_root):
    source = Cifar10Source(root=cifar_root, image_size=32, val_size=5)
    train, val, test = (source.dataset(split) for split in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (15, 5, 3)
    check_disjoint(source)
    assert names(test) == ["test_00000", "test_00001", "test_00002"]
    # image k has planes R = k, G = 255 - k, B = 7 (test images continue the count after the 20 train images)
    for item, index in ((train[0], int(train[0]["name"][6:])), (val[0], int(val[0]["name"][6:])), (test[1], 21)):
        planes = torch.tensor([index, 255 - index, 7]).view(3, 1, 1) / 255
        torch.testing.assert_close(item["image"], planes.expand(3, 32, 32))
    again = Cifar10Source(root=cifar_root, image_size=32, val_size=5)
    assert names(again.dataset("val")) == names(val)
    assert names(Cifar10Source(root=cifar_root, val_size=5, split_seed=1).dataset("val")) != names(val)
    check_items(Cifar10Source(root=cifar_root / "cifar-10-batches-py", image_size=16).dataset("test"), 16)


def test_cifar10_bad_inputs(cifar_root, tmp_path):
    with pytest.raises(ValueError, match="val_size"):
        Cifar10Source(root=cifar_root, val_size=20).dataset("train")
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 python batch"):
        Cifar10Source(root=cifar_root).dataset("test")
    with pytest.raises(FileNotFoundError, match="data_batch_1.*cifar-10-batches-py.*CIFAR-10 python version"):
        Cifar10Source(root=tmp_path).dataset("train")


def test_celebahq_matches_reference_shuffle(celebahq_root):
    source = CelebAHQSource(root=celebahq_root, image_size=8)
    splits = check_disjoint(source)
    assert [len(splits[split]) for split in ("train", "val", "test")] == [16, 2, 2]
    reference = sorted(path.name for path in celebahq_root.glob("*.jpg"))
    random.seed(0)
    random.shuffle(reference)
    assert names(source.dataset("train")) == reference[:16]
    assert names(source.dataset("val")) == reference[16:18]
    assert names(source.dataset("test")) == reference[18:]
    check_items(source.dataset("val"), 8)


def test_ffhq_folders_and_first_n(ffhq_root):
    source = FFHQSource(root=ffhq_root, image_size=8)
    with pytest.warns(UserWarning, match="60 folder"):
        train = names(source.dataset("train"))
    assert train == ["00008/08000.png", "00008/08001.png", "00069/69000.png"]
    with pytest.warns(UserWarning, match="00002"):
        assert names(source.dataset("val")) == ["00001/01000.png", "00001/01001.png"]
    assert names(source.dataset("test")) == ["00000/00000.png", "00000/00001.png", "00000/00002.png"]
    assert names(FFHQSource(root=ffhq_root, test_first_n=2).dataset("test")) == ["00000/00000.png", "00000/00001.png"]
    check_items(source.dataset("test"), 8)


def test_ffhq_missing_split_folders(tmp_path):
    (tmp_path / "00000").mkdir()
    with pytest.raises(FileNotFoundError, match="00008..00069"):
        FFHQSource(root=tmp_path).dataset("train")


def test_imagenet_first_and_last_val_file_per_class(imagenet_root, tmp_path):
    source = ImageNetSource(root=imagenet_root, image_size=8)
    assert len(source.dataset("train")) == 4
    wnids = ("n01440764", "n01443537")
    assert names(source.dataset("val")) == [f"val/{wnid}/ILSVRC2012_val_{wnid}_1.JPEG" for wnid in wnids]
    assert names(source.dataset("test")) == [f"val/{wnid}/ILSVRC2012_val_{wnid}_3.JPEG" for wnid in wnids]
    check_disjoint(source)
    check_items(source.dataset("train"), 8)
    listing = tmp_path / "test.txt"
    listing.write_text("# my test split\nval/n01443537/ILSVRC2012_val_n01443537_2.JPEG\n\n")
    listed = ImageNetSource(root=imagenet_root, test_list=str(listing))
    assert names(listed.dataset("test")) == ["val/n01443537/ILSVRC2012_val_n01443537_2.JPEG"]
    listing.write_text("val/n01443537/missing.JPEG\n")
    with pytest.raises(FileNotFoundError, match="missing.JPEG"):
        listed.dataset("test")


def test_imagenet_flat_val_is_rejected(tmp_path, make_image):
    make_image(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(ValueError, match="class folders"):
        ImageNetSource(root=tmp_path).dataset("test")
    with pytest.raises(FileNotFoundError, match="train.*root/train/<wnid>"):
        ImageNetSource(root=tmp_path).dataset("train")


def test_folder_skips_bad_files_and_converts_modes(user_root):
    source = FolderSource(root=user_root, image_size=16)
    with pytest.warns(UserWarning, match=r"skipping 2 .*broken\.png.*notes\.txt"):
        test = source.dataset("test")
    assert names(test) == ["alpha.png", "sub/gray.png", "tall.jpg", "wide.png"]
    check_items(test, 16)
    gray = test[1]["image"]
    torch.testing.assert_close(gray, torch.full_like(gray, 200 / 255))
    torch.testing.assert_close(test[3]["image"][:, 8, 8], torch.tensor([1.0, 0.0, 0.0]))
    with pytest.warns(UserWarning):
        assert names(source.dataset("train")) == names(test)


def test_folder_skips_symbolic_links_and_names_them(user_root, tmp_path, make_image):
    """A linked file and a linked folder inside the data root (pointing outside it) are never followed."""
    make_image(tmp_path / "outside" / "secret.png")
    (user_root / "linked.png").symlink_to(tmp_path / "outside" / "secret.png")
    (user_root / "linked_folder").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.warns(UserWarning, match=r"skipping 2 symbolic link\(s\), not followed: .*linked.png.*linked_folder"):
        test = FolderSource(root=user_root, image_size=16).dataset("test")
    assert names(test) == ["alpha.png", "sub/gray.png", "tall.jpg", "wide.png"]


def test_folder_split_subfolders(tmp_path, make_image):
    make_image(tmp_path / "test" / "a.png")
    make_image(tmp_path / "loose.png")
    source = FolderSource(root=tmp_path, image_size=8)
    assert names(source.dataset("test")) == ["test/a.png"]
    assert names(source.dataset("train")) == ["loose.png"]


def test_folder_with_nothing_usable(tmp_path):
    (tmp_path / "readme.md").write_text("hello")
    with pytest.warns(UserWarning, match="readme.md"), pytest.raises(FileNotFoundError,
                                                                     match="no readable image files"):
        FolderSource(root=tmp_path).dataset("test")


@pytest.mark.parametrize(
    ("source", "layout"),
    [
        (Cifar10Source, "cifar-10-batches-py"),
        (CelebAHQSource, r"root/\*\.jpg"),
        (FFHQSource, "root/00000"),
        (ImageNetSource, "root/train/<wnid>"),
        (FolderSource, "folder of images|root/"),
    ],
)
def test_missing_root_names_path_and_layout(source, layout, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"data.root.*({layout})"):
        source(root=None)
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"{missing}.*({layout})"):
        source(root=missing)
