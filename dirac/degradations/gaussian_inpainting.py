"""Inpainting with a smooth Gaussian-shaped mask that grows with t (SPEC §1.1, reference/dirac.md §1.3)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dirac.degradations.scheduled import ScheduledMask
from dirac.degradations.schedules import SeverityMap


class GaussianInpainting(ScheduledMask):
    """Multiply by m = (1 - g_s / max g_s) ** power, the same mask for every channel.

    The severity c is the Gaussian's std s in pixels at `reference_size`, linear in t from s_min to
    s_max by default; it is scaled by `image_size / reference_size`. As in the reference, g_s / max g_s
    = exp(-r^2 / 2 s^2) is centred at pixel (H // 2, W // 2) and truncated to the square of radius
    floor(4 s + 0.5) (the mask is exactly 1 outside it), and the mask is exactly ones at c = s_min (t = 0).
    """

    sq_radius: Tensor
    chebyshev: Tensor

    def __init__(
        self,
        channels: int,
        image_size: int,
        s_min: float = 0.1,
        s_max: float = 50.0,
        power: float = 4,
        reference_size: int = 256,
        schedule: SeverityMap | str | Path | None = None,
    ) -> None:
        if not 0 < s_min < s_max:
            raise ValueError(f"need 0 < s_min < s_max, got {s_min}, {s_max}")
        if power <= 0 or reference_size < 1:
            raise ValueError(f"need power > 0 and reference_size >= 1, got {power}, {reference_size}")
        super().__init__(channels, image_size, s_min, s_max, schedule)
        self.s_min, self.s_max, self.power = float(s_min), float(s_max), float(power)
        self.reference_size = int(reference_size)
        self.scale = image_size / reference_size
        offsets = torch.arange(image_size, dtype=torch.get_default_dtype()) - image_size // 2
        self.register_buffer("sq_radius", offsets[:, None] ** 2 + offsets[None, :] ** 2)
        self.register_buffer("chebyshev", torch.maximum(offsets.abs()[:, None], offsets.abs()[None, :]))

    def masks(self, c: Tensor) -> Tensor:
        """Masks `(B, H, W)` for severities `c` (reference-size stds)."""
        std = (c * self.scale)[:, None, None]
        ratio = torch.exp(-self.sq_radius.to(c.dtype) / (2 * std**2))
        inside = self.chebyshev.to(c.dtype) <= torch.floor(4 * std + 0.5)
        mask = torch.where(inside, (1 - ratio) ** self.power, 1.0)
        return torch.where((c <= self.s_min)[:, None, None], 1.0, mask)

    def extra_signature(self) -> dict:
        """Mask std range, power and reference size."""
        return {**super().extra_signature(), "s_min": self.s_min, "s_max": self.s_max, "power": self.power,
                "reference_size": self.reference_size}
