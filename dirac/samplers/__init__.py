"""Reverse samplers: the Dirac reverse process, its settings, and trajectory recording (SPEC §1.3)."""

from dirac.samplers.incremental import INCREMENTAL_VARIANTS, incremental_reconstruction
from dirac.samplers.restorer import Restorer
from dirac.samplers.reverse import DiracSampler, StepState, dirac_reverse, is_last_step, time_grid
from dirac.samplers.trajectory import TrajectoryRecorder, best_stop_t

__all__ = [
    "INCREMENTAL_VARIANTS",
    "DiracSampler",
    "Restorer",
    "StepState",
    "TrajectoryRecorder",
    "best_stop_t",
    "dirac_reverse",
    "incremental_reconstruction",
    "is_last_step",
    "time_grid",
]
