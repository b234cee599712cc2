"""Calibration on the validation split: a grid search over one restorer parameter at a time, measuring only the
objective it optimises (SPEC §1.3: the DO stop at the PSNR peak, the PO stop at the perception minimum; §1.3b:
guidance steps like stops; §1.5: a baseline's main parameter)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn

from dirac.methods.base import Method
from dirac.metrics import MetricSuite, psnr
from dirac.metrics.suite import PerImageMeans, to_rgb
from dirac.metrics.swd import PatchSWD
from dirac.metrics.distortion import clip01
from dirac.reporting.files import csv_text, write_text
from dirac.restorers.base import Restorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Tune `param` of `restorer` over `values`, maximising or minimising the validation `key`."""

    restorer: str
    param: str
    key: str
    mode: str
    values: tuple[float, ...]


def objective_key(objective: str, available: Sequence[str]) -> tuple[str, str]:
    """The validation measure an objective optimises: distortion the PSNR peak; perception the minimum of LPIPS
    when its weights are there, else of the offline patch SWD."""
    if objective == "distortion":
        return "psnr", "max"
    perception = next((key for key in ("lpips", "swd") if key in available), None)
    if perception is None:
        raise ValueError("tuning a perception-optimised restorer needs a perception measure to minimise: "
                         "turn on metrics.swd or supply the LPIPS weights")
    return perception, "min"


def best_value(scores: dict[float, float], mode: str) -> float:
    """The value with the best score, the smallest value on ties (NaN scores never win)."""
    usable = {value: score for value, score in scores.items() if not math.isnan(score)}
    if not usable:
        raise ValueError("calibration measured no usable (finite) score; check the validation data")
    sign = 1.0 if mode == "max" else -1.0
    return max(sorted(usable), key=lambda value: sign * usable[value])


def phases(restorers: dict[str, Restorer], method: Method) -> list[str]:
    """The parameters to tune, in an order that respects every restorer's own `tuned` order; already tuned
    (calibrated) parameters are left out."""
    pending = {name: [p for p in restorer.tuned if p not in method.calibration.get(name, {})]
               for name, restorer in restorers.items()}
    position: dict[str, int] = {}
    for params in pending.values():
        for index, param in enumerate(params):
            position[param] = max(position.get(param, 0), index)
    return sorted(position, key=lambda param: position[param])


def calibrate(task, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
              output_dir: Path | None) -> None:
    """Tune every pending restorer parameter on validation data, one `trainer.validate` per parameter."""
    rows: list[dict] = []
    for param in phases(task.restorers_of(method), method):
        suite = task.metrics(fid=False)
        restorers = task.restorers_of(method)
        jobs = [Job(name, param, *objective_key(restorer.objective, suite.available), tuple(restorer.grid(param)))
                for name, restorer in restorers.items()
                if param in restorer.tuned and param not in method.calibration.get(name, {})]
        run = CalibrationRun(task, method, jobs, suite)
        trainer.validate(run, datamodule=datamodule, verbose=False)
        rows += run.rows
    if rows and output_dir is not None and trainer.is_global_zero:
        write_text(Path(output_dir) / "calibration.csv",
                   csv_text(["restorer", "param", "value", "measure", "score", "chosen"], rows))


class ObjectiveMeter(nn.Module):
    """One validation measure (PSNR, LPIPS or patch SWD) accumulated per candidate value, DDP-synced."""

    def __init__(self, key: str, values: Sequence[float], suite: MetricSuite) -> None:
        super().__init__()
        self.key, self.lpips = key, suite.lpips
        self.labels = {float(value): f"v{index}" for index, value in enumerate(values)}
        make = (lambda: PatchSWD(**suite.swd)) if key == "swd" else (lambda: PerImageMeans([key]))
        self.meters = nn.ModuleDict({label: make() for label in self.labels.values()})

    def update(self, value: float, pred: Tensor, target: Tensor, names: Sequence[str]) -> None:
        """Add one batch of a candidate value's outputs."""
        meter = self.meters[self.labels[float(value)]]
        pred, target = clip01(pred), clip01(target)
        if self.key == "swd":
            meter.update(pred, target, names)
        elif self.key == "psnr":
            meter.update({"psnr": psnr(pred, target)})
        else:
            meter.update({"lpips": self.lpips(to_rgb(pred), to_rgb(target), normalize=True).flatten()})

    def compute(self) -> dict[float, float]:
        """value -> score over everything seen (on every rank)."""
        scores = {}
        for value, label in self.labels.items():
            result = self.meters[label].compute()
            scores[value] = float(result if self.key == "swd" else result[0].flatten()[0])
        return scores


class CalibrationRun(L.LightningModule):
    """The validation loop of one calibration phase: each batch measured, each job's restorer swept over its
    values (restorers sharing a pass, e.g. DO and PO along stop_t, use one sweep)."""

    def __init__(self, task, method: Method, jobs: list[Job], suite: MetricSuite) -> None:
        super().__init__()
        self.task, self.method, self.jobs = task, method, jobs
        self.degradation = task.degradation
        self.meters = nn.ModuleList([ObjectiveMeter(job.key, job.values, suite) for job in jobs])
        self.rows: list[dict] = []

    def on_validation_epoch_start(self) -> None:
        self.restorers = self.task.restorers_of(self.method)
        self.groups = self._groups()

    def _groups(self) -> list[list[int]]:
        """Job indices grouped by shared sweeps (the first job of a group leads it)."""
        groups: list[list[int]] = []
        for index, job in enumerate(self.jobs):
            for group in groups:
                lead = self.restorers[self.jobs[group[0]].restorer]
                if lead.shares_pass(self.restorers[job.restorer], job.param):
                    group.append(index)
                    break
            else:
                groups.append([index])
        return groups

    @torch.no_grad()
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x0, names = batch["image"], list(batch["name"])
        y = self.task.measure(x0, names)
        for group in self.groups:
            lead = self.restorers[self.jobs[group[0]].restorer]

            def consume(value: float, output: Tensor, group=group) -> None:
                for index in group:
                    if value in self.meters[index].labels:
                        self.meters[index].update(value, output, x0, names)

            values = sorted({value for index in group for value in self.jobs[index].values})
            lead.sweep(y, self.degradation, self.jobs[group[0]].param, values, consume,
                       lambda: self.task.generators(names, y.device))

    def on_validation_epoch_end(self) -> None:
        for job, meter in zip(self.jobs, self.meters):
            scores = meter.compute()
            chosen = best_value(scores, job.mode)
            self.method.tune(job.restorer, job.param, chosen)
            self.log(f"calibration/{job.restorer}/{job.param}", chosen, rank_zero_only=True)
            log.info("%s %s = %.4g (validation %s %s %.4g; set it fixed in the config to skip this search)",
                     job.restorer, job.param, chosen, job.key, "minimum" if job.mode == "min" else "peak",
                     scores[chosen])
            self.rows += [{"restorer": job.restorer, "param": job.param, "value": f"{value:g}", "measure": job.key,
                           "score": f"{score:.6g}", "chosen": int(value == chosen)} for value, score in scores.items()]
