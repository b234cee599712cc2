"""RGM's priors against closed forms: MMD of shifted Gaussians (RBF mixture), the KL estimate at the optimal
discriminator, R1 of a linear critic, DSWD against SW with random directions."""

from __future__ import annotations

import math

import pytest
import torch

from dirac.priors import DSWDPrior, KLDPrior, MMDPrior, discriminator_loss, dswd_distance, kl_estimate, mmd2, r1_penalty
from dirac.priors.dswd import random_directions, sliced_wasserstein


def analytic_mmd2(shift: float, std: float, dim: int, bandwidths) -> float:
    """MMD² of N(0, s²I) and N(Δ, s²I) under Σ_σ exp(−‖x−y‖²/2σ²): Σ_σ 2c(1 − exp(−Δ²/2(σ²+2s²))),
    c = (σ²/(σ²+2s²))^{d/2}."""
    total = 0.0
    for sigma in bandwidths:
        v = sigma ** 2 + 2 * std ** 2
        total += 2 * (sigma ** 2 / v) ** (dim / 2) * (1 - math.exp(-shift ** 2 / (2 * v)))
    return total


def test_mmd_of_identical_samples_is_zero_and_of_shifted_gaussians_is_analytic():
    g = torch.Generator().manual_seed(0)
    bandwidths = (0.5, 1.0, 2.0)
    x = 0.5 * torch.randn(3000, 2, generator=g)
    y = 0.5 * torch.randn(3000, 2, generator=g) + torch.tensor([1.0, 0.0])
    assert float(mmd2(x, x, bandwidths)) == pytest.approx(0.0, abs=1e-6)
    expected = analytic_mmd2(1.0, 0.5, 2, bandwidths)
    assert float(mmd2(x, y, bandwidths, biased=False)) == pytest.approx(expected, rel=0.03)
    assert float(mmd2(x, y, bandwidths)) == pytest.approx(expected, rel=0.05)  # biased: O(1/n) above
    same = 0.5 * torch.randn(3000, 2, generator=g)
    assert abs(float(mmd2(x, same, bandwidths, biased=False))) < 0.02 * expected


def test_mmd_prior_distance_is_sqrt_of_relu_mmd2_and_refuses_bad_bandwidths():
    prior = MMDPrior()
    x, y = torch.randn(200, 2), torch.randn(200, 2) + 1
    assert float(prior.distance(x, y)) == pytest.approx(float(mmd2(x, y, prior.bandwidths)) ** 0.5, rel=1e-5)
    assert prior.bandwidths == [0.1, 0.5, 1.0, 2.0, 10.0] and not prior.uses_discriminator
    with pytest.raises(ValueError, match="bandwidths"):
        MMDPrior(bandwidths=(0.0, 1.0))


def normal_log_density(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


def test_kl_estimate_at_the_optimal_discriminator_is_kl_of_generator_to_data():
    # p_G = N(0, 1), p_data = N(1, 1.5²); D*'s logit = log p_data − log p_G
    g = torch.Generator().manual_seed(1)
    fake = torch.randn(400_000, generator=g)
    optimal = lambda x: normal_log_density(x, 1.0, 1.5) - normal_log_density(x, 0.0, 1.0)  # noqa: E731
    kl = math.log(1.5) + (1 + 1) / (2 * 1.5 ** 2) - 0.5
    assert float(kl_estimate(optimal(fake)).mean()) == pytest.approx(kl, rel=0.02)
    assert float(KLDPrior().generator_loss(optimal(fake))) == pytest.approx(kl, rel=0.02)
    real = 1.0 + 1.5 * torch.randn(400_000, generator=g)
    best = float(discriminator_loss(optimal(real), optimal(fake)))
    for shift in (-0.5, 0.5):  # the logistic loss is minimised by D*
        assert float(discriminator_loss(optimal(real) + shift, optimal(fake) + shift)) > best + 1e-3


def test_r1_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.tensor([3.0, -4.0])
    x = torch.randn(16, 2, requires_grad=True)
    assert float(r1_penalty(x @ w, x)) == pytest.approx(25.0)


def test_dswd_exceeds_random_direction_sw_on_separated_distributions_and_vanishes_on_identical():
    torch.manual_seed(0)
    dim = 16
    x = torch.randn(256, dim)
    y = torch.randn(256, dim)
    y[:, 0] += 4.0  # separated along one axis that random directions mostly miss
    prior = DSWDPrior(dim=dim, projections=10, inner_steps=50, cosine_weight=1.0)
    theta = random_directions(10, dim)
    plain = float(sliced_wasserstein(x, y, theta))
    learned = float(dswd_distance(prior, x, y, lr=0.05))
    assert learned > 1.5 * plain
    assert float(prior.distance(x, x, theta)) == pytest.approx(0.0, abs=1e-6)


def test_dswd_refuses_bad_counts():
    with pytest.raises(ValueError, match="projections"):
        DSWDPrior(projections=0)
