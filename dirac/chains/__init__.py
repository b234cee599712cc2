"""RGM forward chains x_0 -> x_1 -> ... -> x_N (SPEC §2): one forward step, the marginal x_k | x_0, the posterior
where the chain is Gaussian-Markov (`gaussian_markov`)."""

from dirac.chains.sr import BlockChain, SRChain
from dirac.chains.sr_naive import NaiveSRChain
from dirac.chains.vp import VPChain

__all__ = ["BlockChain", "NaiveSRChain", "SRChain", "VPChain"]
