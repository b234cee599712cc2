"""Training severities (SPEC §1.2 and the issue 21 tilt): density (k + 1) t^k on [0, 1), uniform at k = 0."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from dirac.degradations import GaussianBlur
from dirac.degradations.noise import GeometricNoise
from dirac.methods.dirac import DiracModule, LookAheadLoss, TiltedSeverity
from dirac.nets import NCSNpp
from dirac.restorers import DiracSampler


def test_power_zero_draws_the_uniform_severities_bit_for_bit():
    drawn = TiltedSeverity(0.0)(1000, torch.device("cpu"), torch.Generator().manual_seed(3))
    assert torch.equal(drawn, torch.rand(1000, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("power", [0.0, 1.0, 3.0])
def test_the_draws_follow_the_cdf_t_to_the_k_plus_one(power):
    t = TiltedSeverity(power)(200_000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert float(t.min()) >= 0.0 and float(t.max()) < 1.0
    grid = torch.linspace(0.05, 0.95, 19)
    empirical = (t[None, :] <= grid[:, None]).double().mean(dim=1)
    # Kolmogorov-Smirnov distance: 1.63 / sqrt(n) is the 1 % critical value; a wrong exponent misses it by far
    assert float((empirical - grid.double() ** (power + 1)).abs().max()) < 1.63 / 200_000**0.5


def test_a_tilt_puts_more_of_the_batch_near_t_one():
    near_one = [float((TiltedSeverity(k)(100_000, torch.device("cpu"), torch.Generator().manual_seed(1)) > 0.9)
                      .double().mean()) for k in (0.0, 1.0)]
    assert near_one[0] == pytest.approx(0.10, abs=0.005) and near_one[1] == pytest.approx(0.19, abs=0.005)


@pytest.mark.parametrize("power", [-0.5, float("nan")])
def test_a_negative_or_nan_power_is_refused(power):
    with pytest.raises(ValueError, match="tilt power"):
        TiltedSeverity(power)


class Recording(TiltedSeverity):
    """A tilted severity that keeps what it drew."""

    def __call__(self, batch_size, device, generator=None):
        self.drawn = super().__call__(batch_size, device, generator)
        return self.drawn


def test_the_training_step_draws_its_severities_from_the_configured_distribution(monkeypatch):
    net = NCSNpp(3, 3, 16, model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=(), dropout=0.0)
    severity = Recording(2.0)
    module = DiracModule(net, GaussianBlur(3, 16, reference_size=32), GeometricNoise(), LookAheadLoss(1.0),
                         partial(torch.optim.Adam, lr=1e-3), DiracSampler(), DiracSampler(), severity=severity)
    seen = {}
    monkeypatch.setattr(module, "look_ahead_loss",
                        lambda x0, t, generator=None, jittered=False: seen.setdefault("t", t).sum())
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    module.training_step({"image": torch.rand(6, 3, 16, 16)}, 0)
    assert seen["t"] is severity.drawn and seen["t"].shape == (6,)


def test_a_checkpoint_rebuilds_the_training_severity(tmp_path):
    """A run with a tilted severity is saved and rebuilt from the file alone, with the same tilt."""
    from hydra.utils import instantiate

    from dirac.checkpoints import load_checkpoint, module_from_checkpoint, save_checkpoint
    from dirac.pipeline import model_config
    from tests.framework.conftest import TINY, compose_config

    cfg = compose_config([*TINY, "severity=tilted", "severity.power=3"], tmp_path / "run")
    module = instantiate(cfg.model)
    module.run_config = model_config(cfg)
    rebuilt = module_from_checkpoint(load_checkpoint(save_checkpoint(module, tmp_path / "dirac.ckpt")))
    assert isinstance(rebuilt.severity, TiltedSeverity) and rebuilt.severity.power == 3.0
