"""Denoisers `D(x, sigma) -> x0_hat`, the unconditional prior of the baselines and of RCC (SPEC §1.5, §3;
ARCHITECTURE "Denoiser").

Convention (variance exploding): a noisy image is `x = x0 + sigma * n`, n ~ N(0, I); `x` is a
`(B, C, H, W)` batch in the data range of the project, [0, 1], and `sigma` a `(B,)` tensor of
positive noise levels in the same units; `D` returns the estimate of `x0` (the posterior mean for an
MMSE-trained model) in [0, 1] units. Networks trained on the centred range [-1, 1] (EDM, DDPM) see
`2 x - 1` at noise level `2 sigma`; the adapters here do that change of units, so every denoiser
speaks [0, 1]. `check_denoiser_inputs` gives the shared ValueErrors for malformed inputs.

- `EDMDenoiser`: EDM preconditioning around any backbone `net(x, noise_label)` (Karras et al. 2022),
  with the EDM loss weight and log-normal sigma sampling for training.
- `GaussianDenoiser`: the exact posterior mean for a Gaussian source N(mu, diag v).
- `VPDenoiser`: an epsilon- (or v-, or x0-) prediction DDPM model through the VP <-> VE change of variables.
- `dirac.denoisers.diffusers.load_diffusers_denoiser`: a pretrained diffusers UNet2DModel from a local directory.
"""

from dirac.denoisers.base import Denoiser, DenoiserModule, check_denoiser_inputs, from_centred, to_centred
from dirac.denoisers.edm import EDMDenoiser, edm_loss_weight, edm_preconditioning, sample_edm_sigma
from dirac.denoisers.gaussian import GaussianDenoiser
from dirac.denoisers.vp import VPDenoiser, sigma_to_timestep, vp_sigmas

__all__ = [
    "Denoiser",
    "DenoiserModule",
    "EDMDenoiser",
    "GaussianDenoiser",
    "VPDenoiser",
    "check_denoiser_inputs",
    "edm_loss_weight",
    "edm_preconditioning",
    "from_centred",
    "sample_edm_sigma",
    "sigma_to_timestep",
    "to_centred",
    "vp_sigmas",
]
