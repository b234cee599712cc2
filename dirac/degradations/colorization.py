"""Colorization: fade the colours into the channel mean (SPEC §1.1 and §2, colorization)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from dirac.degradations.operators import ColorizationOperator, as_severities
from dirac.degradations.scheduled import ScheduledDegradation
from dirac.degradations.schedules import SeverityMap


class Colorization(ScheduledDegradation):
    """A(x) = (1 - c) x + c mean_channels(x), c from 0 (identity) to 1 (grayscale in every channel)."""

    def __init__(self, channels: int = 3, image_size: int = 32, schedule: SeverityMap | str | Path | None = None) -> None:
        if channels < 2:
            raise ValueError(f"colorization needs at least two channels, got {channels}")
        super().__init__(channels, image_size, 0.0, 1.0, schedule)

    def apply_at(self, x: Tensor, c: Tensor) -> Tensor:
        """Blend each sample with its channel mean by its weight c."""
        weight = c[:, None, None, None]
        return (1 - weight) * x + weight * x.mean(dim=1, keepdim=True)

    def operator(self, t: Tensor | float) -> ColorizationOperator:
        """A_t at fixed severities: symmetric, diagonal in a per-pixel basis led by the grey axis (SPEC §1.5)."""
        t = as_severities(t)
        return ColorizationOperator(self, t, self.schedule(t))
