"""The comparison run (issue 17): every baseline sees exactly the same y as the measurement row, baselines are tuned on
validation data like Dirac and the tuned values are used, the table gains seconds per image, the scatter is written,
and a baseline that cannot handle the task's operator is refused at task.check."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from dirac.denoisers import GaussianDenoiser
from dirac.degradations import GaussianBlur
from dirac.degradations.noise import GeometricNoise
from dirac.metrics import MetricSuite, psnr
from dirac.restorers import ADMMTV, DDRM, DPS, PnPADMM, Restorer
from dirac.tasks import CurveSpec, RestorationTask
from tests.tasks.test_restoration import CropData, evaluate, make_module


class Recording(Restorer):
    """Wraps a restorer and records the bytes of every y it is given."""

    def __init__(self, inner: Restorer, seen: list[bytes]) -> None:
        self.inner, self.seen = inner, seen
        self.objective = inner.objective

    @property
    def params(self) -> dict[str, float]:
        return self.inner.params

    @property
    def tuned(self) -> tuple[str, ...]:
        return self.inner.tuned

    @property
    def nfe(self) -> int:
        return self.inner.nfe

    def grid(self, param: str) -> list[float]:
        return self.inner.grid(param)

    def prepare(self, degradation) -> None:
        self.inner.prepare(degradation)

    def with_params(self, **params: float) -> Recording:
        return Recording(self.inner.with_params(**params), self.seen)

    def __call__(self, y: Tensor, degradation, generator=None) -> Tensor:
        self.seen.append(y.detach().cpu().numpy().tobytes())
        return self.inner(y, degradation, generator)


class SplitData(CropData):
    """The crops as the validation split too."""

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=self.batch_size)


def baselines(prior: GaussianDenoiser) -> dict[str, Restorer]:
    return {"dps": DPS(denoiser=prior, steps=3, objective="distortion"),
            "ddrm": DDRM(denoiser=prior, noise=GeometricNoise(), steps=3, objective="distortion"),
            "pnp_admm": PnPADMM(denoiser=prior, iterations=3, objective="distortion"),
            "admm_tv": ADMMTV(iterations=10, tune=["lam"], grids={"lam": [0.001, 0.02, 0.3]}, objective="distortion")}


def task_with(restorers: dict[str, Restorer], **options) -> RestorationTask:
    metrics = partial(MetricSuite, lpips_net=None, fid=False)
    return RestorationTask(GaussianBlur(3, 16, reference_size=32), GeometricNoise(), metrics,
                           curve=CurveSpec("dirac_po"), baselines=restorers, **options)


def test_every_method_sees_the_same_measurement_and_the_table_has_timing_and_a_scatter(tmp_path: Path):
    module = make_module()
    data = CropData(8)
    seen: dict[str, list[bytes]] = {}
    prior = GaussianDenoiser(0.5, 0.05)
    recorded = {name: Recording(restorer, seen.setdefault(name, [])) for name, restorer in baselines(prior).items()}
    task = task_with(recorded, timing=True)
    task.check(module)
    results = evaluate(task, module, data, tmp_path)
    x0 = torch.stack([item["image"] for item in data.items])
    y = task.measure(x0, [item["name"] for item in data.items]).numpy().tobytes()
    assert all(calls == [y] for calls in seen.values()), "each baseline ran once, on the measurement's exact bytes"
    assert set(results) == {"measurement", "dirac_do", "dirac_po", *recorded}
    for name in ("dirac_do", "dirac_po", *recorded):
        assert results[name]["seconds_per_image"] > 0
    assert results["dps"]["nfe"] == 3 and results["admm_tv"]["nfe"] == 0
    assert "seconds_per_image" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "pd_scatter.png").stat().st_size > 0
    methods = {line.split(",")[0] for line in (tmp_path / "pd_scatter.csv").read_text().splitlines()[1:]}
    assert methods == set(results)


def test_baselines_are_tuned_on_validation_at_the_measured_optimum_and_the_choice_is_used(tmp_path: Path):
    module = make_module()
    data = SplitData(8)
    restorer = ADMMTV(iterations=10, tune=["lam"], grids={"lam": [0.001, 0.02, 0.3]}, objective="distortion")
    task = task_with({"admm_tv": restorer})
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    task.calibrate(module, trainer, data, tmp_path)
    x0 = torch.stack([item["image"] for item in data.items])
    y = task.measure(x0, [item["name"] for item in data.items])
    scores = {lam: float(psnr(restorer.with_params(lam=lam)(y, task.degradation).clamp(0, 1), x0).mean())
              for lam in restorer.grid("lam")}
    best = max(scores, key=scores.get)
    assert module.calibration["admm_tv"] == {"lam": best}
    assert scores[best] > min(scores.values()) + 0.5  # a real optimum, not a tie
    assert task.restorers_of(module)["admm_tv"].lam == best
    assert "admm_tv" in (tmp_path / "calibration.csv").read_text()


def test_a_baseline_that_cannot_handle_the_operator_is_refused_at_check():
    from dirac.degradations.base import Degradation
    from dirac.methods.base import Method

    class NoSVD(GaussianBlur):
        def operator(self, t):
            return Degradation.operator(self, t)  # the generic operator: autograd adjoint, CG prox, no SVD

    prior = GaussianDenoiser(0.5, 0.05)
    metrics = partial(MetricSuite, lpips_net=None, fid=False)
    ddrm = {"ddrm": DDRM(denoiser=prior, noise=GeometricNoise())}
    RestorationTask(GaussianBlur(3, 16, reference_size=32), GeometricNoise(), metrics, baselines=ddrm).check(Method())
    task = RestorationTask(NoSVD(3, 16, reference_size=32), GeometricNoise(), metrics, baselines=ddrm)
    with pytest.raises(ValueError, match=r"DDRM .*SVD.*NoSVD degradation's operator \(LinearOperator\)"):
        task.check(Method())
    fine = {"admm_tv": ADMMTV(), "pnp_admm": PnPADMM(denoiser=prior), "dps": DPS(denoiser=prior)}
    RestorationTask(NoSVD(3, 16, reference_size=32), GeometricNoise(), metrics, baselines=fine).check(Method())
