"""RGM's prior terms g_phi (SPEC §2 "Priors"), one file each: KLD (GAN), MMD (RBF mixture), DSWD."""

from dirac.priors.dswd import DSWDPrior, dswd_distance, sliced_wasserstein
from dirac.priors.kld import KLDPrior, discriminator_loss, kl_estimate, r1_penalty
from dirac.priors.mmd import MMDPrior, mmd2

__all__ = ["DSWDPrior", "KLDPrior", "MMDPrior", "discriminator_loss", "dswd_distance", "kl_estimate", "mmd2",
           "r1_penalty", "sliced_wasserstein"]
