"""Restorers: the `Restorer` contract the tasks call (SPEC §1.3b, §1.4) and every restorer they can call: Dirac-DO/PO
(the Dirac reverse process's settings and restorer), the SPEC §1.5 baselines DPS, DDRM, PnP-ADMM and ADMM-TV, the
score-scaled PF-ODE (SPEC §3), RGM-PnP and the pseudo-inverse (SPEC §2). Each one is a file here, a yaml in
`conf/baseline/` (or `conf/sampler/` for Dirac's settings) that holds its tuning grids, and an entry in the contract
tests' registry (`tests/restorers/conftest.py`)."""

from dirac.restorers.admm_tv import ADMMTV
from dirac.restorers.base import Restorer
from dirac.restorers.baseline import BaselineRestorer
from dirac.restorers.ddrm import DDRM
from dirac.restorers.dirac import DiracRestorer, DiracSampler
from dirac.restorers.dps import DPS
from dirac.restorers.pf_ode import PFODERestorer
from dirac.restorers.pnp_admm import PnPADMM
from dirac.restorers.pseudo_inverse import PseudoInverse
from dirac.restorers.rgm_pnp import RGMPnP

__all__ = ["ADMMTV", "DDRM", "DPS", "BaselineRestorer", "DiracRestorer", "DiracSampler", "PFODERestorer", "PnPADMM",
           "PseudoInverse", "RGMPnP", "Restorer"]
