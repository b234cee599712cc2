"""Training severities of the Dirac family: SPEC §1.2's t ~ U[0, 1), or tilted towards t = 1 (issue 21 lever)."""

from __future__ import annotations

import torch
from torch import Tensor


class TiltedSeverity:
    """t with density (k + 1) t^k on [0, 1), drawn as t = u^(1 / (k + 1)) for u ~ U[0, 1).

    k = 0 is SPEC §1.2's uniform t (the same draws, bit for bit); k > 0 spends more of every batch near t = 1,
    where Dirac-DO makes its one-step estimate (k = 1: a fifth of the batch at t > 0.9 instead of a tenth).
    """

    def __init__(self, power: float = 0.0) -> None:
        if not power >= 0:
            raise ValueError(f"the severity tilt power must be >= 0, got {power}")
        self.power = float(power)

    def __call__(self, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """Severities `(batch_size,)` in [0, 1)."""
        return torch.rand(batch_size, generator=generator, device=device).pow(1.0 / (self.power + 1.0))
