"""ImageDataModule: loaders, seeding, channels, validation, DDP sharding, and the Hydra configs."""

from contextlib import nullcontext
from functools import partial
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler

from dirac.data import CelebAHQSource, Cifar10Source, EmbeddedSource, ImageDataModule, ToyDataModule, check_batch

CONF = Path(__file__).resolve().parents[2] / "conf"


def cifar_module(root, **options):
    return ImageDataModule(partial(Cifar10Source, val_size=5), image_size=32, root=root, **options)


def test_loaders_shapes_and_eval_batch_size(cifar_root):
    module = cifar_module(cifar_root, batch_size=4, eval_batch_size=2)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and len(batch["name"]) == 4
    check_batch(batch["image"], module.channels, module.image_size)
    val = list(module.val_dataloader())
    assert [len(b["name"]) for b in val] == [2, 2, 1]
    assert [name for b in val for name in b["name"]] == [module.dataset("val")[i]["name"] for i in range(5)]
    assert isinstance(module.train_dataloader().sampler, RandomSampler)
    assert isinstance(module.test_dataloader().sampler, SequentialSampler)


def test_train_shuffle_is_seeded(cifar_root):
    def first_epoch(seed):
        module = cifar_module(cifar_root, batch_size=15, seed=seed)
        return next(iter(module.train_dataloader()))["name"]

    assert first_epoch(3) == first_epoch(3)
    assert first_epoch(3) != first_epoch(4)
    assert sorted(first_epoch(3)) == sorted(first_epoch(4))


def test_grayscale_channels(cifar_root):
    module = cifar_module(cifar_root, channels=1)
    image = module.dataset("test")[1]["image"]
    assert image.shape == (1, 32, 32)
    luma = 0.299 * 21 + 0.587 * (255 - 21) + 0.114 * 7
    torch.testing.assert_close(image, torch.full((1, 32, 32), luma / 255))


def test_bad_arguments(cifar_root):
    with pytest.raises(ValueError, match="channels must be 1"):
        cifar_module(cifar_root, channels=2)
    with pytest.raises(ValueError, match="batch_size"):
        cifar_module(cifar_root, batch_size=0)
    with pytest.raises(ValueError, match="unknown split"):
        cifar_module(cifar_root).dataset("training")
    with pytest.raises(ValueError, match="unknown stage"):
        cifar_module(cifar_root).setup("train")
    with pytest.raises(TypeError, match="ImageSource"):
        ImageDataModule(lambda root, image_size: [], image_size=8).dataset("train")


def test_construction_touches_no_files(tmp_path):
    module = ImageDataModule(partial(CelebAHQSource), image_size=8, root=tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="absent"):
        module.setup("test")


def test_ddp_sampler_shards_are_disjoint_and_complete():
    module = ImageDataModule(partial(EmbeddedSource), image_size=32, batch_size=8)
    loader = module.test_dataloader()
    shards = []
    for rank in range(2):
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=False)
        shards.append([name for batch in _update_dataloader(loader, sampler) for name in batch["name"]])
    assert not set(shards[0]) & set(shards[1])
    assert set(shards[0]) | set(shards[1]) == {item["name"] for item in loader.dataset}


def compose_data(name, overrides=()):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(overrides=[f"+data={name}", *overrides]).data


@pytest.mark.parametrize(
    ("name", "root_fixture", "overrides"),
    [
        ("embedded", None, []),
        ("cifar10", "cifar_root", ["data.source.val_size=5"]),
        ("celebahq", "celebahq_root", []),
        ("ffhq", "ffhq_root", []),
        ("imagenet", "imagenet_root", []),
        ("folder", "user_root", []),
    ],
)
def test_config_instantiates_and_loads(name, root_fixture, overrides, request):
    root = [f"data.root={request.getfixturevalue(root_fixture)}"] if root_fixture else []
    small = [] if name in ("embedded", "cifar10") else ["data.image_size=8"]
    cfg = compose_data(name, [*root, *small, "data.num_workers=0", *overrides])
    assert {"root", "image_size", "channels", "batch_size", "eval_batch_size", "num_workers", "seed"} <= set(cfg)
    module = instantiate(cfg)
    assert isinstance(module, ImageDataModule)
    with pytest.warns(UserWarning, match="notes.txt") if name == "folder" else nullcontext():
        batch = next(iter(module.test_dataloader()))
    check_batch(batch["image"], module.channels, module.image_size)


def test_config_defaults():
    assert compose_data("embedded").image_size == 32 and compose_data("embedded").batch_size == 16
    assert compose_data("cifar10").image_size == 32
    assert {compose_data(name).image_size for name in ("celebahq", "ffhq", "imagenet")} == {256}


def test_toy_config():
    module = instantiate(compose_data("toy2d", ["data.num_samples=2000", "data.eval_samples=100"]))
    assert isinstance(module, ToyDataModule)
    assert next(iter(module.train_dataloader())).shape == (1000, 2)

