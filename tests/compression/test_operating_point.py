"""RCC's operating point (issue 34 item 4): the truncated-PFR bias computed in closed form and removed by aiming, and
the default codec on Gaussian sources with the exact denoiser within 5 % of SPEC §3's theory (sum KL against the
exact-sample floor of its ladder, the residual noise of x_s against s^2, the MMSE and rho = 1 MSE against theirs).
The figures of experiments/rcc_operating_point.py (3x32x32, ladder 1 -> 0.05 in 24 levels): default (chunk KL 8,
pad 4, aimed) KL/floor 1.008, residual 0.994 s^2, MSE/MMSE 1.005; the former default (8, 2, unaimed) 1.22, 1.32 s^2,
1.40."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dirac.compression import Chunking, Codec, Ladder
from dirac.compression.gaussian_theory import (MEAN, gaussian_source, ladder_kl_bits, mmse, mutual_information_bits,
                                               pf_ode_mse, rate_for_distortion)
from dirac.compression.pfr import aim_gain, aimed_select, pfr_select, selected_projection
from dirac.denoisers import GaussianDenoiser

LN2 = math.log(2)


def test_closed_forms_reproduce_the_reference_numbers():
    """rcc.md §3: v = 1, geometric s 100 -> 0.5: sum KL / I = 1.76 (5 steps: 6 levels), 1.15 (20), 1.027 (100);
    R(D) of a uniform Gaussian is 1/2 log2(v / D) per dimension, so R(MMSE(s)) = I(X; Y)."""
    for steps, ratio in ((5, 1.76), (20, 1.15), (100, 1.027)):
        sigmas = list(100 * (0.5 / 100) ** (np.arange(steps + 1) / steps))
        assert ladder_kl_bits(1.0, sigmas) / mutual_information_bits(1.0, 0.5) == pytest.approx(ratio, abs=0.01)
    v = np.full(10, 0.02)
    assert rate_for_distortion(v, mmse(v, 0.05)) == pytest.approx(mutual_information_bits(v, 0.05), rel=1e-6)
    assert pf_ode_mse(0.25, 3**0.5, 1.0) == pytest.approx(0.3613, abs=1e-4)  # rcc.md §1 worked numbers
    assert pf_ode_mse(0.25, 3**0.5, 2.0) == pytest.approx(mmse(0.25, 3**0.5)) == pytest.approx(0.2308, abs=1e-4)


def test_the_truncated_pfr_bias_matches_simulation_and_aiming_removes_it():
    """Chunk KL 8 bits against K = 2^10: the closed form's realised shift f = 0.840 (rcc.md §7: 0.85), as 300 draws
    of `pfr_select` give; the aimed choice's mean shift is 1 (0.99-1.01 in closed form, within 0.05 in 300 draws)."""
    m, count = math.sqrt(2 * 8 * LN2), 2**10
    mean, _ = selected_projection(m, count)
    assert mean / m == pytest.approx(0.840, abs=0.005)
    assert selected_projection(aim_gain(m, count) * m, count)[0] / m == pytest.approx(1.0, abs=0.01)
    generator, plain, aimed = torch.Generator().manual_seed(0), [], []
    for trial in range(300):
        direction = torch.randn(16, generator=generator)
        mu = direction / direction.norm() * m
        plain.append(pfr_select(mu, trial, 0, 0, count, count).shift)
        aimed.append(aimed_select(mu, trial, 0, 0, count, count).shift)
    assert np.mean(plain) == pytest.approx(mean / m, abs=0.02)
    assert np.mean(aimed) == pytest.approx(1.0, abs=0.05)
    assert aim_gain(0.0, count) == 1.0 and selected_projection(m, 2**20)[0] / m > 0.95  # more candidates: less bias


@pytest.mark.parametrize("kind", ["gaussian", "heavy"])
def test_the_default_codec_is_within_five_percent_of_the_gaussian_theory(kind: str):
    """3x32x32, ladder 1 -> 0.05 in 24 levels, default chunking, the exact denoiser: sum KL within 5 % of the ladder's
    exact-sample floor, ||x_s - x0||^2 within 5 % of d s^2, Tweedie's MSE within 5 % of MMSE(s), the rho = 1 PF-ODE's
    MSE and output spread within 5 % of theirs (the source's); and the file within 5 % of the measured 1.63 I
    (gaussian) / 1.70 I (heavy), 1.63 / 1.83 x R(MSE), the least rate of any code for that MSE."""
    shape = (3, 32, 32)
    variance, x0 = gaussian_source(kind, shape, seed=0)
    codec = Codec(GaussianDenoiser(torch.full(shape, MEAN), variance), Ladder(1.0, 0.05, 24), Chunking(),
                  unit_range=False)
    encoding = codec.encode(x0)
    s, v = encoding.sigma, variance.double().flatten().numpy()
    information = mutual_information_bits(v, s)
    assert sum(encoding.kl_bits) / ladder_kl_bits(v, codec.ladder.sigmas()) == pytest.approx(1.0, abs=0.05)
    assert (encoding.realised_sigma / s) ** 2 == pytest.approx(1.0, abs=0.05)
    error = float((codec.reconstruct(encoding.x_s, s, mmse=True) - x0).double().square().mean())
    assert error / mmse(v, s) == pytest.approx(1.0, abs=0.05)
    perceptual = codec.reconstruct(encoding.x_s, s, rho=1.0, ode_steps=64).double()
    assert float((perceptual - x0).square().mean()) / pf_ode_mse(v, s, 1.0) == pytest.approx(1.0, abs=0.05)
    spread = float((x0.double() - MEAN).square().mean())  # the sample's own spread (heavy tails: far from mean v)
    assert float((perceptual - MEAN).square().mean()) / spread == pytest.approx(1.0, abs=0.05)
    file_ratio, rd_ratio = {"gaussian": (1.63, 1.63), "heavy": (1.70, 1.83)}[kind]
    assert encoding.bits / information < 1.05 * file_ratio
    assert encoding.bits / rate_for_distortion(v, error) < 1.05 * rd_ratio
