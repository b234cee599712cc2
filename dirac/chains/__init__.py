"""RGM forward chains x_0 -> x_1 -> ... -> x_N (SPEC §2): one forward step, the marginal x_k | x_0, the posterior."""

from dirac.chains.vp import VPChain

__all__ = ["VPChain"]
