"""Greedy degradation scheduling (paper App. B, Alg. 2; SPEC §1.1): pick severities that minimise the largest step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dirac.degradations.scheduled import ScheduledDegradation
from dirac.degradations.schedules import TabulatedSeverity

Distance = Callable[[Tensor, Tensor], Tensor]


def mse_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per-image mean squared error `(B,)` between two `(B, C, H, W)` batches (the default scheduling metric)."""
    return (a - b).pow(2).flatten(1).mean(dim=1)


@dataclass(frozen=True)
class GreedySchedule:
    """A greedy schedule: the severity map through the chosen points,
    and the largest consecutive distance as points were added.

    `max_distance[i]` is the largest distance between consecutive chosen severities once i + 2 points are
    placed (non-increasing for metrics that grow with the severity gap); `distances` are the final
    consecutive distances, one per interval.
    """

    severity: TabulatedSeverity
    max_distance: list[float]
    distances: list[float]


class SeverityDistance:
    """dist(c_a, c_b) = mean over images x of d(A_{c_a}(x), A_{c_b}(x)), for many candidate severities at once."""

    def __init__(self, degradation: ScheduledDegradation, images: Tensor, distance: Distance, batch_size: int) -> None:
        degradation.check_image(images)
        self.degradation, self.images, self.distance = degradation, images, distance
        self.per_chunk = max(1, batch_size // images.shape[0])

    def degrade(self, severities: Tensor) -> Tensor:
        """A_c(x) for every c in `severities` (M,) and every image: `(M * N, C, H, W)`, severity-major."""
        per_image = severities.to(self.images.dtype).repeat_interleave(self.images.shape[0])
        return self.degradation.apply_at(self.images.repeat(len(severities), 1, 1, 1), per_image)

    def split(self, low: float, high: float, severities: Tensor) -> tuple[Tensor, Tensor]:
        """(dist(low, c), dist(c, high)) for every c in `severities` `(M,)`, degrading each candidate once."""
        anchors = self.degrade(severities.new_tensor([low, high])).unflatten(0, (2, -1))
        left, right = [], []
        for chunk in severities.split(self.per_chunk):
            moving = self.degrade(chunk)
            left.append(self.mean_distance(anchors[0].repeat(len(chunk), 1, 1, 1), moving, len(chunk)))
            right.append(self.mean_distance(moving, anchors[1].repeat(len(chunk), 1, 1, 1), len(chunk)))
        return torch.cat(left), torch.cat(right)

    def mean_distance(self, first: Tensor, second: Tensor, count: int) -> Tensor:
        """Image-averaged distances `(count,)` of two severity-major batches of `count * N` images."""
        return self.distance(first, second).reshape(count, -1).mean(dim=1)


@torch.no_grad()
def greedy_schedule(
    degradation: ScheduledDegradation,
    images: Tensor,
    distance: Distance = mse_distance,
    c_min: float | None = None,
    c_max: float | None = None,
    budget: int = 50,
    candidates: int = 256,
    batch_size: int = 256,
) -> GreedySchedule:
    """Greedy scheduling (paper Alg. 2): from {c_min, c_max}, repeatedly split the interval of largest distance at the
    candidate severity that bisects it in distance (minimises the larger half) until `budget` points;
    t is equally spaced.

    Candidates are `candidates` equally spaced severities in [c_min, c_max] (default: the family's range);
    `distance(a, b)` returns one value per image; `batch_size` bounds the images degraded at once.
    """
    c_min = degradation.c_min if c_min is None else float(c_min)
    c_max = degradation.c_max if c_max is None else float(c_max)
    if not c_min < c_max:
        raise ValueError(f"need c_min < c_max, got {c_min}, {c_max}")
    if not 2 <= budget <= candidates:
        raise ValueError(f"need 2 <= budget <= candidates, got budget {budget} and {candidates} candidates")
    grid = torch.linspace(c_min, c_max, candidates, dtype=torch.float64)
    measure = SeverityDistance(degradation, images, distance, batch_size)
    gaps = {(0, candidates - 1): float(measure.split(float(grid[0]), float(grid[-1]), grid[-1:])[0][0])}
    history = [max(gaps.values())]
    while len(gaps) + 1 < budget:
        (low, high), _ = max(((pair, gap) for pair, gap in gaps.items() if pair[1] - pair[0] > 1),
                             key=lambda item: item[1])
        left, right = measure.split(float(grid[low]), float(grid[high]), grid[low + 1 : high])
        best = int(torch.argmin(torch.maximum(left, right)))
        del gaps[(low, high)]
        gaps[(low, low + 1 + best)] = float(left[best])
        gaps[(low + 1 + best, high)] = float(right[best])
        history.append(max(gaps.values()))
    chosen = sorted({index for pair in gaps for index in pair})
    severity = TabulatedSeverity(torch.linspace(0, 1, budget, dtype=torch.float64), grid[chosen])
    return GreedySchedule(severity, history, [gaps[pair] for pair in sorted(gaps)])
