"""The measurement's pseudo-inverse x = A⁺ y as a restorer (the reference row of RGM-PnP, SPEC §2 Alg. 4): nearest
replication for block-average super-resolution, the grey image repeated over the channels for colorization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.restorers.baseline import BaselineRestorer, measurement_operator
from dirac.samplers.step import StepCallback
from dirac.seeding import Generators


@dataclass(frozen=True, eq=False)
class PseudoInverse(BaselineRestorer):
    """x = A⁺ y with the task's operator A_1 (closed form through its SVD, else conjugate gradients); no parameters,
    no network (NFE 0)."""

    METHOD: ClassVar[str] = "pseudo-inverse"

    @torch.no_grad()
    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """A⁺ y."""
        return measurement_operator(degradation, y).A_pinv(y)
