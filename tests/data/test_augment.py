"""Train-time augmentation: each image gets one of the 8 symmetries of the square, seeded, training batches only."""

import pytest
import torch

from dirac.data import Dihedral, ImageDataModule


def symmetries(image):
    return [torch.rot90(flipped, k, dims=(-2, -1)) for flipped in (image, image.flip(-1)) for k in range(4)]


def test_each_image_gets_one_symmetry_and_all_eight_occur():
    images = torch.rand(256, 3, 8, 8)
    out = Dihedral(seed=1)(images)
    used = set()
    for image, result in zip(images, out):
        matches = [index for index, candidate in enumerate(symmetries(image)) if torch.equal(candidate, result)]
        assert len(matches) == 1
        used.add(matches[0])
    assert used == set(range(8))


def test_seeded_and_switchable():
    images = torch.rand(16, 1, 6, 6)
    assert torch.equal(Dihedral(seed=3)(images), Dihedral(seed=3)(images))
    assert not torch.equal(Dihedral(seed=3)(images), Dihedral(seed=4)(images))
    assert torch.equal(Dihedral(flips=False, rotations=False)(images), images)
    flips_only = Dihedral(rotations=False, seed=0)(images)
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(-1)) for a, b in zip(flips_only, images))
    with pytest.raises(ValueError, match="square"):
        Dihedral()(torch.rand(2, 3, 4, 6))


def test_random_state_round_trips():
    augment, images = Dihedral(seed=0), torch.rand(8, 3, 4, 4)
    state = augment.random_state()
    first = augment(images)
    augment.set_random_state(state)
    assert torch.equal(augment(images), first)


class FakeTrainer:
    def __init__(self, training):
        self.training = training


def test_datamodule_augments_training_batches_only():
    datamodule = ImageDataModule(source=None, image_size=4, augment=Dihedral(seed=0))
    batch = {"image": torch.rand(32, 3, 4, 4), "name": [str(i) for i in range(32)]}
    datamodule.trainer = FakeTrainer(training=False)
    assert datamodule.on_after_batch_transfer(batch, 0) is batch
    datamodule.trainer = FakeTrainer(training=True)
    augmented = datamodule.on_after_batch_transfer(batch, 0)
    assert augmented["name"] == batch["name"] and not torch.equal(augmented["image"], batch["image"])
    assert "augment" in datamodule.state_dict()
