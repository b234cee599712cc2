"""The denoiser LightningModule: D(x, sigma) = EDM preconditioning around a backbone, trained with the EDM loss
(Karras et al. 2022, eq. 7-8, Table 1); the pretrained prior of RCC and the DPS/DDRM baselines (SPEC §3–4)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dirac.denoisers import EDMDenoiser
from dirac.methods.base import Method
from dirac.precision import autocast_network_only
from dirac.seeding import image_generators, per_image_normal

DATA_RANGE = (0.0, 1.0)


class DenoiserModule(Method):
    """Trains `denoiser` = EDMDenoiser(net) on images `{"image", "name"}` in [0, 1] with the EDM objective
    lambda(sigma) ||D(x0 + sigma n, sigma) - x0||^2, ln(2 sigma) ~ N(P_mean, P_std^2) (Karras et al. 2022, eq. 8).

    Tasks use `denoiser` (a `dirac.denoisers.Denoiser`, VE convention in [0, 1] units). Validation logs the loss
    at noise levels and noise seeded per image by (val_seed, image name), so it does not depend on the batch.
    Only the network runs under mixed precision: the preconditioning, the noise and the loss stay in float32. A
    non-finite loss stops training, checked every `log_every_n_steps` (the step itself never waits for the
    device). EMA weights come from Lightning's EMAWeightAveraging callback (`callbacks.ema`).
    """

    family = "denoiser"

    def __init__(self, net: nn.Module, optimizer: Callable[..., torch.optim.Optimizer], sigma_data: float = 0.5,
                 p_mean: float = -1.2, p_std: float = 1.2, val_seed: int = 0, image_size: int | None = None,
                 channels: int | None = None,
                 scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None = None,
                 train_seed: int = 0) -> None:
        super().__init__(train_seed)
        self.denoiser = EDMDenoiser(net, sigma_data, p_mean, p_std)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_seed = int(val_seed)
        self.image_size = int(image_size if image_size is not None else _attribute(net, "image_size"))
        self.channels = int(channels if channels is not None else _attribute(net, "in_channels"))

    def edm_loss(self, x0: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
        """Per-image EDM loss lambda(sigma) mean ||D(x0 + sigma n, sigma) - x0||^2 (Karras et al. 2022, eq. 8), `(B,)`;
        the network under the outer autocast, everything else float32, no input checks (no host sync)."""
        with autocast_network_only(x0.device.type) as under_autocast:
            x0, sigma, noise = x0.float(), sigma.float(), noise.float()
            noisy = x0 + sigma.view(-1, 1, 1, 1) * noise
            # denoise: preconditioning (elementwise, stays float32 under autocast) + net, output cast to float32
            denoised = under_autocast(self.denoiser.denoise)(noisy, sigma)
            error = (denoised - x0).pow(2).flatten(1).mean(dim=1)
            return self.denoiser.loss_weight(sigma) * error

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        """One step of the EDM loss at log-normal noise levels, one per image (Karras et al. 2022, Table 1), drawn
        from the batch's own generator (`training_generator`)."""
        x0 = batch["image"]
        generator = self.training_generator(batch_idx, x0.device)
        sigma = self.denoiser.sample_sigma(x0.shape[0], generator=generator, device=x0.device, dtype=torch.float32)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=torch.float32)
        loss = self.edm_loss(x0, sigma, noise).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=x0.shape[0])
        return loss

    def validation_noise(self, x0: Tensor, names: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Per-image (sigma, n) of the validation loss, drawn from the generator of (val_seed, image name)."""
        generators = image_generators(self.val_seed, names, "denoiser-validation", x0.device)
        sigma = torch.cat([self.denoiser.sample_sigma(1, generator=g, device=x0.device, dtype=torch.float32)
                           for g in generators])
        return sigma, per_image_normal(x0.shape, generators, x0.device, torch.float32)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """The EDM loss (eq. 8) at seeded per-image noise levels and noise; mean over images, synced across ranks."""
        x0 = batch["image"]
        sigma, noise = self.validation_noise(x0, list(batch["name"]))
        self.log("val/loss", self.edm_loss(x0, sigma, noise).mean(), prog_bar=True, sync_dist=True,
                 batch_size=x0.shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        """The configured optimiser (Adam by default) on the denoiser's parameters, with its per-step learning-rate
        schedule when `scheduler` is set (e.g. the one-cycle schedule of `denoiser_embedded_long`)."""
        return self.optimization(self.denoiser.parameters())

    def signature(self) -> dict:
        """Image geometry, data range and preconditioning the weights are only valid for."""
        return {"data": {"image_size": self.image_size, "channels": self.channels, "range": list(DATA_RANGE)},
                "denoiser": {"preconditioning": "edm", "sigma_data": self.denoiser.sigma_data,
                             "convention": "variance exploding, [0, 1] units"}}


def _attribute(net: nn.Module, name: str) -> int:
    """`net.<name>`, or a ValueError asking for the explicit argument when the backbone lacks it."""
    value = getattr(net, name, None)
    if value is None:
        raise ValueError(f"the backbone {type(net).__name__} has no `{name}`; pass "
                         f"{'image_size' if name == 'image_size' else 'channels'}= to DenoiserModule")
    return int(value)
