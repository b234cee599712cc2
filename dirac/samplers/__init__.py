"""Reverse samplers: the Dirac reverse process, its settings, and trajectory recording (SPEC §1.3); the comparison
baselines DPS, DDRM, PnP-ADMM and ADMM-TV (SPEC §1.5); RGM as a plug-and-play prior and the pseudo-inverse (SPEC §2)."""

from dirac.samplers.admm_tv import ADMMTV
from dirac.samplers.ddrm import DDRM
from dirac.samplers.dps import DPS
from dirac.samplers.incremental import INCREMENTAL_VARIANTS, incremental_reconstruction
from dirac.samplers.pnp_admm import PnPADMM
from dirac.samplers.pseudo_inverse import PseudoInverse
from dirac.samplers.restorer import Restorer
from dirac.samplers.rgm_pnp import RGMPnP
from dirac.samplers.reverse import DiracSampler, StepState, dirac_reverse, is_last_step, time_grid
from dirac.samplers.trajectory import TrajectoryRecorder, best_stop_t

__all__ = [
    "ADMMTV",
    "DDRM",
    "DPS",
    "PnPADMM",
    "PseudoInverse",
    "RGMPnP",
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
