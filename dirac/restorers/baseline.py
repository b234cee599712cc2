"""What the comparison baselines share (SPEC §1.5): tunable parameters with their grids (from the restorer's yaml,
`conf/baseline/<name>.yaml`, the one source), the measurement operator at t = 1, the shared denoiser loaded once
before any work, per-image noise and the step record of each iteration."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from torch import Tensor, nn

from dirac.checks import check_choice
from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.degradations.operators import LinearOperator, SVDOperator
from dirac.denoisers.loading import TRAIN_HINT, SharedDenoiser, as_shared
from dirac.restorers.base import OBJECTIVES, Restorer
from dirac.samplers.grids import check_sigma_ladder, karras_sigmas
from dirac.samplers.step import StepCallback
from dirac.seeding import Generators, check_generators


def measurement_operator(degradation: Degradation, y: Tensor) -> LinearOperator:
    """A_1 as an operator on y's device and dtype, one severity shared by the batch (SPEC §1.1: y = A_1(x0) + noise)."""
    return degradation.operator(y.new_ones(1))


def require_svd(method: str, degradation: Degradation, operator: LinearOperator, why: str) -> None:
    """Raise a ValueError naming the method and the operator when `operator` has no SVD (SPEC §1.5)."""
    if not isinstance(operator, SVDOperator):
        raise ValueError(f"{method} {why}, but the {type(degradation).__name__} degradation's operator "
                         f"({type(operator).__name__}) has no SVD; use dps, pnp_admm or admm_tv for it")


@dataclass(frozen=True, eq=False)
class BaselineRestorer(Restorer):
    """A comparison baseline (SPEC §1.5) as a restorer: its tunable parameters are the dataclass fields named in
    `PARAMS`; `tune` names the ones tuned on validation data (in order), `grids` their candidate values (the yaml's
    `grids:`, the one source; a tuned parameter needs one), `objective` is what tuning optimises ("perception":
    LPIPS, else patch SWD; "distortion": PSNR). A parameter must be a finite number >= 0 (and within the method's
    own bounds).
    """

    PARAMS: ClassVar[tuple[str, ...]] = ()
    METHOD: ClassVar[str] = ""
    NEEDS_LINEAR: ClassVar[bool] = True
    SAMPLES: ClassVar[bool] = False  # draws noise: the per-image generators are checked

    tune: Sequence[str] = ()
    grids: Mapping[str, Sequence[float]] = field(default_factory=dict)
    objective: str = "perception"

    def __post_init__(self) -> None:
        check_choice("objective", self.objective, OBJECTIVES)
        object.__setattr__(self, "tune", tuple(str(param) for param in self.tune))
        object.__setattr__(self, "grids",
                           {str(key): [float(v) for v in values] for key, values in dict(self.grids).items()})
        for param in (*self.tune, *self.grids):
            if param not in self.PARAMS:
                raise ValueError(f"{self.METHOD} has no tunable parameter {param!r}; choose one of {list(self.PARAMS)}")
        for param in self.PARAMS:
            value = getattr(self, param)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{self.METHOD}: {param} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, param, float(value))
        for param in self.tune:
            if not self.grids.get(param):
                raise ValueError(f"{self.METHOD} tunes {param!r} but has no candidate grid for it; set grids.{param}")

    @property
    def params(self) -> dict[str, float]:
        """The tunable parameters and their values."""
        return {param: getattr(self, param) for param in self.PARAMS}

    @property
    def tuned(self) -> tuple[str, ...]:
        """The parameters to tune on validation data (`tune`)."""
        return tuple(self.tune)

    def with_params(self, **params: float) -> BaselineRestorer:
        """This restorer with some tunable parameters replaced."""
        for param in params:
            self.check_param(param)
        return replace(self, **{param: float(value) for param, value in params.items()})

    def grid(self, param: str) -> list[float]:
        """The candidate values of `param`: `grids[param]`."""
        self.check_param(param)
        values = self.grids.get(param)
        if not values:
            raise ValueError(f"{self.METHOD} has no candidate grid for {param!r}; set grids.{param}")
        return sorted(float(value) for value in values)

    def prepare(self, degradation: Degradation) -> None:
        """Refuse a degradation this method cannot handle (`check_operator`), then load the denoiser,
        before any work."""
        if self.NEEDS_LINEAR:
            if not degradation.linear:
                raise ValueError(f"{self.METHOD} needs a linear measurement operator, but {type(degradation).__name__} "
                                 "is not linear")
            self.check_operator(degradation, degradation.operator(1.0))
        if "denoiser" in self.__dataclass_fields__:
            if self.denoiser is None:
                raise ValueError(f"{self.METHOD} needs a denoiser D(x, sigma): {TRAIN_HINT}")
            self.denoiser.load(self.METHOD)

    def check_operator(self, degradation: Degradation, operator: LinearOperator) -> None:
        """Raise a clear ValueError when this method cannot handle `operator` (none by default)."""

    def __call__(self, y: Tensor, degradation: Degradation, generator: Generators = None,
                 callback: StepCallback | None = None) -> Tensor:
        """The restoration of y (SPEC §1.5), each iteration's `Step` reported to `callback`: y is checked against
        the degradation (and the generators, one per image, of a sampling method), then restored in float32."""
        degradation.check_image(y)
        if self.SAMPLES:
            check_generators(generator, y.shape[0])
        return self.restore(y.float(), degradation, generator, callback)

    @abstractmethod
    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """The method's iterations on a checked float32 y."""

    def _denoiser(self, y: Tensor) -> nn.Module:
        """The shared denoiser on y's device."""
        denoiser = getattr(self, "denoiser", None)
        if denoiser is None:
            raise ValueError(f"{self.METHOD} needs a denoiser: {TRAIN_HINT}")
        return denoiser.on(y.device, self.METHOD)


@dataclass(frozen=True, eq=False)
class SigmaLadderBaseline(BaselineRestorer):
    """A baseline that samples with the shared denoiser along EDM's noise levels (`karras_sigmas`) from sigma_max to
    0, one denoiser call per level (DPS, DDRM; SPEC §1.5)."""

    SAMPLES: ClassVar[bool] = True

    denoiser: SharedDenoiser | nn.Module | None = None
    steps: int = 20
    sigma_max: float = 40.0
    sigma_min: float = 0.001
    rho: float = 7.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "denoiser", as_shared(self.denoiser))
        object.__setattr__(self, "steps", check_sigma_ladder(self.METHOD, self.steps, self.sigma_min, self.sigma_max))

    @property
    def nfe(self) -> int:
        """One denoiser call per noise level."""
        return self.steps

    def sigmas(self) -> list[float]:
        """The noise levels of a run, ending at 0."""
        return karras_sigmas(self.steps, self.sigma_max, self.sigma_min, self.rho)


def sigma_y(noise: NoiseSchedule, y: Tensor) -> Tensor:
    """The measurement noise sigma_1 per image, `(B,)`, from the task's noise schedule at t = 1 (SPEC §1.1)."""
    return noise.sigma(y.new_ones(y.shape[0]))
