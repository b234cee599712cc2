"""The comparison baselines (SPEC §1.5, issue 17): ADMM-TV and PnP-ADMM decrease their objectives and beat the
measurement on a small blur problem, DDRM reaches the Gaussian posterior mean in the noiseless limit, DPS lowers the
measurement residual, operators a method cannot handle are refused before any work, and tuning/grids behave."""

from __future__ import annotations

import pytest
import torch
from tests.toy_degradations import SmoothMask
from torch import Tensor, nn

from dirac.data.embedded import patches, photo
from dirac.degradations import GaussianBlur
from dirac.degradations.base import Degradation
from dirac.degradations.noise import ConstantNoise, GeometricNoise
from dirac.degradations.operators import DiagonalOperator, as_severities
from dirac.denoisers import GaussianDenoiser
from dirac.metrics import psnr
from dirac.denoisers.loading import SharedDenoiser
from dirac.restorers import ADMMTV, DDRM, DPS, PnPADMM
from dirac.restorers.admm_tv import gradient, gradient_adjoint, tv_objective


class FixedMask(Degradation):
    """A_t = diag(1 - t (1 - m)) with m in [0.3, 1] and a zero top-left quadrant: an SVD
    (U = V = I) with a null space."""

    def __init__(self, channels: int, image_size: int) -> None:
        super().__init__(channels, image_size)
        mask = torch.linspace(0.3, 1.0, image_size * image_size).view(1, 1, image_size, image_size)
        mask[..., : image_size // 2, : image_size // 2] = 0
        self.register_buffer("mask", mask)

    def masks(self, t: Tensor) -> Tensor:
        return 1 - t.view(-1, 1, 1, 1) * (1 - self.mask)

    def apply(self, x: Tensor, t: Tensor) -> Tensor:
        return self.masks(t) * x

    def operator(self, t) -> DiagonalOperator:
        t = as_severities(t)
        return DiagonalOperator(self, t, self.masks(t))


@pytest.fixture(scope="module")
def blur_problem() -> tuple[Tensor, Tensor, GaussianBlur]:
    """Four 16 px crops of a photograph, blurred (as at 32 px) plus noise 0.05."""
    x0 = patches(photo("chelsea", 8.0), 16)[0][:4]
    degradation = GaussianBlur(3, 16, reference_size=32)
    y = degradation(x0, 1.0) + 0.05 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    return x0, y, degradation


def gaussian_prior(x0: Tensor) -> GaussianDenoiser:
    """The analytic denoiser of N(per-pixel mean, per-pixel variance) fitted to the crops."""
    return GaussianDenoiser(x0.mean(0), x0.var(0) + 1e-3)


def recorded(restorer, y: Tensor, degradation: Degradation, generator=None) -> tuple[Tensor, list[Tensor]]:
    """The restorer's output and its estimate after every iteration."""
    estimates: list[Tensor] = []
    output = restorer(y, degradation, generator, callback=lambda step: estimates.append(step.estimate.clone()))
    return output, estimates


def test_tv_gradient_adjoint_is_exact():
    x, g = torch.randn(2, 3, 5, 7), torch.randn(2, 2, 3, 5, 7)
    assert float((gradient(x) * g).sum()) == pytest.approx(float((x * gradient_adjoint(g)).sum()), rel=1e-5)


@pytest.mark.parametrize("tv", ["anisotropic", "isotropic"])
def test_admm_tv_decreases_its_objective_and_beats_the_measurement(blur_problem, tv):
    x0, y, degradation = blur_problem
    restorer = ADMMTV(lam=0.01, rho=0.5, iterations=60, tv=tv)
    output, estimates = recorded(restorer, y, degradation)
    operator = degradation.operator(1.0)
    energies = torch.stack([tv_objective(x, y, operator, restorer.lam, tv) for x in estimates])  # (iterations, B)
    start = tv_objective(y, y, operator, restorer.lam, tv)
    assert (energies[-1] < start).all() and (energies[-1] <= energies[5] + 1e-6).all()
    assert (energies[-1] - energies[-2]).abs().max() < 1e-3 * energies[-1].min()  # converged
    assert torch.equal(output, estimates[-1])
    assert psnr(output.clamp(0, 1), x0).mean() > psnr(y.clamp(0, 1), x0).mean() + 1.0


def test_pnp_admm_with_a_gaussian_prior_decreases_its_map_objective_and_beats_the_measurement(blur_problem):
    """With D the Gaussian posterior mean, PnP-ADMM is ADMM on 1/2||Ax - y||^2 + rho sigma^2 / 2 ||x - mu||^2_{1/v}."""
    x0, y, degradation = blur_problem
    prior = gaussian_prior(x0)
    restorer = PnPADMM(denoiser=prior, rho=1.0, sigma=0.05, iterations=30)
    output, estimates = recorded(restorer, y, degradation)
    operator = degradation.operator(1.0)
    lam = restorer.rho * restorer.sigma**2

    def objective(x: Tensor) -> Tensor:
        data = 0.5 * (operator.A(x) - y).flatten(1).square().sum(1)
        return data + 0.5 * lam * ((x - prior.mean) ** 2 / prior.variance).flatten(1).sum(1)

    energies = torch.stack([objective(x) for x in estimates])
    assert (energies[-1] < objective(y)).all() and (energies[-1] <= energies[2] + 1e-6).all()
    assert restorer.nfe == 30
    assert psnr(output.clamp(0, 1), x0).mean() > psnr(y.clamp(0, 1), x0).mean() + 1.0


def test_ddrm_reaches_the_gaussian_posterior_mean_in_the_noiseless_limit():
    """eta = 0 and sigma_y -> 0: measured coordinates at the posterior mean (= A^+ y) up to sigma_min, the null
    space sampled from the prior (mean mu over many draws, prior-sized spread)."""
    torch.manual_seed(0)
    degradation = FixedMask(1, 8)
    mean, variance = torch.rand(1, 8, 8) * 0.5 + 0.25, 0.04
    x0 = mean + variance**0.5 * torch.randn(1, 1, 8, 8)
    sigma_y = 1e-6
    y = degradation(x0, 1.0) + sigma_y * torch.randn_like(x0)
    s = degradation.operator(1.0).svd().s
    posterior_mean = mean + variance * s / (variance * s**2 + sigma_y**2) * (y - s * mean)
    draws = 128
    restorer = DDRM(denoiser=GaussianDenoiser(mean, variance), noise=ConstantNoise(sigma_y), eta=0.0, eta_b=1.0,
                    sigma_min=1e-5)
    out = restorer(y.expand(draws, -1, -1, -1).contiguous(), degradation,
                   [torch.Generator().manual_seed(index) for index in range(draws)])
    measured = (s > 0).expand_as(out)
    assert (out - posterior_mean)[measured].abs().max() < 1e-3
    null = ~measured[0]
    assert (out.mean(0) - posterior_mean[0])[null].abs().max() < 0.08
    assert 0.1 < out.std(0)[null].mean() < 0.3  # a sample of the prior (std 0.2), not a collapse to its mean
    assert restorer.nfe == 20


def test_ddrm_with_noise_is_a_posterior_sampler_on_blur(blur_problem):
    x0, y, degradation = blur_problem
    restorer = DDRM(denoiser=gaussian_prior(x0), noise=GeometricNoise(), steps=10)
    a = restorer(y, degradation, torch.Generator().manual_seed(0))
    b = restorer(y, degradation, torch.Generator().manual_seed(0))
    c = restorer(y, degradation, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.isfinite().all()
    residual = (degradation(a, 1.0) - y).flatten(1).norm(dim=1)
    assert (residual < 3 * 0.05 * a[0].numel() ** 0.5).all()  # consistent with y up to a few noise norms


def test_dps_lowers_the_measurement_residual_over_its_iterations(blur_problem):
    x0, y, degradation = blur_problem
    prior = gaussian_prior(x0)

    def residuals(zeta: float) -> Tensor:
        _, estimates = recorded(DPS(denoiser=prior, zeta=zeta, steps=30), y, degradation,
                                torch.Generator().manual_seed(0))
        return torch.stack([(y - degradation(x, 1.0)).flatten(1).norm(dim=1) for x in estimates])  # (steps, B)

    guided, unguided = residuals(0.5), residuals(0.0)
    floor = 0.05 * y[0].numel() ** 0.5  # ||y - A x0|| = the noise norm
    assert (guided[-1] < 0.7 * guided[0]).all() and (guided[-1] < 1.1 * floor).all()
    assert (guided[-1] < 0.7 * unguided[-1]).all()


def test_dps_runs_under_inference_mode(blur_problem):
    """Lightning evaluates under inference mode; DPS enables gradients locally and gives what it gives outside it."""
    x0, y, degradation = blur_problem
    dps = DPS(denoiser=gaussian_prior(x0), zeta=0.5, steps=3)
    with torch.inference_mode():
        out = dps(y, degradation, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, dps(y, degradation, torch.Generator().manual_seed(0)))


def test_baselines_are_batched_per_image_generators(blur_problem):
    """An image's output does not depend on its batch (per-image generators, no cross-image coupling)."""
    x0, y, degradation = blur_problem
    restorer = DDRM(denoiser=gaussian_prior(x0), noise=GeometricNoise(), steps=5)
    generators = lambda: [torch.Generator().manual_seed(10 + index) for index in range(4)]  # noqa: E731
    whole = restorer(y, degradation, generators())
    part = restorer(y[1:3], degradation, generators()[1:3])
    torch.testing.assert_close(part, whole[1:3], rtol=1e-4, atol=1e-5)


def test_ddrm_without_an_svd_is_refused_before_any_work():
    class Counting(torch.nn.Module):
        calls = 0

        def forward(self, x, sigma):
            Counting.calls += 1
            return x

    restorer = DDRM(denoiser=Counting(), noise=GeometricNoise())
    with pytest.raises(ValueError, match=r"DDRM .*SVD.*SmoothMask.*LinearOperator"):
        restorer.prepare(SmoothMask(3, 8))
    with pytest.raises(ValueError, match=r"DDRM .*SmoothMask"):
        restorer(torch.rand(1, 3, 8, 8), SmoothMask(3, 8))
    assert Counting.calls == 0
    restorer.prepare(FixedMask(3, 8))  # an operator with an SVD is fine
    with pytest.raises(ValueError, match="noise schedule"):
        DDRM(denoiser=Counting()).prepare(FixedMask(3, 8))


def test_a_missing_denoiser_names_the_experiment_that_trains_one():
    import functools

    from dirac.denoisers.loading import load_denoiser

    for restorer in (DPS(denoiser=functools.partial(load_denoiser, path=None)), PnPADMM()):
        with pytest.raises((FileNotFoundError, ValueError), match="experiment=denoiser_embedded"):
            restorer.prepare(FixedMask(3, 8))
    with pytest.raises(FileNotFoundError, match="experiment=denoiser_embedded"):
        DDRM(denoiser=functools.partial(load_denoiser, path="/no/such/denoiser.ckpt"),
             noise=GeometricNoise()).prepare(FixedMask(3, 8))


def test_the_denoiser_is_loaded_once_and_shared_by_copies():
    loads = []

    def loader():
        loads.append(1)
        return GaussianDenoiser(0.5, 0.04)

    restorer = PnPADMM(denoiser=loader)
    copy = restorer.with_params(rho=2.0)
    restorer.prepare(FixedMask(1, 4))
    copy(torch.rand(2, 1, 4, 4), FixedMask(1, 4))
    assert len(loads) == 1 and isinstance(copy.denoiser, SharedDenoiser) and copy.rho == 2.0


def test_loading_the_denoiser_leaves_the_global_random_stream_alone():
    """A comparison run trains Dirac on the same random draws as the run without baselines (same seed)."""

    def loader():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 1, 3))  # random initialisation draws from torch's RNG

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    PnPADMM(denoiser=loader).prepare(FixedMask(1, 4))
    assert torch.equal(torch.rand(3), expected)


