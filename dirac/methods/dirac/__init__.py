"""The Dirac family (SPEC §1): the LightningModule, its look-ahead loss and training severities (its restorers:
`dirac.restorers.dirac`)."""

from dirac.methods.dirac.jitter import OperatorJitter
from dirac.methods.dirac.loss import LookAheadLoss
from dirac.methods.dirac.module import DiracModule
from dirac.methods.dirac.severity import TiltedSeverity

__all__ = ["DiracModule", "LookAheadLoss", "OperatorJitter", "TiltedSeverity"]
