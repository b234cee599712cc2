"""The denoiser protocol, the Gaussian posterior mean, EDM preconditioning and the VP/epsilon adapter (SPEC §1.5,
§3)."""

import math

import numpy as np
import pytest
import torch

from dirac.denoisers import (
    Denoiser,
    EDMDenoiser,
    GaussianDenoiser,
    VPDenoiser,
    check_denoiser_inputs,
    edm_loss_weight,
    edm_preconditioning,
    sigma_to_timestep,
    vp_sigmas,
)
from dirac.nets import NCSNpp

SHAPE = (3, 4, 4)


def gaussian_source(dtype=torch.float64):
    """A Gaussian source in [0, 1] units with per-pixel mean and variance."""
    mean = torch.rand(SHAPE, dtype=dtype) * 0.6 + 0.2
    variance = torch.rand(SHAPE, dtype=dtype) * 0.05 + 0.005
    return mean, variance


def noisy_batch(sigma, dtype=torch.float64):
    sigma = torch.as_tensor(sigma, dtype=dtype)
    return torch.rand(len(sigma), *SHAPE, dtype=dtype), sigma


@pytest.mark.parametrize(("x", "sigma", "message"), [
    (torch.rand(2, 3, 4), torch.ones(2), r"\(B, C, H, W\)"),
    (torch.rand(2, 3, 4, 4), torch.ones(3), r"shape \(2,\)"),
    (torch.rand(2, 3, 4, 4), torch.ones(2, 1), r"shape \(2,\)"),
    (torch.rand(2, 3, 4, 4), 0.5, r"shape \(2,\)"),
    (torch.rand(2, 3, 4, 4), torch.tensor([0.5, 0.0]), "> 0"),
    (torch.rand(2, 3, 4, 4), torch.tensor([0.5, -1.0]), "> 0"),
])
def test_malformed_inputs_are_clear_value_errors(x, sigma, message):
    with pytest.raises(ValueError, match=message):
        check_denoiser_inputs(x, sigma)
    with pytest.raises(ValueError, match=message):
        GaussianDenoiser(0.5, 0.1)(x, sigma)


def test_every_denoiser_satisfies_the_protocol():
    assert isinstance(GaussianDenoiser(0.5, 0.1), Denoiser)
    assert isinstance(EDMDenoiser(torch.nn.Identity()), Denoiser)


def test_gaussian_denoiser_is_the_bayes_posterior_mean_by_quadrature():
    mean, variance, sigma, x = 0.4, 0.03, 0.2, 0.75
    grid = np.linspace(mean - 12 * math.sqrt(variance), mean + 12 * math.sqrt(variance), 200001)
    posterior = np.exp(-((grid - mean) ** 2) / (2 * variance) - ((x - grid) ** 2) / (2 * sigma**2))
    expected = (grid * posterior).sum() / posterior.sum()
    denoiser = GaussianDenoiser(torch.tensor(mean, dtype=torch.float64), torch.tensor(variance, dtype=torch.float64))
    got = denoiser(torch.full((1, 1, 1, 1), x, dtype=torch.float64), torch.tensor([sigma], dtype=torch.float64))
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_gaussian_denoiser_reaches_the_mmse():
    mean, variance = gaussian_source()
    generator = torch.Generator().manual_seed(1)
    x0 = mean + variance.sqrt() * torch.randn(20000, *SHAPE, dtype=torch.float64, generator=generator)
    sigma = torch.full((20000,), 0.1, dtype=torch.float64)
    x = x0 + sigma[:, None, None, None] * torch.randn(x0.shape, dtype=torch.float64, generator=generator)
    error = (GaussianDenoiser(mean, variance)(x, sigma) - x0).pow(2).mean(0)
    torch.testing.assert_close(error, variance * 0.01 / (variance + 0.01), rtol=0.06, atol=0)


def test_edm_coefficients_match_table_1():
    sigma = torch.tensor([0.002, 0.5, 3.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, 0.5)
    torch.testing.assert_close(c_skip, 0.25 / (sigma**2 + 0.25))
    torch.testing.assert_close(c_out, sigma * 0.5 / (sigma**2 + 0.25).sqrt())
    torch.testing.assert_close(c_in, 1 / (sigma**2 + 0.25).sqrt())
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    # EDM's design: unit-variance network inputs and targets, and lambda = 1 / c_out^2
    torch.testing.assert_close(c_in**2 * (0.25 + sigma**2), torch.ones_like(sigma))
    torch.testing.assert_close(edm_loss_weight(sigma, 0.5) * c_out**2, torch.ones_like(sigma))


class OracleNet(torch.nn.Module):
    """The ideal EDM network F for a Gaussian source, written in the centred [-1, 1] units the preconditioner uses."""

    def __init__(self, mean, variance, sigma_data):
        super().__init__()
        self.centred = GaussianDenoiser(2 * mean - 1, 4 * variance)
        self.sigma_data = sigma_data

    def forward(self, scaled_x, noise_label):
        sigma_m = (4 * noise_label).exp()
        c_skip, c_out, c_in, _ = edm_preconditioning(sigma_m, self.sigma_data)
        x_m = scaled_x / c_in[:, None, None, None]
        target = self.centred(x_m, sigma_m)
        return (target - c_skip[:, None, None, None] * x_m) / c_out[:, None, None, None]


@pytest.mark.parametrize("sigma_data", [0.5, 0.2])
def test_edm_denoiser_with_the_ideal_network_is_the_posterior_mean(sigma_data):
    mean, variance = gaussian_source()
    x, sigma = noisy_batch([0.01, 0.1, 0.5, 5.0])
    edm = EDMDenoiser(OracleNet(mean, variance, sigma_data), sigma_data=sigma_data)
    torch.testing.assert_close(edm(x, sigma), GaussianDenoiser(mean, variance)(x, sigma), atol=1e-10, rtol=1e-10)


def test_edm_loss_is_the_centred_edm_objective_in_data_units():
    net = NCSNpp(3, 3, 8, model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), dropout=0.0)
    edm = EDMDenoiser(net)
    x0, noise, sigma = torch.rand(3, 3, 8, 8), torch.randn(3, 3, 8, 8), torch.tensor([0.01, 0.3, 2.0])
    loss = edm.loss(x0, sigma, noise)
    # EDM eq. 8 on centred data: lambda(s_m) ||D_m(x0_m + s_m n) - x0_m||^2 with x0_m = 2 x0 - 1, s_m = 2 sigma
    d_m = 2 * edm(x0 + sigma[:, None, None, None] * noise, sigma) - 1
    expected = edm_loss_weight(2 * sigma, 0.5) * (d_m - (2 * x0 - 1)).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)
    loss.mean().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_edm_training_noise_levels_are_log_normal_in_centred_units():
    sigma = EDMDenoiser(torch.nn.Identity()).sample_sigma(40000, generator=torch.Generator().manual_seed(0))
    log_centred = (2 * sigma).log()
    assert log_centred.mean().item() == pytest.approx(-1.2, abs=0.03)
    assert log_centred.std().item() == pytest.approx(1.2, abs=0.03)