def test_parameters_grids_and_tuning_declarations():
    restorer = ADMMTV(tune=["lam", "rho"], grids={"lam": [0.05, 0.01], "rho": [2, 0.5]})
    assert restorer.params == {"lam": 0.02, "rho": 0.2} and restorer.tuned == ("lam", "rho")
    assert restorer.grid("lam") == [0.01, 0.05] and restorer.grid("rho") == [0.5, 2.0]
    with pytest.raises(ValueError, match="tunes 'rho' but has no candidate grid for it; set grids.rho"):
        ADMMTV(tune=["rho"], grids={"lam": [0.01]})
    with pytest.raises(ValueError, match="no candidate grid for 'lam'"):
        ADMMTV().grid("lam")
    assert restorer.with_params(lam=0.1).lam == 0.1 and restorer.lam == 0.02
    assert DDRM().params == {"eta": 0.85, "eta_b": 1.0} and DPS().nfe == 1000 and ADMMTV().nfe == 0
    with pytest.raises(ValueError, match="no tunable parameter 'zeta'"):
        ADMMTV(tune=["zeta"])
    with pytest.raises(ValueError, match="no tunable parameter"):
        DDRM().with_params(lam=1.0)
    with pytest.raises(ValueError, match="unknown objective"):
        DPS(objective="fid")
    with pytest.raises(ValueError, match="tv"):
        ADMMTV(tv="l0")
