"""The 2-D 8-Gaussian mixture: means, statistics, seeding."""

import math

import pytest
import torch

from dirac.data import ToyDataModule, mixture_means


def test_means_on_circle():
    means = mixture_means(8, radius=2.0)
    assert means.shape == (8, 2)
    torch.testing.assert_close(means.norm(dim=1), torch.full((8,), 2.0))
    torch.testing.assert_close(means[0], torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(means[2], torch.tensor([0.0, 2.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(means[1], torch.tensor([math.sqrt(2), math.sqrt(2)]))


def recover_modes(points, gap=0.3):
    """Cluster points by angle: split the sorted angles at gaps wider than `gap` radians."""
    angles = torch.atan2(points[:, 1], points[:, 0])
    order = angles.argsort()
    angles = angles[order]
    cuts = ((angles[1:] - angles[:-1]) > gap).nonzero().flatten() + 1
    groups = list(torch.tensor_split(order, cuts.tolist()))
    if angles[0] + 2 * math.pi - angles[-1] < gap:  # the cluster straddling -pi/pi
        groups[0] = torch.cat([groups.pop(), groups[0]])
    return [points[group] for group in groups]


def test_samples_recover_the_eight_means_and_std():
    module = ToyDataModule(num_samples=8000, std=0.05, radius=3.0, seed=1)
    points = module.dataset("train").points
    clusters = recover_modes(points)
    assert len(clusters) == 8
    centres = torch.stack([cluster.mean(dim=0) for cluster in clusters])
    distance = torch.cdist(centres, module.means())
    assert distance.min(dim=1).values.max() < 0.01
    assert len(set(distance.argmin(dim=1).tolist())) == 8
    for cluster in clusters:
        assert abs(len(cluster) / 8000 - 1 / 8) < 0.02
        spread = (cluster - cluster.mean(dim=0)).std(dim=0)
        torch.testing.assert_close(spread, torch.full((2,), 0.05), atol=0.005, rtol=0)


def test_splits_seeded_and_independent():
    module = ToyDataModule(num_samples=100, eval_samples=50, batch_size=10, seed=0)
    module.setup()
    assert len(module.dataset("val")) == 50 and module.dataset("train")[0].shape == (2,)
    assert not torch.equal(module.dataset("val").points, module.dataset("test").points)
    assert torch.equal(ToyDataModule(num_samples=100, seed=0).dataset("train").points, module.dataset("train").points)
    assert not torch.equal(ToyDataModule(num_samples=100, seed=5).dataset("train").points,
                           module.dataset("train").points)
    batches = list(module.train_dataloader())
    assert len(batches) == 10 and batches[0].shape == (10, 2)
    assert not torch.equal(torch.cat(batches), module.dataset("train").points)  # shuffled


def test_bad_options():
    with pytest.raises(ValueError, match="std"):
        ToyDataModule(std=0.0)
    with pytest.raises(ValueError, match="num_samples"):
        ToyDataModule(num_samples=0)
