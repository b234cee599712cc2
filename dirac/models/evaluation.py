"""Evaluation helpers of the Dirac module: per-method measurements, the stop_t curve, and the written report."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import Logger
from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.metrics import MetricSuite
from dirac.reporting import log_pd_curve, write_pd_curve, write_results
from dirac.samplers.reverse import StepState

CURVE_PREFIX = "stop_"
CURVE_SCALE = 10_000


def measure(suite: MetricSuite, method: str, pred: Tensor, x0: Tensor, degradation: Degradation | None = None,
            y: Tensor | None = None) -> None:
    """Add one batch of a method's outputs to the suite, with the data consistency ||A_1(pred) - y|| when y is given."""
    measured = None if y is None else degradation.apply(pred, pred.new_ones(pred.shape[0]))
    suite.update(method, pred, x0, measured_pred=measured, measurement=y)


def curve_method(t: float) -> str:
    """The suite's method name of the curve point at stop_t = t (suite names may not contain dots)."""
    return f"{CURVE_PREFIX}{round(t * CURVE_SCALE):05d}"


class CurveRecorder:
    """A sampler callback feeding every `every`-th step's output (and the last) into the suite as method 'stop_t=<t>'.

    The output of the step evaluated at t is what the sampler returns when stopped at stop_t = t
    (SPEC §1.3 early stopping), so one full pass gives the perception–distortion curve along stop_t.
    """

    def __init__(self, suite: MetricSuite, x0: Tensor, y: Tensor, degradation: Degradation, output: str, every: int) -> None:
        self.suite, self.x0, self.y, self.degradation = suite, x0, y, degradation
        self.output, self.every = output, max(1, int(every))

    def __call__(self, state: StepState) -> None:
        if state.index % self.every and not state.is_last:
            return
        image = state.x0_hat if self.output == "x0_hat" else state.y_next
        measure(self.suite, curve_method(state.t), image, self.x0, self.degradation, self.y)


def curve_rows(results: dict[str, dict[str, float]]) -> list[dict[str, float]]:
    """The perception–distortion curve rows (sorted by stop_t) among a suite's results, as CurveRecorder named them."""
    rows = [{"stop_t": int(name[len(CURVE_PREFIX):]) / CURVE_SCALE, **values} for name, values in results.items()
            if name.startswith(CURVE_PREFIX)]
    return sorted(rows, key=lambda row: row["stop_t"])


def write_evaluation(directory: Path, table: dict, rows: list[dict], stops: dict[str, float], notes: dict,
                     logger: Logger | None) -> dict[str, Path]:
    """Write results.md/.csv and the perception–distortion curve (CSV, PNG, wandb line plot) of one evaluation."""
    notes = {**notes, "DO stop_t": f"{stops['do']:.3f}", "PO stop_t": f"{stops['po']:.3f}"}
    paths = write_results(table, directory, stem="results", notes=notes)
    if rows:
        paths.update(write_pd_curve(rows, directory, x="stop_t", stem="pd_curve"))
        if logger is not None:
            log_pd_curve(logger, rows, x="stop_t")
    return paths
