"""DDRM (Kawar et al. 2022; SPEC §1.5) as a restorer: the `dirac.samplers.ddrm` solver in the operator's SVD space
with the shared denoiser, eta and eta_b tunable, sigma_y the task's measurement noise sigma_1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.degradations.operators import LinearOperator
from dirac.precision import autocast_network_only
from dirac.restorers.baseline import SigmaLadderBaseline, measurement_operator, require_svd, sigma_y
from dirac.samplers.ddrm import ddrm
from dirac.samplers.step import StepCallback
from dirac.seeding import Generators


@dataclass(frozen=True, eq=False)
class DDRM(SigmaLadderBaseline):
    """DDRM (SPEC §1.5): `steps` denoiser calls (default 20, DDIM-like) in the SVD space of A_1; needs an operator
    with an SVD (blur: separable 1-D matrices; masks: U = V = I) and the task's noise schedule for sigma_y.

    Tunable: `eta` (the main parameter; default 0.85) and `eta_b` (default 1.0). Returns x at sigma = 0.
    """

    PARAMS: ClassVar[tuple[str, ...]] = ("eta", "eta_b")
    METHOD: ClassVar[str] = "DDRM"

    noise: NoiseSchedule | None = None
    eta: float = 0.85
    eta_b: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eta > 1:
            raise ValueError(f"DDRM needs 0 <= eta <= 1, got {self.eta}")

    def check_operator(self, degradation: Degradation, operator: LinearOperator) -> None:
        """DDRM needs the operator's SVD and the measurement noise level."""
        require_svd(self.METHOD, degradation, operator, "samples in the operator's SVD space (A = U diag(s) V^T)")
        if self.noise is None:
            raise ValueError("DDRM needs the measurement noise sigma_1: pass the task's noise schedule "
                             "(noise: ${noise})")

    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """`samplers.ddrm` along this restorer's Karras sigmas with the shared denoiser (under autocast only) and the
        task's measurement noise sigma_1."""
        operator = measurement_operator(degradation, y)
        self.check_operator(degradation, operator)
        with autocast_network_only(y.device.type) as under_autocast:
            return ddrm(under_autocast(self._denoiser(y)), y, operator, sigma_y(self.noise, y), self.sigmas(),
                        self.eta, self.eta_b, generator, callback)
