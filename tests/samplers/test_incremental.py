"""Incremental-reconstruction variants (SPEC §1.3, paper App. G): first-order agreement and the exact JVP."""

import pytest
import torch

from dirac.degradations.noise import GeometricNoise
from dirac.samplers import INCREMENTAL_VARIANTS, dirac_reverse, incremental_reconstruction, time_grid

FIRST_ORDER = ("look_ahead", "small_look_ahead", "look_back", "small_look_back")


def reconstruction(variant, degradation, x, t, dt, delta=0.005):
    y_hat = degradation.apply(x, x.new_full((x.shape[0],), t))
    return incremental_reconstruction(variant, degradation, x, y_hat, t, dt, delta)


@pytest.mark.parametrize("variant", FIRST_ORDER)
def test_variants_differ_from_the_exact_derivative_by_order_dt_squared(mask, variant):
    """R = -dt dA_t/dt + O(dt^2): the gap to the exact variant shrinks 4x when dt halves (delta = dt/4)."""
    mask, x = mask.double(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    gaps, sizes = [], []
    for dt in (0.04, 0.02, 0.01):
        exact = reconstruction("exact", mask, x, 0.5, dt)
        gaps.append((reconstruction(variant, mask, x, 0.5, dt, delta=dt / 4) - exact).norm().item())
        sizes.append(exact.norm().item())
    assert all(3.6 < coarse / fine < 4.4 for coarse, fine in zip(gaps, gaps[1:]))
    assert gaps[-1] < 0.02 * sizes[-1]


def test_exact_variant_is_minus_dt_times_the_finite_difference(mask):
    mask, x, h = mask.double(), torch.rand(2, 3, 8, 8, dtype=torch.float64), 1e-5
    times = torch.full((2,), 0.37, dtype=torch.float64)
    central = (mask.apply(x, times + h) - mask.apply(x, times - h)) / (2 * h)
    torch.testing.assert_close(reconstruction("exact", mask, x, 0.37, 0.02), -0.02 * central, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(reconstruction("exact", mask, x, 0.37, 0.02), -0.02 * mask.time_derivative(x, times))


@pytest.mark.parametrize("variant", INCREMENTAL_VARIANTS)
def test_variants_are_exact_for_a_degradation_linear_in_t(fading, x0, variant):
    """A_t = (1 - t/2) I: every variant but identity gives R = A_{t-dt}(x) - A_t(x) = dt/2 x."""
    expected = torch.zeros_like(x0) if variant == "identity" else 0.01 * x0
    torch.testing.assert_close(reconstruction(variant, fading, x0, 0.6, 0.02), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("variant", ["look_back", "small_look_back"])
def test_look_back_looks_ahead_only_on_the_first_step(mask, x0, variant):
    look_ahead = reconstruction("look_ahead", mask, x0, 1.0, 0.02)
    torch.testing.assert_close(reconstruction(variant, mask, x0, 1.0, 0.02), look_ahead)
    second = reconstruction(variant, mask, x0, 1.0 - 0.02, 0.02)
    assert not torch.allclose(second, reconstruction("look_ahead", mask, x0, 1.0 - 0.02, 0.02), rtol=1e-3, atol=0)
    if variant == "look_back":
        torch.testing.assert_close(second, mask(x0, 0.98) - mask(x0, 1.0))


def test_small_look_ahead_shrinks_delta_near_t_zero(mask, x0):
    """With delta > t the variant uses delta = t, i.e. (A_0(x) - A_t(x)) dt / t, and stays finite."""
    torch.testing.assert_close(reconstruction("small_look_ahead", mask, x0, 0.002, 0.002, delta=0.005),
                               x0 - mask(x0, 0.002))


@pytest.mark.parametrize("variant", INCREMENTAL_VARIANTS)
def test_every_variant_runs_the_reverse_process_towards_the_image(mask, x0, variant):
    """With an oracle Phi (it returns x0) every variant's last iterate is far nearer x0 than the measurement was."""
    y = mask(x0, 1.0) + 0.05 * torch.randn_like(x0)
    out = dirac_reverse(lambda y_t, t: x0, y, mask, GeometricNoise(), time_grid(0.25), incremental=variant,
                        output="iterate", small_delta=0.1, generator=torch.Generator().manual_seed(0))
    assert out.shape == x0.shape and (out - x0).norm() < 0.75 * (y - x0).norm()


def test_unknown_variant_is_rejected(mask, x0):
    with pytest.raises(ValueError, match="choose one of: look_ahead"):
        reconstruction("look_sideways", mask, x0, 0.5, 0.02)
