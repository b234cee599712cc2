"""Solvers in k-diffusion's shape (SPEC §1.3, §1.5, §3): given Phi or a denoiser, y or x, a grid passed in (`grids`)
and a callback that gets one `Step` record per step: the Dirac reverse process, DPS, DDRM and the score-scaled
PF-ODE. The restorers the tasks call live in `dirac.restorers`."""

from dirac.samplers.ddrm import ddrm
from dirac.samplers.dps import dps
from dirac.samplers.grids import is_last_step, karras_sigmas, pf_ode_sigmas, time_grid
from dirac.samplers.incremental import INCREMENTAL_VARIANTS, incremental_reconstruction
from dirac.samplers.pf_ode import heun_pf_ode, score_scaled_pf_ode, tweedie
from dirac.samplers.reverse import dirac_reverse, reverse_step
from dirac.samplers.step import Step, StepCallback
from dirac.samplers.trajectory import TrajectoryRecorder, best_stop_t

__all__ = [
    "INCREMENTAL_VARIANTS",
    "Step",
    "StepCallback",
    "TrajectoryRecorder",
    "best_stop_t",
    "ddrm",
    "dirac_reverse",
    "dps",
    "heun_pf_ode",
    "incremental_reconstruction",
    "is_last_step",
    "karras_sigmas",
    "pf_ode_sigmas",
    "reverse_step",
    "score_scaled_pf_ode",
    "time_grid",
    "tweedie",
]
