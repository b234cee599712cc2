"""Networks: the NCSN++ / DDPM++ U-Net and the denoiser wrapper built on it (SPEC §1.2), the RGM toy MLPs (SPEC §2)."""

from dirac.nets.ncsnpp import NCSNpp
from dirac.nets.toy import ToyDiscriminator, ToyGenerator
from dirac.nets.wrappers import ResidualX0

__all__ = ["NCSNpp", "ResidualX0", "ToyDiscriminator", "ToyGenerator"]
