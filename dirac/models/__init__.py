"""Lightning modules and losses of the method families (Dirac now; RGM and the denoiser module plug in here)."""

from dirac.models.dirac_module import DiracModule
from dirac.models.losses import LookAheadLoss

__all__ = ["DiracModule", "LookAheadLoss"]
