"""Train-time augmentation: each image gets one of the 8 symmetries of the square or a colour change, seeded, training
batches only."""

import itertools

import pytest
import torch

from dirac.data import Chain, Colour, Dihedral, ImageDataModule


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


def test_colour_is_a_per_image_affine_map_of_permuted_channels_that_stays_in_range():
    images = torch.rand(64, 3, 5, 5)
    images[0], images[1] = 0.0, 1.0  # the extremes: b alone, a + b
    out = Colour(contrast=0.5, seed=2)(images)
    assert out.min() >= 0 and out.max() <= 1
    for before, after in zip(images[2:], out[2:]):
        # some channel order and one (a, b) per image map every pixel: solve for them from two pixels of channel 0
        fits = []
        for order in itertools.permutations(range(3)):
            source = before[list(order)].flatten()
            a = (after.flatten()[1] - after.flatten()[0]) / (source[1] - source[0])
            b = after.flatten()[0] - a * source[0]
            fits.append((torch.allclose(after.flatten(), a * source + b, atol=1e-5), float(a), float(b)))
        fit = next(f for f in fits if f[0])
        assert 0.5 - 1e-5 <= fit[1] <= 1 + 1e-5 and -1e-5 <= fit[2] <= 1 - fit[1] + 1e-5
    orders = {tuple(Colour(seed=seed)(torch.arange(3.0).view(1, 3, 1, 1) / 2).flatten().argsort().tolist())
              for seed in range(40)}
    assert len(orders) == 6  # every channel order is drawn
    unpermuted = Colour(permute=False, contrast=1.0)(images)
    assert torch.equal(unpermuted, images)  # a = 1 forces b = 0: the identity
    with pytest.raises(ValueError, match="contrast"):
        Colour(contrast=0.0)


def test_a_chain_applies_each_augmentation_in_turn_and_round_trips_its_state():
    images = torch.rand(8, 3, 4, 4)
    chain = Chain([Dihedral(seed=0), Colour(seed=1)])
    state = chain.random_state()
    first = chain(images)
    assert torch.equal(first, Colour(seed=1)(Dihedral(seed=0)(images)))
    chain.set_random_state(state)
    assert torch.equal(chain(images), first)
