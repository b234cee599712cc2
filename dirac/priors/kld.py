"""The KLD prior of RGM (SPEC §2 "Priors: KLD"; paper §3.1; rgm.md §2): a GAN discriminator D whose optimum is
logit D*(x) = log p_data(x) / p_G(x), so that E_{p_G}[-logit D*] = KL(p_G ‖ p_data)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def discriminator_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """mean softplus(−D(real)) + mean softplus(D(fake)): the logistic GAN loss of D (rgm.md §2 "Discriminator step")."""
    return F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()


def kl_estimate(fake_logit: Tensor) -> Tensor:
    """Per-sample softplus(−l) − softplus(l) = −l on generated samples: at the optimal D its mean is
    KL(p_G ‖ p_data) (rgm.md §2 "Prior term", §9.4 — the KL form, not the non-saturating softplus(−l))."""
    return F.softplus(-fake_logit) - F.softplus(fake_logit)


def r1_penalty(real_logit: Tensor, real_input: Tensor) -> Tensor:
    """mean_b ‖∇_x D(x)‖² on real inputs (Mescheder et al. 2018, R1; multiply by γ/2), differentiable in D."""
    (grad,) = torch.autograd.grad(real_logit.sum(), real_input, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


class KLDPrior(nn.Module):
    """g_phi = KL(p_G ‖ p_data) estimated by a time-conditioned discriminator trained with `discriminator_loss`."""

    uses_discriminator = True   # D is trained with the GAN loss (and R1) every iteration
    on_features = False
    shared_level = False        # per-sample terms: one level per sample is fine

    def discriminator_loss(self, real_logit: Tensor, fake_logit: Tensor) -> Tensor:
        """The GAN loss of D (see `discriminator_loss`)."""
        return discriminator_loss(real_logit, fake_logit)

    def generator_loss(self, fake_logit: Tensor) -> Tensor:
        """Mean KL estimate −logit D(x̃) over generated samples (the generator's prior term)."""
        return kl_estimate(fake_logit.flatten()).mean()
