"""The score-scaled PF-ODE as a restorer of Gaussian denoising (issue 18 item 8): on a Gaussian source its outputs are
the closed form mu + (v/(v+s^2))^(rho/2) (y - mu) with s the task's sigma_1; through the real restoration task its
distortion–perception curve along rho runs from the source variance (rho = 1, lowest patch SWD) to the MMSE end
(rho = 2, highest PSNR) with the analytic MSE at every rho; misfits are refused before any work; the config builds."""

from __future__ import annotations

import csv
import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from dirac.degradations import GaussianBlur, Identity
from dirac.degradations.noise import ConstantNoise
from dirac.denoisers import GaussianDenoiser
from dirac.methods.base import Method
from dirac.metrics import MetricSuite
from dirac.restorers import PFODERestorer
from dirac.samplers.pf_ode import tweedie
from dirac.tasks import CurveSpec, RestorationTask

MEAN, VARIANCE, SIGMA, SIZE = 0.5, 0.01, 0.1, 16  # std 0.1 around 0.5: clipping to [0, 1] is negligible (5 std)
RHOS = (1.0, 1.5, 2.0)
CONF = Path(__file__).resolve().parents[2] / "conf"


class GaussianImages(L.LightningDataModule):
    """Named samples of N(MEAN, VARIANCE I) images (3 x SIZE x SIZE) as the test split."""

    def __init__(self, count: int = 12, batch_size: int = 6) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        images = MEAN + VARIANCE**0.5 * torch.randn(count, 3, SIZE, SIZE, generator=generator)
        self.items = [{"image": image, "name": f"gauss_{index}.png"} for index, image in enumerate(images)]
        self.batch_size = batch_size

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=self.batch_size)


def restorer(**options) -> PFODERestorer:
    return PFODERestorer(denoiser=GaussianDenoiser(MEAN, VARIANCE), noise=ConstantNoise(SIGMA), **options)


def denoising_task(pf_ode: PFODERestorer) -> RestorationTask:
    metrics = partial(MetricSuite, lpips_net=None, fid=False, swd_patches_per_image=64, swd_projections=64)
    return RestorationTask(Identity(3, SIZE), ConstantNoise(SIGMA), metrics, baselines={"pf_ode": pf_ode},
                           curve=CurveSpec("pf_ode", param="rho", values=RHOS), save_images=0)


def analytic_mse(rho: float) -> float:
    """E||x_hat - x||^2 per pixel for x_hat = mu + c (y - mu), c = (v/(v+s^2))^(rho/2): (c - 1)^2 v + c^2 s^2."""
    c = (VARIANCE / (VARIANCE + SIGMA**2)) ** (rho / 2)
    return (c - 1) ** 2 * VARIANCE + c**2 * SIGMA**2


@pytest.mark.parametrize("rho", [1.0, 1.5, 2.0])
def test_outputs_are_the_gaussian_closed_form_at_the_tasks_noise_level(rho):
    data = GaussianImages(4)
    x0 = torch.stack([item["image"] for item in data.items])
    task = denoising_task(restorer(rho=rho))
    y = task.measure(x0, [item["name"] for item in data.items])
    x_hat = restorer(rho=rho)(y, task.degradation)
    closed = MEAN + (VARIANCE / (VARIANCE + SIGMA**2)) ** (rho / 2) * (y - MEAN)
    assert (x_hat - closed).abs().max() < 3e-4  # the default 32 Heun steps, float32
    if rho == 2.0:
        assert torch.allclose(x_hat, tweedie(GaussianDenoiser(MEAN, VARIANCE), y, SIGMA), atol=3e-4)
    if rho == 1.0:  # the source's variance, not the noisy measurement's nor the shrunk MMSE estimate's
        assert float(x_hat.var()) == pytest.approx(VARIANCE, rel=0.05)
        assert float(y.var()) > 1.8 * VARIANCE
    assert restorer(steps=8).nfe == 15


def test_distortion_perception_curve_along_rho_through_the_restoration_task(tmp_path: Path):
    task = denoising_task(restorer())
    task.check(Method())
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        inference_mode=False)
    results = task.evaluate(Method(), trainer, GaussianImages(), tmp_path)
    assert set(results) == {"measurement", "pf_ode"}
    assert results["pf_ode"]["nfe"] == 63
    with open(tmp_path / "pd_curve.csv", newline="") as handle:
        rows = {float(row["rho"]): row for row in csv.DictReader(handle)}
    assert sorted(rows) == list(RHOS)
    psnrs = [float(rows[rho]["psnr"]) for rho in RHOS]
    swds = [float(rows[rho]["swd"]) for rho in RHOS]
    assert psnrs == sorted(psnrs) and psnrs[-1] > psnrs[0] + 0.5, psnrs  # analytic gap 0.69 dB
    assert swds[0] < swds[-1], swds  # toward rho = 1: closer to the source distribution
    for rho, value in zip(RHOS, psnrs):  # per-image PSNR mean at the analytic MSE (768 pixels an image)
        assert value == pytest.approx(-10 * math.log10(analytic_mse(rho)), abs=0.3)
    assert results["pf_ode"]["psnr"] == pytest.approx(psnrs[0], abs=1e-6)  # the row: rho = 1 (its default)
    assert results["measurement"]["psnr"] < psnrs[0]
    assert (tmp_path / "pd_curve.png").stat().st_size > 0


def test_misfits_are_refused_before_any_work():
    blur = RestorationTask(GaussianBlur(3, SIZE, reference_size=32), ConstantNoise(SIGMA), None,
                           baselines={"pf_ode": restorer()})
    with pytest.raises(ValueError, match="degradation=denoising.*GaussianBlur"):
        blur.check(Method())
    no_noise = RestorationTask(Identity(3, SIZE), ConstantNoise(SIGMA), None,
                               baselines={"pf_ode": PFODERestorer(denoiser=GaussianDenoiser(MEAN, VARIANCE))})
    with pytest.raises(ValueError, match="measurement noise sigma_1"):
        no_noise.check(Method())
    with pytest.raises(ValueError, match="no tunable parameter 'stop_t'"):
        restorer().with_params(stop_t=0.5)
    with pytest.raises(ValueError, match="steps >= 1"):
        restorer(steps=0)


def test_the_baseline_config_builds_the_restorer_with_the_tasks_noise():
    cfg = OmegaConf.create({"baseline": OmegaConf.load(CONF / "baseline" / "pf_ode.yaml"),
                            "denoiser": OmegaConf.load(CONF / "denoiser" / "gaussian.yaml"),
                            "noise": OmegaConf.load(CONF / "noise" / "constant.yaml")})
    built = instantiate(cfg.baseline)
    assert isinstance(built, PFODERestorer) and built.tuned == ("rho",)
    assert built.grid("rho") == [1.0, 1.25, 1.5, 1.75, 2.0] and built.objective == "perception"
    assert float(built.noise.sigma(torch.ones(1))) == pytest.approx(0.05)
    built.prepare(Identity(3, SIZE))
