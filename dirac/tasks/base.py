"""A task judges a trained method: it may tune the method on validation data, then evaluates it (SPEC §4)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import lightning as L

from dirac.methods.base import Method


class Task(ABC):
    """How a method is judged: `check` that the method fits, `fit_callbacks` to watch training, `calibrate` on the
    validation split (results stored in the method's checkpoint), `evaluate` on the test split."""

    monitor: str = ""  # "<row>/<metric>" of the results that a sweep optimises

    @abstractmethod
    def check(self, method: Method) -> None:
        """Raise a clear error when `method` cannot be judged by this task."""

    def fit_callbacks(self, method: Method) -> list[L.Callback]:
        """Lightning callbacks that log this task's view of the method during training."""
        return []

    def calibrate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                  output_dir: Path | None = None) -> None:
        """Tune the method's parameters on the validation split, writing what was searched into output_dir
        (nothing by default)."""

    @abstractmethod
    def evaluate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                 output_dir: Path) -> dict[str, dict[str, float]]:
        """The results on the test split (row -> metric -> value), with the task's files written to output_dir."""

    def monitored(self, results: dict[str, dict[str, float]]) -> float | None:
        """The value `monitor` names in the results, or None."""
        row, _, metric = self.monitor.partition("/")
        return results.get(row, {}).get(metric)
