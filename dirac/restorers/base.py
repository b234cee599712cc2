"""The restorer contract shared by every method the restoration task evaluates (Dirac-DO/PO and the baselines)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.samplers.step import StepCallback
from dirac.seeding import Generators

OutputConsumer = Callable[[float, Tensor], None]
OBJECTIVES = ("distortion", "perception")


class Restorer(ABC):
    """x_hat = restorer(y, degradation, generator): an estimate of x0 from y = A_1(x0) + sigma_1 z (SPEC §1.3, §1.5).

    A restorer has tunable parameters (`params`: name -> current value, e.g. stop_t, guidance_step, rho,
    lambda), a candidate grid per parameter (`grid`), the parameters it wants tuned on validation data
    (`tuned`, in the order to tune them) and the `objective` that tuning optimises: "distortion" (PSNR
    peak) or "perception" (the perception measure's minimum). `generator` is one torch generator or one
    per image; with one per image, an image's output does not depend on its batch. `callback` gets the `Step` record
    of every step of the sampler or iteration (`dirac.restore`'s progress bar counts them).
    """

    objective: str = "distortion"

    @property
    @abstractmethod
    def params(self) -> dict[str, float]:
        """The tunable parameters and their current values."""

    @abstractmethod
    def with_params(self, **params: float) -> Restorer:
        """This restorer with some tunable parameters replaced."""

    @abstractmethod
    def __call__(self, y: Tensor, degradation: Degradation, generator: Generators = None,
                 callback: StepCallback | None = None) -> Tensor:
        """The restoration of the measurements y of shape (B, C, H, W), each step reported to `callback`."""

    @property
    def tuned(self) -> tuple[str, ...]:
        """The parameters to tune on validation data, in tuning order (none by default)."""
        return ()

    @property
    def nfe(self) -> int:
        """Network evaluations per image of one call (0 for a classical method)."""
        return 0

    def prepare(self, degradation: Degradation) -> None:
        """Raise a clear error, before any work, when this restorer cannot handle `degradation`'s measurement operator,
        and load what it needs (e.g. a baseline's denoiser); nothing by default."""

    def grid(self, param: str) -> list[float]:
        """Candidate values of `param` for tuning and for the perception–distortion curve."""
        raise ValueError(f"{type(self).__name__} has no candidate grid for {param!r}; "
                         f"its tunable parameters are {sorted(self.params)}")

    def check_param(self, param: str) -> None:
        """Raise a clear error when `param` is not one of this restorer's tunable parameters."""
        if param not in self.params:
            raise ValueError(f"{type(self).__name__} has no tunable parameter {param!r}; "
                             f"choose one of {sorted(self.params)}")

    def sweep(self, y: Tensor, degradation: Degradation, param: str, values: Sequence[float],
              consume: OutputConsumer, generators: Callable[[], Generators]) -> None:
        """`consume(value, output)` for each value of `param`, each output from fresh `generators()`
        (one run per value)."""
        self.check_param(param)
        for value in values:
            consume(value, self.with_params(**{param: value})(y, degradation, generators()))

    def shares_pass(self, other: Restorer, param: str) -> bool:
        """Whether one `sweep` over `param` gives `other`'s output too (the two differ in `param` alone)."""
        return False
