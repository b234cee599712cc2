"""Degradation families driven by a severity map: A_t = B_{c(t)} with c in the family's own units (SPEC §1.1)."""

from __future__ import annotations

import math
from abc import abstractmethod
from pathlib import Path

from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.degradations.operators import DiagonalOperator, as_severities
from dirac.degradations.schedules import LinearSeverity, SeverityMap, as_severity_map


class ScheduledDegradation(Degradation):
    """A_t(x) = apply_at(x, schedule(t)), where `apply_at(x, c)` is the family at severity c (blur std, mask width,
    ...).

    The family's severity range is [c_min, c_max]: `apply_at(x, c_min)` is the identity and
    `apply_at(x, c_max)` the measurement operator A_1. The schedule must map t = 0 to c_min and t = 1
    to c_max, so A_0 = I and A_1 hold for every schedule. `schedule=None` means linear in t; a string
    or path is read as a schedule file ("t c" rows, e.g. the output of `python -m dirac.schedule`).
    """

    def __init__(
        self, channels: int, image_size: int, c_min: float, c_max: float,
        schedule: SeverityMap | str | Path | None = None
    ) -> None:
        super().__init__(channels, image_size)
        if not c_min < c_max:
            raise ValueError(f"{type(self).__name__}: the severity range needs c_min < c_max, got [{c_min}, {c_max}]")
        self.c_min = float(c_min)
        self.c_max = float(c_max)
        self.schedule = LinearSeverity(c_min, c_max) if schedule is None else as_severity_map(schedule)
        start, end = self.schedule.endpoints()
        close = [math.isclose(value, target, rel_tol=1e-6, abs_tol=1e-6) for value, target in ((start, self.c_min),
                                                                                               (end, self.c_max))]
        if not all(close):
            raise ValueError(
                f"{type(self).__name__}: the schedule must map t = 0 to {self.c_min} and t = 1 to {self.c_max} "
                f"(its severity range), but it maps them to {start:.6g} and {end:.6g}"
            )

    @abstractmethod
    def apply_at(self, x: Tensor, c: Tensor) -> Tensor:
        """The family at severities `c` of shape `(B,)` in its own units (c_min: identity, c_max: A_1)."""

    def apply(self, x: Tensor, t: Tensor) -> Tensor:
        """A_t(x) = apply_at(x, c(t)) (SPEC §1.1)."""
        return self.apply_at(x, self.schedule(t))

    def extra_signature(self) -> dict:
        """The severity range and the schedule; subclasses add their constructor parameters."""
        return {"c_min": self.c_min, "c_max": self.c_max, "schedule": self.schedule.signature()}


class ScheduledMask(ScheduledDegradation):
    """A scheduled pixel mask (inpainting): A_t(x) = x * masks(c(t)), one `(H, W)` mask per image, shared by the
    channels; its operator is diagonal (its own adjoint, U = V = I, s = mask; SPEC §1.5)."""

    @abstractmethod
    def masks(self, c: Tensor) -> Tensor:
        """Masks `(B, H, W)` at severities `c` of shape `(B,)`."""

    def apply_at(self, x: Tensor, c: Tensor) -> Tensor:
        """x times the mask of each sample."""
        return x * self.masks(c)[:, None]

    def operator(self, t: Tensor | float) -> DiagonalOperator:
        """A_t at fixed severities: the mask, its own adjoint, with U = V = I and s = mask (SPEC §1.5, DDRM)."""
        t = as_severities(t)
        return DiagonalOperator(self, t, self.masks(self.schedule(t))[:, None])
