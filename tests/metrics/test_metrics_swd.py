"""Patch sliced Wasserstein distance: zero on identical sets, symmetric, growing with blur and noise."""

import pytest
import torch
from skimage.data import astronaut
from torchvision.transforms.functional import gaussian_blur

from dirac.metrics import PatchSWD, patch_swd, patch_swd_per_image, sliced_wasserstein


@pytest.fixture(scope="module")
def photos():
    """Four 48x48 crops of a real photograph."""
    image = torch.from_numpy(astronaut()).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(96, 96), mode="area", antialias=False)
    return torch.cat([image[..., :48, :48], image[..., :48, 48:], image[..., 48:, :48], image[..., 48:, 48:]])


def test_sliced_wasserstein_of_a_shifted_set_is_analytic():
    points = torch.randn(1, 50, 4)
    shift = torch.tensor([0.3, -1.0, 0.5, 2.0])
    directions = torch.nn.functional.normalize(torch.randn(4, 7), dim=0)
    expected = (shift @ directions).square().mean().sqrt()
    assert torch.allclose(sliced_wasserstein(points, points + shift, directions)[0], expected, atol=1e-5)


def test_zero_for_identical_sets_and_symmetric(photos):
    other = photos.flip(-1) * 0.9
    assert patch_swd(photos, photos) == 0
    assert torch.allclose(patch_swd(photos, other), patch_swd(other, photos))
    assert patch_swd(photos, other) > 0
    assert torch.equal(patch_swd_per_image(photos, photos), torch.zeros(4))
    assert torch.allclose(patch_swd_per_image(photos, other), patch_swd_per_image(other, photos))


def test_sets_of_different_sizes_are_compared_by_quantiles(photos):
    assert torch.allclose(patch_swd(photos[:3], photos), patch_swd(photos, photos[:3]))
    assert patch_swd(photos[:3], photos) < patch_swd(photos[:3], photos * 0.5)


def test_grows_with_blur_and_noise(photos):
    blurred = [patch_swd(gaussian_blur(photos, 9, sigma), photos) for sigma in (0.5, 1.0, 2.0)]
    noisy = [patch_swd((photos + level * torch.randn_like(photos)).clamp(0, 1), photos) for level in (0.02, 0.05, 0.1)]
    assert blurred[0] < blurred[1] < blurred[2]
    assert noisy[0] < noisy[1] < noisy[2]
    per_image = [patch_swd_per_image(gaussian_blur(photos, 9, sigma), photos) for sigma in (0.5, 2.0)]
    assert (per_image[0] < per_image[1]).all()


def test_metric_matches_the_function_and_keeps_a_bounded_subset(photos):
    noisy = (photos + 0.05 * torch.randn_like(photos)).clamp(0, 1)
    metric = PatchSWD(patches_per_image=64, max_patches=1000)
    metric.update(noisy, photos)
    assert torch.allclose(metric.compute(), patch_swd(noisy, photos, patches_per_image=64), atol=1e-6)
    for _ in range(5):
        metric.update(noisy, photos)
    assert metric.pred_patches[0].shape == (1000, 3 * 49) and metric.keys[0].shape == (1000,)
    assert 0 < metric.compute() < patch_swd(photos * 0.5, photos)
    metric.reset()
    metric.update(photos, photos)
    assert metric.compute() == 0


def test_bad_patch_size_is_rejected(photos):
    with pytest.raises(ValueError, match="patch size"):
        patch_swd(photos, photos, patch=64)
