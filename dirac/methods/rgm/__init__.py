"""The RGM family: generation as a short chain of MAP restorations (SPEC §2; Choi et al., ICML 2023)."""

from dirac.methods.rgm.loading import load_rgm
from dirac.methods.rgm.module import RGMModule

__all__ = ["RGMModule", "load_rgm"]
