"""The one record every sampler hands its step callback (k-diffusion's `callback({'i', 'sigma', 'x', 'denoised'})`):
`dirac.restore`'s progress bar, the trajectory recording and the restorers' sweeps read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True, eq=False)
class Step:
    """Step `index` of `num_steps` of a solver (SPEC §1.3, §1.5, §3): from level `t` to `t_next` (Dirac's time, or
    the noise level sigma of a ladder; None for an iteration without a level, e.g. ADMM), the iterate `x` it started
    from, its `estimate` of x0 and the iterate `x_next` it ends with."""

    index: int
    num_steps: int
    t: float | None
    t_next: float | None
    x: Tensor
    estimate: Tensor
    x_next: Tensor

    @property
    def is_last(self) -> bool:
        """Whether this is the last step of the run."""
        return self.index == self.num_steps - 1


StepCallback = Callable[[Step], None]
