"""Issue 15 fixes of the reverse process: float32 outside the network under autocast (5a), a grid that reaches
t = 0 with the actual step length when dt does not divide 1 (5b)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dirac.degradations import GaussianBlur
from dirac.degradations.noise import ConstantNoise, GeometricNoise
from dirac.restorers import DiracSampler
from dirac.samplers import INCREMENTAL_VARIANTS, incremental_reconstruction, time_grid


def test_a_grid_whose_dt_does_not_divide_one_ends_at_zero():
    assert time_grid(0.3) == [(1.0, 0.7), (0.7, 0.4), (0.4, 0.1), (0.1, 0.0)]
    assert DiracSampler(dt=0.3).nfe == 4 and DiracSampler(dt=0.3, stop_t=0.5).nfe == 2
    assert time_grid(0.02)[-1] == (0.02, 0.0) and len(time_grid(0.02)) == 50


@pytest.mark.parametrize("variant", INCREMENTAL_VARIANTS)
def test_every_variant_uses_the_actual_length_of_the_short_last_step(variant, mask, x0):
    """With constant noise the step is y_next = y_t + R exactly (no denoising, no noise), so the last step of
    dt 0.3 shows R computed with its actual length 0.1, not the nominal 0.3."""
    steps = []
    sampler = DiracSampler(dt=0.3, incremental=variant, guidance="none", output="iterate")
    sampler(lambda y_t, t: x0, mask(x0, 1.0), mask, ConstantNoise(0.05), callback=steps.append)
    last = steps[-1]
    assert (last.t, last.t_next) == (0.1, 0.0)
    y_hat = mask.apply(x0, torch.full((2,), 0.1))
    expected = incremental_reconstruction(variant, mask, x0, y_hat, 0.1, 0.1)
    torch.testing.assert_close(last.x_next - last.x, expected, atol=1e-6, rtol=1e-5)


def test_under_bf16_autocast_only_the_network_runs_in_reduced_precision():
    """A sampler step under CPU bf16 autocast equals float32 to 1e-6 when phi itself is exact: the blur, the noise
    schedule and the step arithmetic stay float32 (in bf16 their error would be ~1e-2); phi sees autocast on."""
    blur = GaussianBlur(3, 32, reference_size=64)
    x0 = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = blur(x0, 1.0)
    seen = []

    def phi(y_t, t):
        seen.append(torch.is_autocast_enabled("cpu"))
        return y_t

    sampler = DiracSampler(dt=0.25, stop_t=0.0, guidance="std", output="iterate")
    reference = sampler(phi, y, blur, GeometricNoise(), torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = sampler(phi, y, blur, GeometricNoise(), torch.Generator().manual_seed(1))
        bf16_blur = blur.apply(x0, torch.ones(2))
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, reference, atol=1e-6, rtol=1e-6)
    assert seen[-1] is True and seen[0] is False
    assert (bf16_blur.float() - y).abs().max() > 1e-3  # what autocast would have done to the operator


def test_a_network_under_bf16_autocast_stays_close_to_float32():
    """With a conv net as phi the bf16 error is the network's alone: within 2e-2 of float32 (bf16 has 8 bits)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    blur = GaussianBlur(3, 16, reference_size=32)
    y = blur(torch.rand(2, 3, 16, 16), 1.0)

    def phi(y_t, t):
        return y_t + 0.1 * F.tanh(conv(y_t))

    sampler = DiracSampler(dt=0.25, guidance="none")
    reference = sampler(phi, y, blur, GeometricNoise(), torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = sampler(phi, y, blur, GeometricNoise(), torch.Generator().manual_seed(1))
    assert (mixed - reference).abs().max() < 2e-2
