"""dirac: diffusion-style image restoration (Dirac), generation (RGM) and compression (RCC) on Lightning + Hydra."""

__version__ = "0.1.0"
