"""Operator properties of every degradation (A_0 = I, batching, adjoint, d/dt, gradients, errors) and each A_1
(SPEC §1.1)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from dirac.degradations import (
    BlockSuperResolution,
    BoxInpainting,
    Colorization,
    GaussianBlur,
    GaussianInpainting,
    Identity,
    LinearSeverity,
    TabulatedSeverity,
)
from dirac.degradations.blur import scaled_kernel_size

from .conftest import SIZE

INTERIOR_T = [0.31, 0.43, 0.64]  # away from schedule knots, mask truncation jumps and block-level switches


def test_time_zero_is_identity(degradation):
    x = torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(degradation(x, 0.0), x, atol=1e-6, rtol=0)


def test_mixed_severities_in_one_batch_match_per_sample_calls(degradation):
    x = torch.rand(4, 3, SIZE, SIZE)
    t = torch.tensor([0.0, 0.37, 0.81, 1.0])
    batched = degradation(x, t)
    single = torch.cat([degradation(x[i : i + 1], t[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)


def test_adjoint_passes_the_dot_product_test(degradation):
    degradation = degradation.double()
    x, y = torch.rand(3, 3, SIZE, SIZE, dtype=torch.float64), torch.randn(3, 3, SIZE, SIZE, dtype=torch.float64)
    t = torch.tensor([0.2, 0.6, 1.0], dtype=torch.float64)
    lhs = (degradation(x, t) * y).sum()
    rhs = (x * degradation.adjoint(y, t)).sum()
    torch.testing.assert_close(lhs, rhs, atol=1e-9, rtol=1e-10)


def test_operators_are_linear(degradation):
    x, z = torch.rand(2, 3, SIZE, SIZE, dtype=torch.float64), torch.rand(2, 3, SIZE, SIZE, dtype=torch.float64)
    degradation = degradation.double()
    t = torch.tensor([0.5, 0.9], dtype=torch.float64)
    torch.testing.assert_close(degradation(2 * x - 3 * z, t), 2 * degradation(x, t) - 3 * degradation(z, t))


def test_time_derivative_matches_central_finite_difference(degradation):
    degradation = degradation.double()
    x = torch.rand(3, 3, SIZE, SIZE, dtype=torch.float64)
    t = torch.tensor(INTERIOR_T, dtype=torch.float64)
    step = 1e-5
    finite = (degradation(x, t + step) - degradation(x, t - step)) / (2 * step)
    exact = degradation.time_derivative(x, t)
    torch.testing.assert_close(exact, finite, atol=1e-5 * (1 + finite.abs().max().item()), rtol=1e-4)
    assert isinstance(degradation, Identity) or finite.abs().max() > 1e-2


def test_gradients_flow_to_x(degradation):
    x = torch.rand(2, 3, SIZE, SIZE, requires_grad=True)
    degradation(x, torch.tensor([0.4, 1.0])).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_shapes_and_times_raise(degradation):
    x = torch.rand(2, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="shape"):
        degradation(torch.rand(2, 3, SIZE + 2, SIZE + 2), 0.5)
    with pytest.raises(ValueError, match="shape"):
        degradation(torch.rand(3, SIZE, SIZE), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        degradation(x, torch.tensor([0.5, 1.2]))
    with pytest.raises(ValueError, match="severities must have shape"):
        degradation(x, torch.tensor([0.5, 0.2, 0.1]))


def test_signature_records_parameters_and_schedule():
    base = GaussianInpainting(3, SIZE).signature()
    assert base["s_max"] == 50.0 and base["schedule"] == {"kind": "linear", "c_min": 0.1, "c_max": 50.0}
    assert GaussianInpainting(3, SIZE, s_max=30.0).signature() != base
    blur = GaussianBlur(3, SIZE).signature()
    assert blur["class"] == "dirac.degradations.blur.GaussianBlur" and len(blur["schedule"]["c"]) == 102
    assert GaussianBlur(3, SIZE, schedule=LinearSeverity(0.3, 3.0)).signature() != blur


# --- Gaussian blur ---------------------------------------------------------------------------------------------


def impulse(size: int) -> torch.Tensor:
    image = torch.zeros(1, 1, size, size, dtype=torch.float64)
    image[..., size // 2, size // 2] = 1.0
    return image


# s(0.5) = (1.0915 + 1.1104) / 2 = 1.10095 from the schedule file (rows 50 and 51), rescaled so that s(0) = 0.3 -> std 0
@pytest.mark.parametrize(("t", "std"), [(1.0, 3.0), (0.5, (1.10095 - 0.3) / 2.7 * 3.0)])
def test_blur_at_reference_size_matches_a_sampled_gaussian(t, std):
    blur = GaussianBlur(1, 256).double()
    expected = ndimage.gaussian_filter(impulse(256)[0, 0].numpy(), std, truncate=6.0)
    np.testing.assert_allclose(blur(impulse(256), t)[0, 0].numpy(), expected, atol=2e-6)


def test_blur_kernel_at_t1_sums_to_one_and_keeps_constants():
    blur = GaussianBlur(3, SIZE)
    kernel = blur.kernels(torch.tensor([3.0]))
    assert kernel.shape == (1, 7)
    torch.testing.assert_close(kernel.sum(), torch.tensor(1.0))
    constant = torch.full((1, 3, SIZE, SIZE), 0.7)
    torch.testing.assert_close(blur(constant, 1.0), constant)


def test_blur_scales_kernel_and_std_with_image_size():
    blur = GaussianBlur(1, SIZE).double()  # std 3.0 * 32 / 256 = 0.375 px at t = 1
    expected = ndimage.gaussian_filter(impulse(SIZE)[0, 0].numpy(), 0.375, truncate=3 / 0.375)
    np.testing.assert_allclose(blur(impulse(SIZE), 1.0)[0, 0].numpy(), expected, atol=1e-7)
    assert [scaled_kernel_size(61, size / 256, size) for size in (256, 128, 64, 32, 8, 4)] == [61, 31, 15, 7, 3, 3]
    assert [scaled_kernel_size(61, 1.0, size) for size in (32, 33, 61, 62)] == [31, 31, 59, 61]


def test_blur_rejects_a_schedule_that_misses_its_std_range():
    with pytest.raises(ValueError, match="must map t = 0 to 0.3"):
        GaussianBlur(3, SIZE, schedule=TabulatedSeverity([0.0, 1.0], [0.5, 3.0]))
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur(3, SIZE, kernel_size=60)


# --- Gaussian inpainting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s_max", "mean", "below_half", "corner"), [(50.0, 0.520, 0.44, 0.994), (30.0, 0.820, 0.16, 1.0)]
)
def test_gaussian_mask_at_t1_has_the_reference_statistics(s_max, mean, below_half, corner):
    mask = GaussianInpainting(1, 256, s_max=s_max).masks(torch.tensor([s_max]))[0]
    assert mask.mean().item() == pytest.approx(mean, abs=5e-3)
    assert (mask < 0.5).float().mean().item() == pytest.approx(below_half, abs=5e-3)
    assert mask[0, 0].item() == pytest.approx(corner, abs=5e-4)
    assert mask[128, 128].item() == 0.0


def test_gaussian_mask_formula_and_truncation_at_small_size():
    inpainting = GaussianInpainting(1, SIZE).double()
    t = 0.3  # s = (0.1 + 0.3 * 49.9) / 8 = 1.884 px, truncation radius floor(4 s + 0.5) = 8
    std = (0.1 + t * 49.9) / 8
    mask = inpainting(torch.ones(1, 1, SIZE, SIZE, dtype=torch.float64), t)[0, 0]
    rows, cols = torch.meshgrid(torch.arange(SIZE) - 16, torch.arange(SIZE) - 16, indexing="ij")
    formula = (1 - torch.exp(-(rows**2 + cols**2) / (2 * std**2))) ** 4
    inside = torch.maximum(rows.abs(), cols.abs()) <= 8
    torch.testing.assert_close(mask, torch.where(inside, formula.double(), 1.0))
    assert (mask[~inside] == 1).all() and (mask[inside] < 1).all()


def test_gaussian_mask_zeroes_only_the_centre_just_after_t0():
    mask = GaussianInpainting(1, SIZE).masks(torch.tensor([0.1 + 1e-3]))[0]
    assert mask[16, 16] == 0 and (mask.flatten().sort().values[1:] == 1).all()


# --- box inpainting, super-resolution, colorization --------------------------------------------------------------


def test_box_mask_has_a_sharp_square_at_integer_sides_and_a_linear_border_between():
    box = BoxInpainting(1, SIZE)  # side c * 32, up to 16 px
    mask = box.masks(torch.tensor([0.5, 9 / 32]))
    expected = torch.ones(SIZE, SIZE)
    expected[8:24, 8:24] = 0
    torch.testing.assert_close(mask[0], expected, atol=0, rtol=0)
    border = mask[1][SIZE // 2]  # side 9 around the centre 15.5 spans [11, 20]: pixels 12-19 plus half of 11 and 20
    torch.testing.assert_close(border[10:22], torch.tensor([1.0, 0.5] + [0.0] * 8 + [0.5, 1.0]))
    assert (border[:10] == 1).all() and (border[22:] == 1).all()


def test_superresolution_levels_and_blend():
    sr = BlockSuperResolution(3, SIZE, factor=4)
    x = torch.rand(2, 3, SIZE, SIZE)

    def blocks(k):
        return F.interpolate(F.avg_pool2d(x, k), scale_factor=k, mode="nearest")

    torch.testing.assert_close(sr(x, 1.0), blocks(4))
    torch.testing.assert_close(sr(x, 0.5), blocks(2))
    torch.testing.assert_close(sr(x, 0.25), 0.5 * x + 0.5 * blocks(2))
    torch.testing.assert_close(sr(x, 0.875), 0.25 * blocks(2) + 0.75 * blocks(4))
    with pytest.raises(ValueError, match="divisible"):
        BlockSuperResolution(3, 30, factor=4)
    with pytest.raises(ValueError, match="power of two"):
        BlockSuperResolution(3, SIZE, factor=3)


def test_colorization_fades_to_the_channel_mean():
    x = torch.rand(2, 3, SIZE, SIZE)
    gray = x.mean(dim=1, keepdim=True).expand_as(x)
    expected = torch.stack([gray[0], 0.75 * x[1] + 0.25 * gray[1]])
    torch.testing.assert_close(Colorization(3, SIZE)(x, torch.tensor([1.0, 0.25])), expected)
    with pytest.raises(ValueError, match="two channels"):
        Colorization(1, SIZE)
