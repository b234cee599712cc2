"""Networks: the NCSN++ / DDPM++ U-Net and the denoiser wrapper built on it (SPEC §1.2); RGM's NCSN++ generator,
time-conditioned discriminators and toy MLPs (SPEC §2)."""

from dirac.nets.discriminator import TimeDiscriminator
from dirac.nets.generator import NCSNppGenerator
from dirac.nets.ncsnpp import NCSNpp
from dirac.nets.toy import ToyDiscriminator, ToyGenerator
from dirac.nets.wrappers import ResidualX0

__all__ = ["NCSNpp", "NCSNppGenerator", "ResidualX0", "TimeDiscriminator", "ToyDiscriminator", "ToyGenerator"]
