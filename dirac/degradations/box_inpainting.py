"""Inpainting with a central square hole that grows with t (SPEC §1.1, beyond the paper)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dirac.degradations.scheduled import ScheduledMask
from dirac.degradations.schedules import SeverityMap


class BoxInpainting(ScheduledMask):
    """Zero a central square of side c * image_size, c from 0 (t = 0) to `max_fraction` (t = 1).

    Each pixel keeps 1 minus the fraction of its area that the square covers, so the hole has a
    one-pixel linear border and the operator is continuous (piecewise linear) in t; the mask is
    exactly ones at c = 0 and exactly zero on pixels inside the square. The square is centred at the
    image centre, ((H - 1) / 2, (W - 1) / 2) in pixel coordinates.
    """

    centre_offsets: Tensor

    def __init__(
        self, channels: int, image_size: int, max_fraction: float = 0.5,
        schedule: SeverityMap | str | Path | None = None
    ) -> None:
        if not 0 < max_fraction <= 1:
            raise ValueError(f"max_fraction must lie in (0, 1], got {max_fraction}")
        super().__init__(channels, image_size, 0.0, max_fraction, schedule)
        self.max_fraction = float(max_fraction)
        offsets = torch.arange(image_size, dtype=torch.get_default_dtype()) - (image_size - 1) / 2
        self.register_buffer("centre_offsets", offsets)

    def masks(self, c: Tensor) -> Tensor:
        """Masks `(B, H, W)` for side fractions `c`."""
        half = (c * (self.image_size / 2))[:, None]
        offsets = self.centre_offsets.to(c.dtype)[None, :]
        covered = (torch.minimum(offsets + 0.5, half) - torch.maximum(offsets - 0.5, -half)).clamp(min=0)
        return 1 - covered[:, :, None] * covered[:, None, :]

    def extra_signature(self) -> dict:
        """The largest hole side as a fraction of the image."""
        return {**super().extra_signature(), "max_fraction": self.max_fraction}
