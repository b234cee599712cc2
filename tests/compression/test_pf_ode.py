"""The score-scaled PF-ODE decoder on a Gaussian source (SPEC §3 Gaussian check): the closed form
mu + (v / (v + s^2))^(rho / 2) (y - mu) for every rho, second-order convergence, rho = 1 keeps the source variance,
rho = 2 is the MMSE estimate (Tweedie)."""

from __future__ import annotations

import pytest
import torch

from dirac.denoisers import GaussianDenoiser
from dirac.samplers.grids import pf_ode_sigmas
from dirac.samplers.pf_ode import score_scaled_pf_ode, tweedie
from dirac.samplers.step import Step

S = 0.5


def source(batch: int = 4, seed: int = 0):
    """(denoiser, mu, v, y): a float64 diagonal Gaussian of 3x4x4 with varied variances and y = x + s n."""
    generator = torch.Generator().manual_seed(seed)
    mu = torch.rand(3, 4, 4, generator=generator, dtype=torch.float64)
    v = 0.01 + 0.3 * torch.rand(3, 4, 4, generator=generator, dtype=torch.float64)
    x = mu + v.sqrt() * torch.randn(batch, 3, 4, 4, generator=generator, dtype=torch.float64)
    y = x + S * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return GaussianDenoiser(mu, v), mu, v, y


def closed_form(mu, v, y, rho):
    return mu + (v / (v + S**2)) ** (rho / 2) * (y - mu)


@pytest.mark.parametrize("rho", [0.5, 1.0, 1.5, 2.0])
def test_decoder_reproduces_the_gaussian_closed_form(rho):
    denoiser, mu, v, y = source()
    x_hat = score_scaled_pf_ode(denoiser, y, S, rho, steps=256)
    assert (x_hat - closed_form(mu, v, y, rho)).abs().max() < 1e-4


@pytest.mark.parametrize("rho", [1.0, 2.0])
def test_error_falls_at_second_order(rho):
    denoiser, mu, v, y = source()
    errors = [(score_scaled_pf_ode(denoiser, y, S, rho, steps=n) - closed_form(mu, v, y, rho)).abs().max().item()
              for n in (16, 32, 64)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(3.5 < ratio < 4.5 for ratio in ratios), (errors, ratios)


def test_rho_one_keeps_the_source_variance_and_rho_two_is_mmse():
    v, mu = 0.25, 0.3
    denoiser = GaussianDenoiser(torch.tensor(mu, dtype=torch.float64), torch.tensor(v, dtype=torch.float64))
    generator = torch.Generator().manual_seed(1)
    x = mu + v**0.5 * torch.randn(20000, 1, 1, 1, generator=generator, dtype=torch.float64)
    y = x + S * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    perceptual = score_scaled_pf_ode(denoiser, y, S, 1.0, steps=128)
    assert perceptual.var().item() == pytest.approx(v, rel=0.03)
    mmse = score_scaled_pf_ode(denoiser, y, S, 2.0, steps=128)
    assert (mmse - tweedie(denoiser, y, S)).abs().max() < 1e-4
    assert (mmse - x).pow(2).mean().item() == pytest.approx(v * S**2 / (v + S**2), rel=0.03)
    assert (perceptual - x).pow(2).mean().item() == pytest.approx(2 * v * (1 - (v / (v + S**2)) ** 0.5), rel=0.03)


def test_rho_zero_returns_y_and_the_callback_sees_every_step():
    denoiser, _, _, y = source()
    seen: list[Step] = []
    assert torch.equal(score_scaled_pf_ode(denoiser, y, S, 0.0, steps=5, callback=seen.append), y)
    assert [step.index for step in seen] == list(range(5)) and seen[-1].t_next == 0.0 and seen[-1].is_last


def test_grid_and_bad_settings():
    grid = pf_ode_sigmas(1.0, 4, kappa=2.0)
    assert grid[0] == 1.0 and grid[-1] == 0.0 and grid == sorted(grid, reverse=True) and len(grid) == 5
    denoiser, _, _, y = source()
    for kwargs in ({"rho": -1.0}, {"steps": 0}, {"kappa": 0.0}):
        with pytest.raises(ValueError):
            score_scaled_pf_ode(denoiser, y, S, **kwargs)
