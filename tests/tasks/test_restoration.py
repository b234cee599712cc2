"""The restoration task (issue 15): the same y and noise per image whatever the batching or order, restore
reproduces a test output, a second restorer is one more row, and misfits are refused clearly."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from dirac.data.embedded import patches, photo
from dirac.degradations import GaussianBlur
from dirac.degradations.noise import GeometricNoise
from dirac.methods.base import Method
from dirac.methods.dirac import DiracModule, LookAheadLoss
from dirac.metrics import MetricSuite
from dirac.nets import NCSNpp
from dirac.restore import restore_batch
from dirac.restorers import DiracSampler, Restorer
from dirac.tasks import CurveSpec, RestorationTask


@dataclass(frozen=True)
class Measured(Restorer):
    """A baseline that returns the measurement itself (its row must equal the measurement's)."""

    weight: float = 1.0

    @property
    def params(self) -> dict[str, float]:
        return {"weight": self.weight}

    def with_params(self, **params: float) -> Measured:
        return Measured(**params)

    def __call__(self, y: Tensor, degradation, generator=None) -> Tensor:
        return self.weight * y


class CropData(L.LightningDataModule):
    """Named 16 px crops of two embedded photographs as the test split."""

    def __init__(self, batch_size: int, reverse: bool = False) -> None:
        super().__init__()
        tiles = torch.cat([patches(photo(name, 8.0), 16)[0][:4] for name in ("chelsea", "coffee")])
        self.items = [{"image": image, "name": f"crop_{index}.png"} for index, image in enumerate(tiles)]
        self.items = self.items[::-1] if reverse else self.items
        self.batch_size = batch_size

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=self.batch_size)


def make_module() -> DiracModule:
    torch.manual_seed(0)
    net = NCSNpp(3, 3, 16, model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=(), dropout=0.0)
    sampler = DiracSampler(dt=0.25, stop_t=1.0, guidance="std")
    return DiracModule(net, GaussianBlur(3, 16, reference_size=32), GeometricNoise(), LookAheadLoss(1.0),
                       partial(torch.optim.Adam, lr=1e-3), sampler, sampler.with_stop(0.25)).eval()


def make_task(module: DiracModule, **options) -> RestorationTask:
    metrics = partial(MetricSuite, lpips_net=None, fid=False)
    return RestorationTask(GaussianBlur(3, 16, reference_size=32), GeometricNoise(), metrics,
                           curve=CurveSpec("dirac_po"), **options)


def evaluate(task: RestorationTask, module: Method, data: CropData, out: Path) -> dict:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        inference_mode=False)
    return task.evaluate(module, trainer, data, out)


def test_tables_do_not_depend_on_the_batch_size_or_the_order(tmp_path):
    module = make_module()
    one = evaluate(make_task(module), module, CropData(1), tmp_path / "one")
    eight = evaluate(make_task(module), module, CropData(8), tmp_path / "eight")
    reversed_ = evaluate(make_task(module), module, CropData(3, reverse=True), tmp_path / "reversed")
    assert (tmp_path / "one" / "results.md").read_text() == (tmp_path / "eight" / "results.md").read_text()
    assert (tmp_path / "one" / "pd_curve.csv").is_file()
    for results in (eight, reversed_):
        for row, values in one.items():
            assert results[row] == pytest.approx(values, rel=1e-5)


def test_restore_reproduces_the_test_output_from_its_measurement_bit_for_bit():
    """The y of the test split, restored by `dirac.restore`'s batch function, gives the evaluated output exactly."""
    module = make_module()
    task = make_task(module)
    data = CropData(8)
    x0 = torch.stack([item["image"] for item in data.items])
    names = [item["name"] for item in data.items]
    y = task.measure(x0, names)
    with torch.no_grad():
        outputs = task.restore_all(task.restorers_of(module), y, names, on_curve=lambda value, output: None)
        for name in ("dirac_do", "dirac_po"):
            assert torch.equal(restore_batch(module, name, y, names, seed=task.seed), outputs[name])
            assert torch.equal(restore_batch(module, name, y[3:5], names[3:5], seed=task.seed), outputs[name][3:5])
            steps = []  # the progress bar's callback sees every step and changes nothing
            assert torch.equal(restore_batch(module, name, y, names, seed=task.seed, callback=steps.append),
                               outputs[name])
            assert len(steps) == module.restorers()[name].nfe and steps[-1].is_last
    assert not torch.equal(outputs["dirac_do"], outputs["dirac_po"])


def test_a_second_restorer_is_one_more_row_on_the_same_measurement(tmp_path):
    module = make_module()
    task = make_task(module, baselines={"measured": Measured()})
    results = evaluate(task, module, CropData(4), tmp_path)
    assert set(results) == {"measurement", "dirac_do", "dirac_po", "measured"}
    assert results["measured"]["psnr"] == pytest.approx(results["measurement"]["psnr"], abs=1e-9)
    assert "measured weight: 1.000" in (tmp_path / "results.md").read_text()
    grid = next((tmp_path / "images").glob("*.png"))
    assert grid.stat().st_size > 0


def test_misfits_are_refused_by_name():
    module = make_module()
    with pytest.raises(ValueError, match=r"unknown restorer\(s\) \['dirac_mmse'\].*dirac_do"):
        make_task(module, restorers=["dirac_mmse"]).check(module)
    with pytest.raises(ValueError, match="curve restorer 'dirac_po' is not evaluated"):
        make_task(module, restorers=["dirac_do"]).check(module)
    with pytest.raises(ValueError, match="no tunable parameter 'rho'.*stop_t"):
        RestorationTask(GaussianBlur(3, 16, reference_size=32), GeometricNoise(), None,
                        curve=CurveSpec("dirac_po", param="rho")).check(module)

    class Generator(Method):
        family = "rgm"

    with pytest.raises(ValueError, match="the 'rgm' method offers none"):
        make_task(module).check(Generator())
    other = RestorationTask(GaussianBlur(3, 16, reference_size=64), GeometricNoise(), None)
    with pytest.raises(ValueError, match="another degradation"):
        other.check(module)


def test_per_image_results_average_to_the_table_and_do_not_depend_on_the_batch(tmp_path):
    """`per_image` writes every image's PSNR and SSIM per row; their means are the table's (issue 30)."""
    module = make_module()
    results = evaluate(make_task(module, per_image=True), module, CropData(3), tmp_path / "three")
    evaluate(make_task(module, per_image=True), module, CropData(8, reverse=True), tmp_path / "eight")
    rows = list(csv.DictReader((tmp_path / "three" / "per_image.csv").open()))
    assert (tmp_path / "three" / "per_image.csv").read_text() == (tmp_path / "eight" / "per_image.csv").read_text()
    assert {row["method"] for row in rows} == {"measurement", "dirac_do", "dirac_po"}
    for method in ("measurement", "dirac_do"):
        mine = [row for row in rows if row["method"] == method]
        assert sorted(row["image"] for row in mine) == sorted(f"crop_{index}.png" for index in range(8))
        for metric in ("psnr", "ssim"):
            mean = sum(float(row[metric]) for row in mine) / len(mine)
            assert mean == pytest.approx(results[method][metric], rel=1e-6)
    evaluate(make_task(module), module, CropData(8), tmp_path / "without")
    assert not (tmp_path / "without" / "per_image.csv").exists()
