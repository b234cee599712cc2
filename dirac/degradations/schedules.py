"""Severity maps t -> c of the degradation families: linear and tabulated (SPEC §1.1, degradation scheduling)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor, nn

BLUR_SCHEDULE = "blur_schedule.txt"


class SeverityMap(nn.Module, ABC):
    """Maps times `t` in [0, 1] (any shape) to severities `c` in a family's own units, differentiably in t."""

    @abstractmethod
    def forward(self, t: Tensor) -> Tensor:
        """c(t), elementwise, in the dtype of `t`."""

    @abstractmethod
    def signature(self) -> dict:
        """The parameters that define the map, as plain Python values (stored in checkpoints)."""

    def endpoints(self) -> tuple[float, float]:
        """(c(0), c(1)) as Python floats."""
        start, end = self(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist()
        return start, end


class LinearSeverity(SeverityMap):
    """c(t) = (1 - t) c_min + t c_max, exact at both ends (the reference's `linear` scheduling)."""

    def __init__(self, c_min: float, c_max: float) -> None:
        super().__init__()
        self.c_min = float(c_min)
        self.c_max = float(c_max)

    def forward(self, t: Tensor) -> Tensor:
        """Linear interpolation between c_min (t = 0) and c_max (t = 1)."""
        return (1 - t) * self.c_min + t * self.c_max

    def signature(self) -> dict:
        """{"kind": "linear", "c_min", "c_max"}."""
        return {"kind": "linear", "c_min": self.c_min, "c_max": self.c_max}


class TabulatedSeverity(SeverityMap):
    """Piecewise-linear interpolation through knots (t_k, c_k) with t_0 = 0 < t_1 < ... < t_K = 1 (schedule files,
    paper App. B).

    The knots are float64 buffers, so schedule files round-trip exactly; evaluation runs in the dtype of t.
    """

    t_knots: Tensor
    c_knots: Tensor

    def __init__(self, t_knots: Sequence[float] | Tensor, c_knots: Sequence[float] | Tensor) -> None:
        super().__init__()
        t_knots = torch.as_tensor(t_knots, dtype=torch.float64).flatten()
        c_knots = torch.as_tensor(c_knots, dtype=torch.float64).flatten()
        check_knots(t_knots, c_knots)
        self.register_buffer("t_knots", t_knots.clone())
        self.register_buffer("c_knots", c_knots.clone())

    def forward(self, t: Tensor) -> Tensor:
        """c(t) by linear interpolation between the two knots around each t (exact at the knots)."""
        t_knots = self.t_knots.to(t.dtype)
        c_knots = self.c_knots.to(t.dtype)
        index = (torch.searchsorted(t_knots, t.detach().contiguous(), right=True) - 1).clamp(0, len(t_knots) - 2)
        t_lo, t_hi = t_knots[index], t_knots[index + 1]
        weight = (t - t_lo) / (t_hi - t_lo)
        return (1 - weight) * c_knots[index] + weight * c_knots[index + 1]

    def signature(self) -> dict:
        """{"kind": "tabulated", "t", "c"} with the knots as lists of floats."""
        return {"kind": "tabulated", "t": self.t_knots.tolist(), "c": self.c_knots.tolist()}

    @classmethod
    def from_file(cls, path: str | Path) -> TabulatedSeverity:
        """Read a schedule file: one "t c" pair per line; blank lines and lines starting with '#' are skipped."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"severity schedule file {path} does not exist")
        return cls.from_text(path.read_text(), str(path))

    @classmethod
    def from_text(cls, text: str, source: str) -> TabulatedSeverity:
        """Parse the contents of a schedule file; `source` names it in error messages."""
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split()
            try:
                if len(fields) != 2:
                    raise ValueError
                rows.append((float(fields[0]), float(fields[1])))
            except ValueError:
                raise ValueError(f"schedule file {source}, line {number}: expected two numbers 't c', "
                                 f"got {line!r}") from None
        if not rows:
            raise ValueError(f"schedule file {source} holds no 't c' rows")
        try:
            return cls([t for t, _ in rows], [c for _, c in rows])
        except ValueError as error:
            raise ValueError(f"schedule file {source}: {error}") from None

    def save(self, path: str | Path) -> None:
        """Write the knots as a schedule file that `from_file` reads back."""
        lines = ["# t c"] + [f"{t!r} {c!r}" for t, c in zip(self.t_knots.tolist(), self.c_knots.tolist(), strict=True)]
        Path(path).write_text("\n".join(lines) + "\n")


def check_knots(t_knots: Tensor, c_knots: Tensor) -> None:
    """Raise a ValueError unless the knots are finite, of equal length >= 2, and t runs strictly up from 0 to 1."""
    if len(t_knots) < 2 or len(t_knots) != len(c_knots):
        raise ValueError(f"need at least two knots and as many t as c values, got {len(t_knots)} t and "
                         f"{len(c_knots)} c")
    if not (bool(torch.isfinite(t_knots).all()) and bool(torch.isfinite(c_knots).all())):
        raise ValueError("schedule knots must be finite numbers")
    if float(t_knots[0]) != 0.0 or float(t_knots[-1]) != 1.0:
        raise ValueError(f"schedule times must start at 0 and end at 1, got {float(t_knots[0])} and "
                         f"{float(t_knots[-1])}")
    if not bool((t_knots[1:] > t_knots[:-1]).all()):
        raise ValueError("schedule times must be strictly increasing")


def default_blur_schedule() -> TabulatedSeverity:
    """The reference Gaussian-blur std schedule (102 rows, t_k = k/101, std 0.3 -> 3.0; reference/dirac.md §1.2)."""
    resource = resources.files("dirac").joinpath("resources", BLUR_SCHEDULE)
    return TabulatedSeverity.from_text(resource.read_text(), f"dirac/resources/{BLUR_SCHEDULE} (package data)")


def as_severity_map(schedule: SeverityMap | str | Path) -> SeverityMap:
    """A severity map from a map or the path of a schedule file."""
    if isinstance(schedule, SeverityMap):
        return schedule
    if isinstance(schedule, str | Path):
        return TabulatedSeverity.from_file(schedule)
    raise TypeError(f"a schedule must be a SeverityMap or the path of a schedule file, got {type(schedule).__name__}")
