"""PSNR/SSIM/MSE/data consistency: analytic values, clipping and input checks."""

import math

import pytest
import torch

from dirac.metrics import data_consistency, mse, psnr, ssim


def test_psnr_of_constant_error_is_analytic():
    target = torch.rand(2, 3, 16, 16) * 0.8
    error = torch.tensor([0.1, 0.01])[:, None, None, None]
    assert torch.allclose(psnr(target + error, target), torch.tensor([20.0, 40.0]), atol=1e-3)
    assert torch.allclose(mse(target + error, target), torch.tensor([1e-2, 1e-4]), rtol=1e-4)


def test_outputs_are_clipped_to_unit_range():
    target = torch.full((1, 1, 8, 8), 0.5)
    assert torch.allclose(psnr(target + 2.0, target), torch.tensor([20 * math.log10(2.0)]), atol=1e-4)


def test_ssim_is_one_for_identical_images_and_analytic_for_flat_ones():
    target = torch.rand(3, 1, 32, 32)
    assert torch.allclose(ssim(target, target), torch.ones(3), atol=1e-6)
    noisy = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    assert (ssim(noisy, target) < 0.99).all()
    flat_a, flat_b, c1 = 0.5, 0.4, 0.01**2
    expected = (2 * flat_a * flat_b + c1) / (flat_a**2 + flat_b**2 + c1)
    value = ssim(torch.full((1, 3, 16, 16), flat_a), torch.full((1, 3, 16, 16), flat_b))
    assert torch.allclose(value, torch.tensor([expected]), atol=1e-4)


def test_data_consistency_is_the_per_image_l2_norm():
    y = torch.rand(2, 3, 4, 5)
    measured = y + torch.tensor([0.5, 2.0])[:, None, None, None]
    assert torch.allclose(data_consistency(measured, y), torch.tensor([0.5, 2.0]) * math.sqrt(60))


@pytest.mark.parametrize("metric", [psnr, ssim, mse, data_consistency])
def test_mismatched_shapes_are_rejected(metric):
    with pytest.raises(ValueError, match="same shape"):
        metric(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 15))
