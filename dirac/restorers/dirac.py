"""Dirac-DO and Dirac-PO as restorers: the settings of the Dirac reverse process (`DiracSampler`, the `sampler`
config group) and the restorer that runs it with its stop and guidance step tunable (SPEC §1.3, §1.3b)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from torch import Tensor

from dirac.checks import check_choice, check_interval
from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.restorers.base import OutputConsumer, Restorer
from dirac.samplers.grids import is_last_step, time_grid
from dirac.samplers.incremental import INCREMENTAL_VARIANTS
from dirac.samplers.reverse import GUIDANCES, OUTPUTS, Guidance, Output, Phi, dirac_reverse
from dirac.samplers.step import Step, StepCallback
from dirac.seeding import Generators

TUNING_ORDER = ("guidance_step", "stop_t")  # the guidance step first, then the stop along the tuned trajectory


@dataclass(frozen=True)
class DiracSampler:
    """Settings of the Dirac reverse process (SPEC §1.3, presets §1.3b); calling it runs `dirac_reverse` (paper
    Alg. 1) along `time_grid(dt, stop_t)`.

    `auto_stop` asks the caller to replace `stop_t` by the best stop on validation data (`best_stop_t`):
    the PSNR peak for Dirac-DO, the perception minimum for Dirac-PO; `auto_guidance` likewise picks
    `guidance_step` from `guidance_grid` (SPEC §1.3b: the reference's step sizes do not carry over).
    """

    dt: float = 0.02
    stop_t: float = 0.0
    output: Output = "x0_hat"
    incremental: str = "look_ahead"
    guidance: Guidance = "none"
    guidance_step: float = 0.5
    small_delta: float = 0.005
    auto_stop: bool = False
    auto_guidance: bool = False
    guidance_grid: tuple[float, ...] = ()  # the yaml (conf/sampler/) holds the grid

    def __post_init__(self) -> None:
        object.__setattr__(self, "guidance_grid", tuple(float(step) for step in self.guidance_grid))
        check_interval("dt", self.dt, 0.0, 1.0, open_low=True)
        check_interval("stop_t", self.stop_t, 0.0, 1.0)
        check_choice("output", self.output, OUTPUTS)
        check_choice("incremental reconstruction", self.incremental, INCREMENTAL_VARIANTS)
        check_choice("guidance", self.guidance, GUIDANCES)
        check_interval("guidance_step", self.guidance_step, 0.0, float("inf"))
        check_interval("small_delta", self.small_delta, 0.0, 1.0, open_low=True)
        for flag in ("auto_stop", "auto_guidance"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        for step in self.guidance_grid:
            check_interval("guidance_grid entry", step, 0.0, float("inf"))
        if self.auto_guidance and (self.guidance == "none" or not self.guidance_grid):
            raise ValueError("auto_guidance tunes guidance_step on validation data: it needs guidance std or error "
                             "and a non-empty guidance_grid")

    @property
    def nfe(self) -> int:
        """Number of phi evaluations of one run: the length of the time grid up to stop_t."""
        return len(time_grid(self.dt, self.stop_t))

    def with_stop(self, stop_t: float) -> DiracSampler:
        """This sampler with the fixed stop `stop_t` (e.g. DO's automatic stop from `best_stop_t`); auto_stop off."""
        return replace(self, stop_t=stop_t, auto_stop=False)

    def __call__(self, phi: Phi, y: Tensor, degradation: Degradation, noise: NoiseSchedule,
                 generator: Generators = None, callback: StepCallback | None = None) -> Tensor:
        """Reverse the degradation process from the measurement y = y_1; the last x0_hat or iterate (SPEC §1.3)."""
        return dirac_reverse(phi, y, degradation, noise, time_grid(self.dt, self.stop_t), output=self.output,
                             incremental=self.incremental, guidance=self.guidance, guidance_step=self.guidance_step,
                             small_delta=self.small_delta, generator=generator, callback=callback)



@dataclass(frozen=True)
class DiracRestorer(Restorer):
    """The Dirac reverse process from y with `sampler`'s settings (SPEC §1.3); tunable: stop_t (and guidance_step)."""

    phi: Phi
    degradation: Degradation
    noise: NoiseSchedule
    sampler: DiracSampler
    objective: str = "distortion"

    @property
    def params(self) -> dict[str, float]:
        """stop_t, and guidance_step when the sampler is guided."""
        params = {"stop_t": self.sampler.stop_t}
        if self.sampler.guidance != "none":
            params["guidance_step"] = self.sampler.guidance_step
        return params

    @property
    def tuned(self) -> tuple[str, ...]:
        """The parameters with `auto_guidance` / `auto_stop` set, guidance step first."""
        wanted = {"stop_t": self.sampler.auto_stop, "guidance_step": self.sampler.auto_guidance}
        return tuple(param for param in TUNING_ORDER if wanted[param])

    @property
    def nfe(self) -> int:
        """Phi evaluations of one run: the time grid up to stop_t."""
        return self.sampler.nfe

    def with_params(self, **params: float) -> DiracRestorer:
        """This restorer with stop_t / guidance_step replaced."""
        for param in params:
            self.check_param(param)
        return replace(self, sampler=replace(self.sampler, **{name: float(value) for name, value in params.items()}))

    def grid(self, param: str) -> list[float]:
        """stop_t: every step's start time of a full pass (1, 1 - dt, ..., > 0); guidance_step: the sampler's grid."""
        self.check_param(param)
        if param == "stop_t":
            return [t for t, _ in time_grid(self.sampler.dt)]
        return list(self.sampler.guidance_grid)

    def __call__(self, y: Tensor, degradation: Degradation, generator: Generators = None,
                 callback: StepCallback | None = None) -> Tensor:
        """The Dirac reverse process from y, stopped at stop_t (paper Alg. 1), each step's `Step` to `callback`."""
        return self.sampler(self.phi, y, self.degradation, self.noise, generator=generator, callback=callback)

    def sweep(self, y: Tensor, degradation: Degradation, param: str, values: Sequence[float],
              consume: OutputConsumer, generators: Callable[[], Generators]) -> None:
        """Along stop_t, one full pass gives every value's output: the output of the step that a run stopped at
        that value ends with (SPEC §1.3 early stopping); other parameters run once per value."""
        if param != "stop_t":
            super().sweep(y, degradation, param, values, consume, generators)
            return
        pending = sorted({float(value) for value in values}, reverse=True)
        full = self.sampler.with_stop(min(pending))

        def deliver(step: Step) -> None:
            while pending and is_last_step(step.t_next, pending[0]):
                consume(pending.pop(0), step.estimate if full.output == "x0_hat" else step.x_next)

        full(self.phi, y, self.degradation, self.noise, generator=generators(), callback=deliver)

    def shares_pass(self, other: Restorer, param: str) -> bool:
        """True for another Dirac restorer of the same model whose sampler differs in stop_t alone."""
        if param != "stop_t" or not isinstance(other, DiracRestorer):
            return False
        same_model = (other.phi, other.degradation, other.noise) == (self.phi, self.degradation, self.noise)
        return same_model and _trajectory(other.sampler) == _trajectory(self.sampler)


def _trajectory(sampler: DiracSampler) -> DiracSampler:
    """The sampler's settings that shape the trajectory (stop and tuning flags cleared)."""
    return replace(sampler, stop_t=0.0, auto_stop=False, auto_guidance=False)
