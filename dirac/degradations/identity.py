"""Pure denoising: `A_t = I` for every t (SPEC §1.1, beyond the paper)."""

import torch
from torch import Tensor

from dirac.degradations.base import Degradation
from dirac.degradations.operators import DiagonalOperator, as_severities


class Identity(Degradation):
    """The identity family; Dirac then reduces to a VE denoising diffusion."""

    def apply(self, x: Tensor, t: Tensor) -> Tensor:
        """A_t(x) = x."""
        return x

    def operator(self, t: Tensor | float) -> DiagonalOperator:
        """A_t = I at any severity: U = V = I, s = 1."""
        t = as_severities(t)
        return DiagonalOperator(self, t, torch.ones(1, 1, 1, 1, dtype=t.dtype, device=t.device))
