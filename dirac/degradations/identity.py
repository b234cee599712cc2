"""Pure denoising: `A_t = I` for every t (SPEC §1.1, beyond the paper)."""

from torch import Tensor

from dirac.degradations.base import Degradation


class Identity(Degradation):
    """The identity family; Dirac then reduces to a VE denoising diffusion."""

    def apply(self, x: Tensor, t: Tensor) -> Tensor:
        """A_t(x) = x."""
        return x
