"""Operator jitter (issue 30 lever): training measurements at a blur width and noise level perturbed per image around
the nominal operator, identical to SPEC §1.1's y_t at zero widths, never at validation."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from dirac.degradations import GaussianBlur
from dirac.degradations.identity import Identity
from dirac.degradations.noise import GeometricNoise
from dirac.methods.dirac import DiracModule, LookAheadLoss, OperatorJitter
from dirac.nets import NCSNpp
from dirac.restorers import DiracSampler


def module_with(jitter, degradation=None):
    net = NCSNpp(3, 3, 16, model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=(), dropout=0.0)
    return DiracModule(net, degradation or GaussianBlur(3, 16, reference_size=32), GeometricNoise(),
                       LookAheadLoss(1.0), partial(torch.optim.Adam, lr=1e-3), DiracSampler(), DiracSampler(),
                       jitter=jitter)


def test_zero_widths_and_unjittered_calls_give_the_nominal_measurement_bit_for_bit():
    x0, t = torch.rand(4, 3, 16, 16), torch.tensor([0.0, 0.3, 0.7, 1.0])
    plain = module_with(None).degrade(x0, t, torch.Generator().manual_seed(5))
    assert torch.equal(module_with(OperatorJitter()).degrade(x0, t, torch.Generator().manual_seed(5), jittered=True),
                       plain)
    assert torch.equal(module_with(OperatorJitter(0.3, 0.3)).degrade(x0, t, torch.Generator().manual_seed(5)), plain)


def test_the_jittered_measurement_is_the_family_at_the_scaled_severity_plus_scaled_noise():
    jitter = OperatorJitter(operator=0.5, noise=0.5)
    module = module_with(jitter)
    x0, t = torch.rand(4, 3, 16, 16), torch.tensor([0.0, 0.3, 0.7, 1.0])
    generator = torch.Generator().manual_seed(7)
    y = module.degrade(x0, t, generator, jittered=True)
    generator.manual_seed(7)
    z = torch.randn(x0.shape, generator=generator)
    operator, noise = jitter.factors(4, x0.device, generator)
    blur = module.degradation
    expected = (blur.apply_at(x0, blur.c_min + (blur.schedule(t) - blur.c_min) * operator)
                + (module.noise.sigma(t) * noise).view(-1, 1, 1, 1) * z)
    assert torch.allclose(y, expected, atol=1e-6)
    assert torch.equal(blur.apply_at(x0[:1], blur.c_min + 0 * operator[:1]), x0[:1])  # t = 0 stays the identity
    assert not torch.allclose(y[3], module.degrade(x0, t, torch.Generator().manual_seed(7))[3], atol=1e-3)


def test_the_factors_cover_one_plus_minus_the_width_uniformly():
    operator, noise = OperatorJitter(0.1, 0.2).factors(100_000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert float(operator.min()) >= 0.9 and float(operator.max()) <= 1.1
    assert float(noise.min()) >= 0.8 and float(noise.max()) <= 1.2
    assert float(operator.mean()) == pytest.approx(1.0, abs=1e-3) and float(noise.std()) == pytest.approx(
        0.2 / 3**0.5, rel=0.01)


def test_training_measurements_are_jittered_validation_ones_are_not(monkeypatch):
    module = module_with(OperatorJitter(0.1, 0.2))
    calls = []
    monkeypatch.setattr(module, "look_ahead_loss",
                        lambda x0, t, generator=None, jittered=False: calls.append(jittered) or t.sum())
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    module.training_step({"image": torch.rand(2, 3, 16, 16)}, 0)
    module.validation_step({"image": torch.rand(2, 3, 16, 16)}, 0)
    assert calls == [True, False]


@pytest.mark.parametrize("widths, message", [((1.0, 0.0), r"\[0, 1\)"), ((0.0, -0.1), r"\[0, 1\)")])
def test_bad_widths_are_refused(widths, message):
    with pytest.raises(ValueError, match=message):
        OperatorJitter(*widths)


def test_operator_jitter_needs_a_family_with_a_severity_map():
    with pytest.raises(ValueError, match="ScheduledDegradation"):
        module_with(OperatorJitter(0.1, 0.0), Identity(3, 16))
    module_with(OperatorJitter(0.0, 0.2), Identity(3, 16))  # noise jitter alone works on any family
