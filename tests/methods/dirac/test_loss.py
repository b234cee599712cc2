"""L(Δt) in closed form (SPEC §1.2): t' = max(t - Δt, 0), w = 1/(sigma_t^2 + 1e-9), sum over C·H·W, batch mean."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.degradations.noise import ConstantNoise, GeometricNoise
from dirac.methods.dirac import LookAheadLoss


class CountingFade(Degradation):
    """A_t(x) = (1 - t/2) x, counting its calls (A_0 = I)."""

    def __init__(self) -> None:
        super().__init__(2, 3)
        self.calls = 0

    def apply(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        return (1 - 0.5 * t).view(-1, 1, 1, 1) * x


def closed_form(x0_hat: Tensor, x0: Tensor, t: Tensor, delta_t: float, sigma: Tensor) -> float:
    """mean_b (1 - t'_b / 2)^2 * sum(diff_b^2) / (sigma_b^2 + 1e-9), written out per image."""
    values = []
    for b in range(len(t)):
        t_ahead = max(float(t[b]) - delta_t, 0.0)
        squared = float(((x0_hat[b] - x0[b]) ** 2).sum()) * (1 - 0.5 * t_ahead) ** 2
        values.append(squared / (float(sigma[b]) ** 2 + 1e-9))
    return sum(values) / len(values)


@pytest.mark.parametrize("delta_t", [0.0, 0.05, 1.0])
def test_the_loss_has_its_closed_form(delta_t):
    generator = torch.Generator().manual_seed(0)
    x0, x0_hat = torch.rand(4, 2, 3, 3, generator=generator, dtype=torch.float64), torch.rand(
        4, 2, 3, 3, generator=generator, dtype=torch.float64)
    t = torch.tensor([0.0, 0.03, 0.5, 1.0], dtype=torch.float64)  # 0.03 - 0.05 < 0: the clamp t' >= 0
    noise = GeometricNoise()
    loss = LookAheadLoss(delta_t)(x0_hat, x0, t, CountingFade(), noise)
    assert float(loss) == pytest.approx(closed_form(x0_hat, x0, t, delta_t, noise.sigma(t)), rel=1e-12)


def test_the_weight_is_one_over_sigma_squared_plus_eps():
    x0 = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    x0_hat = torch.ones_like(x0)  # squared error summed over C·H·W = 18
    loss = LookAheadLoss(1.0)(x0_hat, x0, torch.ones(1, dtype=torch.float64), CountingFade(), ConstantNoise(0.1))
    assert float(loss) == pytest.approx(18 / (0.01 + 1e-9), rel=1e-12)


def test_the_clean_loss_never_applies_the_identity_a0():
    fade = CountingFade()
    x0 = torch.rand(3, 2, 3, 3)
    LookAheadLoss(1.0)(x0 + 0.1, x0, torch.rand(3), fade, GeometricNoise())
    assert fade.calls == 0
    LookAheadLoss(0.05)(x0 + 0.1, x0, torch.rand(3), fade, GeometricNoise())
    assert fade.calls == 2


def test_a_configured_schedule_steps_the_learning_rate_every_optimisation_step():
    from functools import partial

    from dirac.degradations import GaussianBlur
    from dirac.methods.dirac import DiracModule
    from dirac.nets import NCSNpp
    from dirac.restorers import DiracSampler

    net = NCSNpp(3, 3, 16, model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=(), dropout=0.0)
    schedule = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-3, total_steps=10)
    module = DiracModule(net, GaussianBlur(3, 16, reference_size=32), GeometricNoise(), LookAheadLoss(1.0),
                         partial(torch.optim.Adam, lr=1e-3), DiracSampler(), DiracSampler(), scheduler=schedule)
    configured = module.configure_optimizers()
    assert configured["lr_scheduler"]["interval"] == "step"
    assert isinstance(configured["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.OneCycleLR)
    plain = DiracModule(net, GaussianBlur(3, 16, reference_size=32), GeometricNoise(), LookAheadLoss(1.0),
                        partial(torch.optim.Adam, lr=1e-3), DiracSampler(), DiracSampler())
    assert isinstance(plain.configure_optimizers(), torch.optim.Adam)


def test_the_psnr_loss_is_minus_the_mean_per_image_psnr_whatever_the_noise_weight():
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 2, 3, 3, generator=generator, dtype=torch.float64)
    x0_hat = x0 + 0.1 * torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    mse = [float(((x0_hat[b] - x0[b]) ** 2).mean()) for b in range(3)]
    expected = sum(10 * math.log10(value + 1e-10) for value in mse) / 3
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    for noise in (GeometricNoise(), ConstantNoise(0.3)):
        loss = LookAheadLoss(1.0, per_image="psnr")(x0_hat, x0, t, CountingFade(), noise)
        assert float(loss) == pytest.approx(expected, rel=1e-12)
    # a look-ahead short of t = 0 compares the degraded images: (1 - t'/2)^2 scales each image's MSE
    ahead = LookAheadLoss(0.5, per_image="psnr")(x0_hat, x0, t, CountingFade(), GeometricNoise())
    scales = [(1 - 0.5 * max(float(t[b]) - 0.5, 0.0)) ** 2 for b in range(3)]
    expected_ahead = sum(10 * math.log10(value * scale + 1e-10) for value, scale in zip(mse, scales)) / 3
    assert float(ahead) == pytest.approx(expected_ahead, rel=1e-12)


def test_the_psnr_loss_stays_finite_on_a_perfect_estimate():
    x0 = torch.rand(2, 2, 3, 3, requires_grad=False)
    x0_hat = x0.clone().requires_grad_(True)
    loss = LookAheadLoss(1.0, per_image="psnr")(x0_hat, x0, torch.ones(2), CountingFade(), GeometricNoise())
    loss.backward()
    assert float(loss.detach()) == pytest.approx(-100.0) and torch.isfinite(x0_hat.grad).all()


def test_the_psnr_loss_floor_bounds_the_weight_of_near_perfect_images():
    # d/dx_hat of 10 log10(MSE_b + floor) = 10 / ln 10 * 2 (x_hat - x0) / (N (MSE_b + floor)), over the batch mean
    generator = torch.Generator().manual_seed(2)
    x0 = torch.rand(2, 1, 4, 4, generator=generator, dtype=torch.float64)
    offsets = torch.tensor([1e-4, 0.1], dtype=torch.float64)[:, None, None, None]
    x0_hat = (x0 + offsets * torch.randn(x0.shape, generator=generator, dtype=torch.float64)).requires_grad_(True)
    floor = 1e-3
    loss = LookAheadLoss(1.0, per_image="psnr", floor=floor)
    loss(x0_hat, x0, torch.ones(2), CountingFade(), GeometricNoise()).backward()
    error = (x0_hat - x0).detach()
    mse = error.pow(2).flatten(1).mean(dim=1)[:, None, None, None]
    expected = 10 / math.log(10) * 2 * error / (16 * (mse + floor)) / 2
    assert torch.allclose(x0_hat.grad, expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("kwargs", "message"), [({"per_image": "l1"}, "per_image"), ({"floor": 0.0}, "floor")])
def test_bad_loss_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LookAheadLoss(1.0, **kwargs)
