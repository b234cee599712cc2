"""The generation task: the mode-coverage counts on known points, its files, and its refusals."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch

from dirac.chains import VPChain
from dirac.data import ToyDataModule, mixture_means
from dirac.methods.base import Method
from dirac.methods.rgm import RGMModule
from dirac.nets import ToyGenerator
from dirac.priors import MMDPrior
from dirac.tasks.generation import GenerationTask, mode_coverage


def test_mode_coverage_counts_points_within_three_std_of_the_nearest_mode():
    means = mixture_means()
    at_modes = means.repeat_interleave(10, dim=0)  # 10 per mode, on the means
    outside = torch.zeros(20, 2)                    # the centre: far from every mode
    edge = means[:1] + torch.tensor([[0.29, 0.0], [0.31, 0.0]])  # 3 std = 0.3 with std 0.1
    row = mode_coverage(torch.cat([at_modes, outside, edge]), means, std=0.1, min_fraction=0.05)
    assert row["modes_covered"] == 8 and row["high_quality"] == pytest.approx(81 / 102)
    assert row["mode_0"] == 11 and all(row[f"mode_{i}"] == 10 for i in range(1, 8))
    collapsed = mode_coverage(torch.cat([means[:1].repeat(90, 1), outside]), means, std=0.1, min_fraction=0.05)
    assert collapsed["modes_covered"] == 1 and collapsed["high_quality"] == pytest.approx(90 / 110)


def test_evaluate_writes_the_report_and_refuses_methods_and_data_it_cannot_judge(tmp_path):
    torch.manual_seed(0)
    rgm = RGMModule(ToyGenerator(nz=4), VPChain(4), MMDPrior(), partial(torch.optim.Adam, lr=1e-3))
    task = GenerationTask(num_samples=500, scatter_points=100)
    task.check(rgm)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, accelerator="cpu", devices=1)
    results = task.evaluate(rgm, trainer, ToyDataModule(num_samples=64, eval_samples=200, std=0.0707), tmp_path)
    assert set(results) == {"samples"} and 0 <= results["samples"]["high_quality"] <= 1
    covered = sum(results["samples"][f"mode_{i}"] for i in range(8))
    assert covered == pytest.approx(500 * results["samples"]["high_quality"])
    assert {"results.md", "results.csv", "mode_counts.csv", "scatter.png"} <= {p.name for p in tmp_path.iterdir()}
    assert "modes covered" in (tmp_path / "results.md").read_text() and task.monitored(results) is not None
    with pytest.raises(ValueError, match="sample"):
        task.check(Method())
    with pytest.raises(ValueError, match="toy data"):
        task.evaluate(rgm, trainer, object(), tmp_path)
