"""Calibration by the restoration task on validation data (SPEC §1.3): the Dirac-DO stop at the PSNR peak, the Dirac-PO
stop at the perception minimum, guidance steps like stops (§1.3b), only the optimised measure computed."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from dirac.degradations import GaussianBlur
from dirac.degradations.noise import GeometricNoise
from dirac.metrics import MetricSuite
from dirac.methods.dirac import DiracModule, LookAheadLoss
from dirac.nets import NCSNpp
from dirac.restorers import DiracSampler
from dirac.tasks import RestorationTask

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


def module_for(po_auto_stop: bool, **po) -> DiracModule:
    net = NCSNpp(3, 3, 16, model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=(), dropout=0.0)
    sampler = DiracSampler(dt=0.1, stop_t=0.5, guidance="none")
    return DiracModule(net, GaussianBlur(3, 16, reference_size=32), GeometricNoise(), LookAheadLoss(1.0),
                       partial(torch.optim.Adam, lr=1e-3), replace(sampler, stop_t=1.0, auto_stop=True),
                       replace(sampler, auto_stop=po_auto_stop, **po))


class Validation(L.LightningDataModule):
    """One validation batch of the given images, named img0, img1, ..."""

    def __init__(self, x0: Tensor) -> None:
        super().__init__()
        self.items = [{"image": image, "name": f"img{index}"} for index, image in enumerate(x0)]

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=len(self.items))


def calibrate(module: DiracModule, x0: Tensor, **metrics) -> RestorationTask:
    """What the pipeline does after fit: the task tunes the module's restorers under a real Trainer."""
    suite = partial(MetricSuite, lpips_net=None, fid=False, **metrics)
    task = RestorationTask(module.degradation, module.noise, suite)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        inference_mode=False)
    task.calibrate(module, trainer, Validation(x0))
    return task


def stops(module: DiracModule) -> dict[str, float]:
    return {name: restorer.params["stop_t"] for name, restorer in module.restorers().items()}


def test_do_stops_at_the_psnr_peak_and_po_at_the_perception_minimum():
    x0 = smooth_images()
    module = module_for(po_auto_stop=True)
    module.phi = scripted_phi(x0)
    calibrate(module, x0)
    assert set(module.calibration) == {"dirac_do", "dirac_po"}
    assert stops(module) == pytest.approx({"dirac_do": DISTORTION_BEST, "dirac_po": PERCEPTION_BEST})


def test_a_fixed_po_stop_is_kept():
    x0 = smooth_images()
    module = module_for(po_auto_stop=False)
    module.phi = scripted_phi(x0)
    calibrate(module, x0)
    assert stops(module) == pytest.approx({"dirac_do": DISTORTION_BEST, "dirac_po": 0.5})
    assert "dirac_po" not in module.calibration


def test_po_calibration_without_a_perception_measure_is_refused():
    with pytest.raises(ValueError, match="needs a perception measure"):
        calibrate(module_for(po_auto_stop=True), smooth_images(), swd=False)


def test_calibration_computes_only_the_measure_it_optimises(monkeypatch):
    """DO tuning measures PSNR alone at every step: SSIM (part of the full suite) is never called."""
    def no_ssim(*args, **kwargs):
        raise AssertionError("calibration computed SSIM")

    monkeypatch.setattr("dirac.metrics.suite.ssim", no_ssim)
    x0 = smooth_images()
    module = module_for(po_auto_stop=False)
    module.phi = scripted_phi(x0)
    calibrate(module, x0)
    assert stops(module)["dirac_do"] == pytest.approx(DISTORTION_BEST)


def test_the_guidance_step_is_tuned_on_validation_data_like_the_stop():
    """PO with auto_guidance: the chosen step is the grid value whose output has the lowest patch SWD, the same
    as evaluating every step alone on the same y and noise; it is stored like a stop."""
    x0 = smooth_images()
    grid = (0.05, 0.5, 5.0)
    module = module_for(po_auto_stop=False, guidance="std", auto_guidance=True, guidance_grid=grid)
    module.phi = lambda y_t, t: F.avg_pool2d(y_t, 3, 1, 1) + 0.1 * y_t  # depends on y_t: guidance has a gradient
    untuned = module.restorers()["dirac_po"]
    task = calibrate(module, x0)
    chosen = module.calibration["dirac_po"]["guidance_step"]
    names = [f"img{index}" for index in range(len(x0))]
    y = task.measure(x0, names)
    scores = {}
    for step in grid:
        output = untuned.with_params(guidance_step=step)(y, module.degradation, task.generators(names, "cpu"))
        suite = MetricSuite(lpips_net=None, fid=False)
        suite.update("po", output, x0, image_names=names)
        scores[step] = suite.compute()["po"]["swd"]
    assert chosen == min(grid, key=scores.get)
    assert len(set(scores.values())) == len(grid)  # the step matters, so the choice is informative
    assert module.restorers()["dirac_po"].params["guidance_step"] == chosen


def test_a_checkpoint_gives_its_calibration_to_auto_tuned_parameters_only():
    x0 = smooth_images()
    trained = module_for(po_auto_stop=True)
    trained.phi = scripted_phi(x0)
    calibrate(trained, x0)
    checkpoint: dict = {}
    trained.on_save_checkpoint(checkpoint)
    auto = module_for(po_auto_stop=True)
    auto.on_load_checkpoint(checkpoint)
    assert stops(auto) == pytest.approx({"dirac_do": DISTORTION_BEST, "dirac_po": PERCEPTION_BEST})
    fixed = module_for(po_auto_stop=False)  # e.g. a `mode=test` sweep over sampler.po.stop_t
    fixed.on_load_checkpoint(checkpoint)
    assert stops(fixed) == pytest.approx({"dirac_do": DISTORTION_BEST, "dirac_po": 0.5})
