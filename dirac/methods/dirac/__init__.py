"""The Dirac family (SPEC §1): the LightningModule, its look-ahead loss and its restorers."""

from dirac.methods.dirac.loss import LookAheadLoss
from dirac.methods.dirac.module import DiracModule
from dirac.methods.dirac.restorers import DiracRestorer
from dirac.methods.dirac.severity import TiltedSeverity

__all__ = ["DiracModule", "DiracRestorer", "LookAheadLoss", "TiltedSeverity"]