def linear_alphas_cumprod(steps=200):
    betas = torch.linspace(1e-4, 0.02 * 1000 / steps, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


class AnalyticVPModel:
    """E[eps | x_t] (or v, or x0) for x0_m ~ N(m, V) in VP form x_t = sqrt(a) x0_m + sqrt(1 - a) eps,
    at fractional timesteps.

    abar at a fractional timestep follows the adapter's documented interpolation of log sigma (numpy, independently).
    """

    def __init__(self, mean, variance, alphas_cumprod, prediction_type="epsilon"):
        self.m, self.V = 2 * mean - 1, 4 * variance
        self.log_sigmas = np.log(np.sqrt((1 - alphas_cumprod.numpy()) / alphas_cumprod.numpy()))
        self.prediction_type = prediction_type

    def __call__(self, x_t, timestep):
        sigma = np.exp(np.interp(timestep.numpy(), np.arange(len(self.log_sigmas)), self.log_sigmas))
        a = torch.as_tensor(1 / (1 + sigma**2), dtype=x_t.dtype)[:, None, None, None]
        marginal = a * self.V + 1 - a
        eps = (1 - a).sqrt() / marginal * (x_t - a.sqrt() * self.m)
        x0 = self.m + a.sqrt() * self.V / marginal * (x_t - a.sqrt() * self.m)
        return {"epsilon": eps, "sample": x0,
                "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}[self.prediction_type]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_vp_adapter_of_the_analytic_model_is_the_gaussian_denoiser(prediction_type):
    mean, variance = gaussian_source()
    alphas_cumprod = linear_alphas_cumprod()
    sigmas_01 = vp_sigmas(alphas_cumprod) / 2  # the schedule in [0, 1] units
    x, sigma = noisy_batch([sigmas_01[0] * 1.5, 0.05, 0.3, sigmas_01[-1] * 0.9])
    adapter = VPDenoiser(AnalyticVPModel(mean, variance, alphas_cumprod, prediction_type), alphas_cumprod,
                         prediction_type)
    torch.testing.assert_close(adapter(x, sigma), GaussianDenoiser(mean, variance)(x, sigma), atol=1e-10, rtol=1e-10)


def test_nearest_timesteps_are_exact_on_the_schedule():
    mean, variance = gaussian_source()
    alphas_cumprod = linear_alphas_cumprod()
    sigma = vp_sigmas(alphas_cumprod)[[3, 50, 199]] / 2
    x, _ = noisy_batch(sigma)
    adapter = VPDenoiser(AnalyticVPModel(mean, variance, alphas_cumprod), alphas_cumprod, timestep_mode="nearest")
    torch.testing.assert_close(adapter(x, sigma), GaussianDenoiser(mean, variance)(x, sigma), atol=1e-10, rtol=1e-10)


def test_sigma_to_timestep_interpolates_log_sigma_and_clamps():
    sigmas = torch.tensor([0.1, 0.4, 1.6, 6.4], dtype=torch.float64)
    query = torch.tensor([0.1, 0.2, 0.4, 6.4, 0.01, 100.0, 1.6 * 2 ** 0.5], dtype=torch.float64)
    torch.testing.assert_close(sigma_to_timestep(query, sigmas),
                               torch.tensor([0, 0.5, 1, 3, 0, 3, 2.25], dtype=torch.float64))
    torch.testing.assert_close(sigma_to_timestep(query, sigmas, "nearest"),
                               torch.tensor([0, 0, 1, 3, 0, 3, 2], dtype=torch.float64))


@pytest.mark.parametrize(("alphas_cumprod", "kwargs", "message"), [
    (torch.tensor([0.9, 0.95]), {}, "decreasing"),
    (torch.tensor([1.0, 0.5]), {}, r"\(0, 1\)"),
    (torch.tensor([0.9, 0.5]), {"prediction_type": "flow"}, "prediction_type"),
    (torch.tensor([0.9, 0.5]), {"timestep_mode": "linear"}, "timestep_mode"),
])
def test_vp_adapter_rejects_bad_schedules_and_modes(alphas_cumprod, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VPDenoiser(lambda x, t: x, alphas_cumprod, **kwargs)
