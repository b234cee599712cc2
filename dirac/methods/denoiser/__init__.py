"""The denoiser family: an EDM-preconditioned backbone trained as D(x, sigma) (Karras et al. 2022; SPEC §3–4)."""

from dirac.methods.denoiser.module import DenoiserModule

__all__ = ["DenoiserModule"]
