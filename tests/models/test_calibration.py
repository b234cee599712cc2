"""Automatic stop times on validation data (SPEC §1.3): Dirac-DO at the PSNR peak, Dirac-PO at the perception minimum."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from dirac.degradations import GaussianBlur
from dirac.degradations.noise import GeometricNoise
from dirac.metrics import MetricSuite
from dirac.models import DiracModule, LookAheadLoss
from dirac.nets import NCSNpp
from dirac.samplers import DiracSampler

DISTORTION_BEST, PERCEPTION_BEST = 0.7, 0.3


def smooth_images(batch: int = 8, size: int = 16) -> Tensor:
    """Low-frequency random colour images, so that a one-pixel shift changes them little."""
    coarse = torch.rand(batch, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(0))
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def scripted_phi(x0: Tensor):
    """A stand-in for Phi whose output depends on t only: the average of two shifted copies of x0 (a posterior
    mean: best PSNR) at t = 0.7, one shifted copy (a posterior sample: right patch statistics) at t = 0.3,
    and x0 under heavy noise elsewhere."""
    mean = (x0.roll(1, dims=-1) + x0.roll(-1, dims=-1)) / 2
    sample = x0.roll(1, dims=-1)
    noisy = x0 + 0.3 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))

    def phi(y_t: Tensor, t: Tensor) -> Tensor:
        time = float(t.flatten()[0])
        if abs(time - DISTORTION_BEST) < 1e-6:
            return mean
        return sample if abs(time - PERCEPTION_BEST) < 1e-6 else noisy

    return phi


def module_for(po_auto_stop: bool, metrics=None) -> DiracModule:
    net = NCSNpp(3, 3, 16, model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=(), dropout=0.0)
    sampler = DiracSampler(dt=0.1, stop_t=0.5, guidance="none")
    return DiracModule(net, GaussianBlur(3, 16, reference_size=32), GeometricNoise(), LookAheadLoss(1.0),
                       partial(torch.optim.Adam, lr=1e-3), replace(sampler, stop_t=1.0, auto_stop=True),
                       replace(sampler, auto_stop=po_auto_stop), metrics=metrics, val_images=0)


def calibrate(module: DiracModule, x0: Tensor) -> None:
    """What `trainer.validate` does with `calibrating = True`, on one batch."""
    module.calibrating = True
    module.on_validation_epoch_start()
    module.validation_step({"image": x0}, 0)
    module.on_validation_epoch_end()


def test_do_stops_at_the_psnr_peak_and_po_at_the_perception_minimum():
    x0 = smooth_images()
    module = module_for(po_auto_stop=True)
    module.phi = scripted_phi(x0)
    assert not module.calibrated
    calibrate(module, x0)
    assert module.calibrated and module.calibrated_presets == {"do", "po"}
    assert module.stops["do"] == pytest.approx(DISTORTION_BEST)
    assert module.stops["po"] == pytest.approx(PERCEPTION_BEST)


def test_a_fixed_po_stop_is_kept():
    x0 = smooth_images()
    module = module_for(po_auto_stop=False)
    module.phi = scripted_phi(x0)
    calibrate(module, x0)
    assert module.stops == pytest.approx({"do": DISTORTION_BEST, "po": 0.5})


def test_po_calibration_without_a_perception_measure_is_refused():
    module = module_for(po_auto_stop=True, metrics=partial(MetricSuite, lpips_net=None, fid=False, swd=False))
    with pytest.raises(ValueError, match="sampler.po.auto_stop needs a perception measure"):
        calibrate(module, smooth_images())


def test_a_checkpoint_gives_its_calibrated_stops_to_auto_stopped_presets_only():
    x0 = smooth_images()
    trained = module_for(po_auto_stop=True)
    trained.phi = scripted_phi(x0)
    calibrate(trained, x0)
    checkpoint: dict = {}
    trained.on_save_checkpoint(checkpoint)
    auto = module_for(po_auto_stop=True)
    auto.on_load_checkpoint(checkpoint)
    assert auto.calibrated and auto.stops == pytest.approx({"do": DISTORTION_BEST, "po": PERCEPTION_BEST})
    fixed = module_for(po_auto_stop=False)  # e.g. a `mode=test` sweep over sampler.po.stop_t
    fixed.on_load_checkpoint(checkpoint)
    assert fixed.calibrated and fixed.stops == pytest.approx({"do": DISTORTION_BEST, "po": 0.5})
