"""The Dirac LightningModule: look-ahead training of Phi(y_t, t); Dirac-DO and Dirac-PO as restorers
(SPEC §1.2–§1.3)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from dirac.checks import check_types
from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.methods.base import Method
from dirac.methods.dirac.jitter import OperatorJitter
from dirac.methods.dirac.loss import LookAheadLoss
from dirac.methods.dirac.severity import TiltedSeverity
from dirac.nets.wrappers import ResidualX0
from dirac.precision import autocast_network_only
from dirac.restorers.dirac import DiracRestorer, DiracSampler

PRESETS = {"dirac_do": ("do", "distortion"), "dirac_po": ("po", "perception")}


class DiracModule(Method):
    """Trains Phi(y_t, t) = y_t + net(y_t, sigma_t) with L(Δt) (SPEC §1.2) and offers the restorers `dirac_do`
    (distortion-optimised) and `dirac_po` (perception-optimised): the Dirac reverse process (SPEC §1.3) with
    the two samplers' settings, their stop_t (and guidance step) tunable by the restoration task.

    Training draws one severity per image from `severity` (uniform by default). Validation logs the loss at
    seeded uniform severities. Only the network runs under mixed precision; the
    degradation, the noise schedule and the loss stay in float32. A non-finite loss stops training (checked
    when Lightning logs, so the step itself never waits for the device).
    """

    family = "dirac"

    def __init__(
        self,
        net: nn.Module,
        degradation: Degradation,
        noise: NoiseSchedule,
        loss: LookAheadLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        sampler_do: DiracSampler,
        sampler_po: DiracSampler,
        val_seed: int = 0,
        scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None = None,
        severity: TiltedSeverity | None = None,
        jitter: OperatorJitter | None = None,
        train_seed: int = 0,
    ) -> None:
        super().__init__(train_seed)
        check_types(net=(net, nn.Module), degradation=(degradation, Degradation), noise=(noise, NoiseSchedule),
                    loss=(loss, LookAheadLoss), sampler_do=(sampler_do, DiracSampler),
                    sampler_po=(sampler_po, DiracSampler))
        self.phi_net = ResidualX0(net)
        self.degradation = degradation
        self.noise = noise
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.samplers = {"do": sampler_do, "po": sampler_po}
        self.val_seed = int(val_seed)
        self.severity = severity or TiltedSeverity()
        self.jitter = jitter
        if jitter is not None:
            jitter.check(degradation)

    def phi(self, y_t: Tensor, t: Tensor) -> Tensor:
        """x0_hat = Phi(y_t, t) = y_t + net(y_t, sigma_t), conditioned on the raw sigma_t (SPEC §1.2)."""
        return self.phi_net(y_t, self.noise.sigma(t))

    def degrade(self, x0: Tensor, t: Tensor, generator: torch.Generator | None = None, jittered: bool = False
                ) -> Tensor:
        """y_t = A_t(x0) + sigma_t z (SPEC §1.1) for severities t of shape (B,) in [0, 1] (unchecked: no host sync);
        `jittered`: at the `jitter`'s perturbed operator and noise level, when the module has one."""
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        sigma = self.noise.sigma(t)
        if not (jittered and self.jitter):
            return self.degradation.apply(x0, t) + sigma.view(-1, 1, 1, 1) * z
        operator, noise = self.jitter.factors(x0.shape[0], x0.device, generator)
        measured = (self.degradation.apply_at(x0, self.jitter.severities(self.degradation, t, operator))
                    if self.jitter.operator else self.degradation.apply(x0, t))
        return measured + (sigma * noise).view(-1, 1, 1, 1) * z

    def backbone(self) -> nn.Module:
        """The NCSN++ inside Phi."""
        return self.phi_net.net

    def restorers(self) -> dict[str, DiracRestorer]:
        """Dirac-DO and Dirac-PO with the parameters tuned on validation data applied (for the auto-tuned ones)."""
        restorers = {}
        for name, (preset, objective) in PRESETS.items():
            restorer = DiracRestorer(self.phi, self.degradation, self.noise, self.samplers[preset], objective)
            tuned = {param: value for param, value in self.calibration.get(name, {}).items() if param in restorer.tuned}
            restorers[name] = restorer.with_params(**tuned)
        return restorers

    def look_ahead_loss(self, x0: Tensor, t: Tensor, generator: torch.Generator | None = None,
                        jittered: bool = False) -> Tensor:
        """L(Δt) on a batch at severities t (SPEC §1.2), only the network under autocast; `jittered` measurements
        for training (see `degrade`)."""
        with autocast_network_only(x0.device.type) as under_autocast:
            y_t = self.degrade(x0.float(), t, generator, jittered)
            return self.loss(under_autocast(self.phi)(y_t, t), x0.float(), t, self.degradation, self.noise)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        """One step of L(Δt) at one severity per image: t ~ U[0, 1) (SPEC §1.2) unless `severity` is tilted; the
        severities, noise and jitter drawn from the batch's own generator (`training_generator`)."""
        x0 = batch["image"]
        generator = self.training_generator(batch_idx, x0.device)
        loss = self.look_ahead_loss(x0, self.severity(x0.shape[0], x0.device, generator), generator, jittered=True)
        self.log("train/loss", loss, prog_bar=True, batch_size=x0.shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Validation loss at severities and noise seeded by (val_seed, rank, batch index)."""
        x0 = batch["image"]
        generator = torch.Generator(device=x0.device).manual_seed(
            self.val_seed * 1_000_003 + self.global_rank * 65_537 + batch_idx)
        t = torch.rand(x0.shape[0], generator=generator, device=x0.device)
        loss = self.look_ahead_loss(x0, t, generator)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=x0.shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        """Adam on the network parameters (SPEC §1.3b: lr 1e-4, no schedule; a schedule when configured)."""
        return self.optimization(self.phi_net.parameters())

    def signature(self) -> dict:
        """Degradation, noise and image geometry a checkpoint is only valid for."""
        return {"degradation": self.degradation.signature(), "noise": self.noise.signature(), "image_range": [0.0, 1.0]}
