"""Per-step trajectories of the reverse process and the automatic stop they give (SPEC §1.3, §4 curves)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor

from dirac.checks import check_choice, check_interval
from dirac.degradations.base import Degradation
from dirac.samplers.grids import is_last_step
from dirac.samplers.reverse import OUTPUTS
from dirac.samplers.step import Step

Metric = Callable[[Tensor, Tensor], Tensor]


class TrajectoryRecorder:
    """A reverse-process callback that measures x0_hat and the iterate of every `every`-th step against the clean x0.

    Each recorded step stores, per image, every metric of both outputs and the data consistency
    ||A_1(output) - y||. Its row's `stop_t` is the stop for which that step is the last one, so the row holds
    what a run stopped at `row["stop_t"]` returns: one full pass (stop_t = 0) gives the whole
    perception-distortion curve along stop_t. Outputs of the stops listed in `keep` are kept whole.
    """

    def __init__(
        self,
        x0: Tensor,
        y: Tensor,
        degradation: Degradation,
        metrics: Mapping[str, Metric],
        every: int = 1,
        keep: Iterable[float] = (),
    ) -> None:
        degradation.check_image(x0)
        if y.shape != x0.shape:
            raise ValueError(f"the measurement y {tuple(y.shape)} and the clean x0 {tuple(x0.shape)} "
                             "must have one shape")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.keep = sorted({float(stop) for stop in keep})
        for stop in self.keep:
            check_interval("kept stop_t", stop, 0.0, 1.0)
        self.x0, self.y, self.degradation = x0, y, degradation
        self.metrics = dict(metrics)
        self.every = every
        self._steps: list[tuple[dict[str, float], dict[str, Tensor]]] = []
        self._kept: dict[float, dict[str, Tensor]] = {}

    def __call__(self, step: Step) -> None:
        """Record one step of the reverse process (no host synchronisation)."""
        outputs = {"x0_hat": step.estimate, "iterate": step.x_next}
        for stop in self.keep:
            if stop not in self._kept and is_last_step(step.t_next, stop):
                self._kept[stop] = outputs
        if step.index % self.every == 0 or step.is_last:
            place = {"step": step.index, "nfe": step.index + 1, "t": step.t, "t_next": step.t_next,
                     "stop_t": step.t}
            self._steps.append((place, self._measure(outputs)))

    def _measure(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-image metrics vs x0 and data consistency ||A_1(output) - y|| of both outputs, keyed 'output/name'."""
        ones = self.x0.new_ones(self.x0.shape[0])
        values = {}
        for kind, image in outputs.items():
            for name, metric in self.metrics.items():
                values[f"{kind}/{name}"] = self._checked(name, metric(image, self.x0))
            values[f"{kind}/data_consistency"] = (self.degradation.apply(image, ones) - self.y).flatten(1).norm(dim=1)
        return values

    def _checked(self, name: str, values: Tensor) -> Tensor:
        """A metric's per-image values, which must have shape (B,)."""
        if values.shape != (self.x0.shape[0],):
            raise ValueError(f"metric {name!r} must return one value per image, shape ({self.x0.shape[0]},); "
                             f"got {tuple(values.shape)}")
        return values

    def rows(self) -> list[dict[str, float]]:
        """One dict per recorded step: step, nfe, t, t_next, stop_t and every 'output/metric' averaged over images."""
        if not self._steps:
            return []
        means = torch.stack([torch.stack([v.float().mean() for v in values.values()]) for _, values in self._steps])
        return [{**place, **dict(zip(values, row))} for (place, values), row in zip(self._steps, means.tolist())]

    def kept(self, stop_t: float, output: str = "x0_hat") -> Tensor:
        """The batch `DiracSampler(stop_t=stop_t, output=output)` would return, for a stop listed in `keep`."""
        check_choice("output", output, OUTPUTS)
        if float(stop_t) not in self._kept:
            raise KeyError(f"no output kept for stop_t {stop_t}: pass it in keep= and record a pass that reaches it "
                           f"(kept: {sorted(self._kept)})")
        return self._kept[float(stop_t)][output]


def best_stop_t(rows: list[dict[str, float]], key: str = "x0_hat/psnr", mode: str = "max") -> float:
    """The stop_t of the row with the best `key`, earliest on ties (SPEC §1.3: DO stops at the PSNR peak)."""
    check_choice("mode", mode, ("max", "min"))
    if not rows:
        raise ValueError("best_stop_t needs at least one trajectory row")
    if key not in rows[0]:
        raise ValueError(f"unknown row key {key!r}; choose one of: {', '.join(rows[0])}")
    sign = 1.0 if mode == "max" else -1.0
    best = max(rows, key=lambda row: sign * row[key])
    return best["stop_t"]
