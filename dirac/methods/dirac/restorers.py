"""Dirac-DO and Dirac-PO as restorers: the Dirac reverse process with its stop and guidance step tunable (SPEC §1.3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.samplers.restorer import Generators, OutputConsumer, Restorer
from dirac.samplers.reverse import DiracSampler, Phi, StepState, is_last_step, time_grid

TUNING_ORDER = ("guidance_step", "stop_t")  # the guidance step first, then the stop along the tuned trajectory


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

    def __call__(self, y: Tensor, degradation: Degradation, generator: Generators = None) -> Tensor:
        """The Dirac reverse process from y, stopped at stop_t (paper Alg. 1)."""
        return self.sampler(self.phi, y, self.degradation, self.noise, generator=generator)

    def sweep(self, y: Tensor, degradation: Degradation, param: str, values: Sequence[float],
              consume: OutputConsumer, generators: Callable[[], Generators]) -> None:
        """Along stop_t, one full pass gives every value's output: the output of the step that a run stopped at
        that value ends with (SPEC §1.3 early stopping); other parameters run once per value."""
        if param != "stop_t":
            super().sweep(y, degradation, param, values, consume, generators)
            return
        pending = sorted({float(value) for value in values}, reverse=True)
        full = self.sampler.with_stop(min(pending))

        def deliver(state: StepState) -> None:
            while pending and is_last_step(state.index, state.num_steps, state.t_next, pending[0]):
                consume(pending.pop(0), state.x0_hat if full.output == "x0_hat" else state.y_next)

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
