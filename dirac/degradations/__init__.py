"""Degradation operators A_t, severity schedules and noise schedules of the stochastic degradation process
(SPEC §1.1)."""

from dirac.degradations.base import Degradation
from dirac.degradations.blur import GaussianBlur
from dirac.degradations.box_inpainting import BoxInpainting
from dirac.degradations.colorization import Colorization
from dirac.degradations.gaussian_inpainting import GaussianInpainting
from dirac.degradations.identity import Identity
from dirac.degradations.noise import ConstantNoise, GeometricNoise, NoiseSchedule
from dirac.degradations.scheduled import ScheduledDegradation
from dirac.degradations.schedules import LinearSeverity, SeverityMap, TabulatedSeverity, default_blur_schedule
from dirac.degradations.superresolution import BlockSuperResolution

__all__ = [
    "BlockSuperResolution",
    "BoxInpainting",
    "Colorization",
    "ConstantNoise",
    "Degradation",
    "GaussianBlur",
    "GaussianInpainting",
    "GeometricNoise",
    "Identity",
    "LinearSeverity",
    "NoiseSchedule",
    "ScheduledDegradation",
    "SeverityMap",
    "TabulatedSeverity",
    "default_blur_schedule",
]
