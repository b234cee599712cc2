"""DPS (Chung et al. 2023; SPEC §1.5) as a restorer: the `dirac.samplers.dps` solver with the shared unconditional
denoiser D(x, sigma) ([0, 1] units, variance exploding) and its step zeta tunable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.precision import autocast_network_only
from dirac.restorers.baseline import SigmaLadderBaseline
from dirac.samplers.dps import dps
from dirac.samplers.step import StepCallback
from dirac.seeding import Generators


@dataclass(frozen=True, eq=False)
class DPS(SigmaLadderBaseline):
    """DPS (SPEC §1.5): `steps` guided ancestral steps (the paper: 1000 NFE), step `zeta` (tuned) normalised by the
    per-image residual norm ||y - A_1(x0_hat)||. Returns x at sigma = 0. Works for any differentiable degradation."""

    PARAMS: ClassVar[tuple[str, ...]] = ("zeta",)
    METHOD: ClassVar[str] = "DPS"
    NEEDS_LINEAR: ClassVar[bool] = False  # only A_1 and its gradient: any differentiable degradation

    zeta: float = 0.5
    steps: int = 1000  # one denoiser call and its backward pass per step

    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """`samplers.dps` along this restorer's Karras sigmas with the shared denoiser (under autocast only)."""
        ones = y.new_ones(y.shape[0])
        with autocast_network_only(y.device.type) as under_autocast:
            return dps(under_autocast(self._denoiser(y)), y, lambda x0_hat: degradation(x0_hat, ones), self.sigmas(),
                       self.zeta, generator, callback)
