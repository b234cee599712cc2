"""The RGM LightningModule (SPEC §2): G(x_k, z, k) restores x̂_0 from level-k points or images, trained with
λ · fidelity + prior (paper eq. 6) by manual optimisation of G, D and the DSWD projection net; EMA of G; Alg. 3
sampling with NFE = N.

Fidelity (stated, rgm.md §2 and §9.3): per sample ½ Σ_pixels ((x_k − A x̂)/std)², the residual divided by the std
Σ^{1/2} and summed over pixels (not SPEC's ‖Σ^{-1}(·)‖²; λ was tuned against the sum). `fidelity: mmse` replaces
it by the recovery term ½ Σ (x̂_0 − x_0)² (paper eq. 4, the DDM/MMSE estimator) — the `toy_mmse` baseline; the
λ-only MAP term alone would be minimised by the pseudo-inverse x_k / ā_k, which is no MMSE estimator.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from dirac.methods.base import Method
from dirac.methods.rgm.distributed import average_gradients
from dirac.priors.dswd import DSWDPrior
from dirac.priors.kld import discriminator_loss, r1_penalty

ALGORITHMS = ("prior", "posterior")      # Alg. 2 (re-degrade with the forward chain), Alg. 1 (posterior sampling)
FIDELITIES = ("map", "mmse")
Optimizer = Callable[..., torch.optim.Optimizer]
Scheduler = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class RGMModule(Method):
    """Trains `generator` (G(x_k, z, k) → x̂_0) on `chain` with `prior` (KLD/MMD/DSWD module, or None) and the
    fidelity term; `discriminator` D(x_{k-1}, x_k, k) is kept and trained (logistic GAN loss, lazy R1 on real
    inputs every `lazy_reg` iterations) only when the prior uses it (KLD, or MMD/DSWD `on_features`).

    One training iteration = one D step (when used), the DSWD inner loop (when used), one G step, one EMA update.
    `global_step` counts G steps only (D and projection steps bypass Lightning's step counter), so
    `trainer.max_steps` is the number of iterations. A non-finite loss raises FloatingPointError naming the step.
    `scheduler_g` / `scheduler_d` (factories of a learning-rate schedule, e.g. the reference's cosine) are stepped
    once per epoch, at its end (rgm.md §4).
    Under DDP (`trainer.strategy=ddp`, any find_unused_parameters) every backward runs outside DDP's reducer and the
    gradients of the network about to step are averaged explicitly (`reduced_backward`): identical G, D and
    projection weights on every process.
    Real pairs (x_{k-1}, x_k) are coupled as the fake ones are, which a discriminator that sees x_k (`conditional`)
    can tell apart: Markov-coupled under Alg. 1, two independent marginals of x_0 under Alg. 2 (`real_pair`).
    Batches are what the generator makes (its `sample_shape`): `(B, dim)` points for the toy MLPs, `{"image"}` batches
    in [0, 1] for image generators, mapped to [−1, 1] here (rgm.md §0) and back in `sample`.
    """

    family = "rgm"

    def __init__(self, generator: nn.Module, chain: nn.Module, prior: nn.Module | None, optimizer_g: Optimizer,
                 discriminator: nn.Module | None = None, optimizer_d: Optimizer | None = None,
                 optimizer_projection: Optimizer | None = None, algorithm: str = "prior", fidelity: str = "map",
                 lam: float = 1e-3, ema_decay: float = 0.9999, r1_gamma: float = 0.02, lazy_reg: int = 15,
                 scheduler_g: Scheduler | None = None, scheduler_d: Scheduler | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        check_choices(chain, prior, algorithm, fidelity, lam)
        self.generator, self.chain, self.prior = generator, chain, prior
        self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
        self.uses_discriminator = prior is not None and prior.uses_discriminator
        self.discriminator = discriminator if self.uses_discriminator else None
        sees_x_k = self.uses_discriminator and getattr(discriminator, "conditional", True)  # unsaid: it may read x_k
        self.independent_pairs = algorithm == "prior" and bool(sees_x_k)
        self.sample_shape, self.nz = tuple(generator.sample_shape), int(generator.nz)
        self.images = len(self.sample_shape) == 3
        chain.check_shape(self.sample_shape)
        self.check_discriminator(optimizer_d)
        if isinstance(prior, DSWDPrior):
            self.bind_projection(optimizer_projection)
        self.optimizer_factories = (optimizer_g, optimizer_d, optimizer_projection)
        self.scheduler_factories = (scheduler_g, scheduler_d if self.uses_discriminator else None)
        self.algorithm, self.fidelity_kind, self.lam = algorithm, fidelity, float(lam)
        self.ema_decay, self.r1_gamma, self.lazy_reg = float(ema_decay), float(r1_gamma), max(1, int(lazy_reg))

    def check_discriminator(self, optimizer_d: Optimizer | None) -> None:
        """Refuse a prior that needs D without one (or without features to compare), or D without an optimiser."""
        if not self.uses_discriminator:
            return
        if self.discriminator is None or optimizer_d is None:
            raise ValueError(f"the {type(self.prior).__name__} prior trains a discriminator: set model.discriminator "
                             "and model.optimizer_d")
        judged = tuple(getattr(self.discriminator, "sample_shape", self.sample_shape))
        if judged != self.sample_shape:
            raise ValueError(f"the generator makes samples of shape {self.sample_shape} but the discriminator "
                             f"{type(self.discriminator).__name__} judges {judged}: pick networks for the same data")
        if getattr(self.prior, "on_features", False):
            width = getattr(self.discriminator, "feature_dim", None)
            if width is None or not callable(getattr(self.discriminator, "features", None)):
                raise ValueError(f"prior.on_features=true needs a discriminator with features; "
                                 f"{type(self.discriminator).__name__} has none")

    def bind_projection(self, optimizer_projection: Optimizer | None) -> None:
        """Give the DSWD projection net the width of what it compares (D features or flattened samples), or refuse
        a configured `prior.dim` that differs; refuse a missing projection optimiser."""
        if optimizer_projection is None:
            raise ValueError("the DSWD prior needs model.optimizer_projection (Adam on its projection net)")
        on_features = self.prior.on_features
        width = self.discriminator.feature_dim if on_features else math.prod(self.sample_shape)
        if self.prior.dim is None:
            self.prior.bind(width)
        elif self.prior.dim != width:
            what = "the discriminator's feature width" if on_features else "the flattened sample width"
            raise ValueError(f"prior.dim={self.prior.dim} must equal {what} {width} (prior.dim=null takes it)")

    # ---- the pieces of one iteration -------------------------------------------------------------------------------
    def levels(self, batch: int, device: torch.device) -> Tensor:
        """Input levels k in 1..N: one per sample, or one per batch for set distances (MMD, DSWD; rgm.md §2)."""
        shared = self.prior is not None and self.prior.shared_level
        k = torch.randint(1, self.chain.steps + 1, (1 if shared else batch,), device=device)
        return k.expand(batch) if shared else k

    def real_pair(self, x0: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """(x_{k-1}, x_k) coupled as the fake pair (x̃_{k-1}, x_k) is: x_{k-1} ~ q(x_{k-1} | x_0) then one forward step
        (Markov, matching Alg. 1's posterior draw); with a discriminator that sees x_k under Alg. 2, whose x̃_{k-1} =
        q(· | x̂_0) ignores x_k's noise, x_k ~ q(x_k | x_0) drawn independently (rgm.md §1.1, the reference's pairs).
        A D without x_k sees only x_{k-1}, whose law is the same either way: the Markov pair stays."""
        x_prev = self.chain.marginal(x0, k - 1)
        if self.independent_pairs:
            return x_prev, self.chain.marginal(x0, k)
        return x_prev, self.chain.step(x_prev, k)

    def redegrade(self, x0_hat: Tensor, x_k: Tensor, k: Tensor) -> Tensor:
        """x̃_{k-1}: the forward marginal of x̂_0 (Alg. 2) or the posterior q(x_{k-1} | x_k, x̂_0) (Alg. 1);
        reparameterised."""
        if self.algorithm == "posterior":
            return self.chain.posterior_sample(x_k, x0_hat, k)
        return self.chain.marginal(x0_hat, k - 1)

    def restore(self, x_k: Tensor, k: Tensor, ema: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """x̂_0 = G(x_k, z, k) with z ~ N(0, I_nz)."""
        z = torch.randn(x_k.shape[0], self.nz, device=x_k.device, generator=generator)
        return (self.generator_ema if ema else self.generator)(x_k, z, k)

    def fidelity(self, x0: Tensor, x_k: Tensor, k: Tensor, x0_hat: Tensor, x_prev_hat: Tensor) -> Tensor:
        """Per-sample data term: the chain's MAP fidelity (Alg. 2: A = ā_k; Alg. 1: the one-step transition), or
        the MMSE recovery ½ Σ (x̂_0 − x_0)² (paper eq. 4)."""
        if self.fidelity_kind == "mmse":
            return 0.5 * (x0_hat - x0).pow(2).flatten(1).sum(dim=1)
        if self.algorithm == "posterior":
            return self.chain.step_fidelity(x_k, x_prev_hat, k)
        return self.chain.fidelity(x_k, x0_hat, k)

    def prior_term(self, x_prev: Tensor, x_k: Tensor, k: Tensor, fake: Tensor) -> Tensor:
        """g_phi of the generated level-(k−1) points against real ones: −logit D (KLD), MMD or DSWD
        (on points or D features)."""
        if self.prior is None:
            return fake.new_zeros(())
        if not hasattr(self.prior, "distance"):
            return self.prior.generator_loss(self.discriminator(fake, x_k, k))
        real, fake = x_prev, fake
        if self.prior.on_features:
            real, fake = self.discriminator.features(x_prev, x_k, k), self.discriminator.features(fake, x_k, k)
        if isinstance(self.prior, DSWDPrior):
            optimizer = self.optimizers()[-1].optimizer  # raw: the inner steps do not count as global steps
            backward = lambda objective: self.reduced_backward(objective, self.prior.projection)  # noqa: E731
            theta = self.prior.fit_projection(real, fake, optimizer, backward)
            return self.prior.distance(real, fake, theta)
        return self.prior.distance(real, fake)

    def discriminator_step(self, x0: Tensor, optimizer: torch.optim.Optimizer) -> Tensor:
        """One D step of the logistic GAN loss on (real, re-degraded generated) pairs,
        + γ/2 R1 every lazy_reg iterations."""
        k = self.levels(x0.shape[0], x0.device)
        x_prev, x_k = self.real_pair(x0, k)
        with torch.no_grad():
            fake = self.redegrade(self.restore(x_k, k), x_k, k)
        regularise = self.r1_gamma > 0 and self.global_step % self.lazy_reg == 0
        x_prev = x_prev.requires_grad_(regularise)
        real_logit = self.discriminator(x_prev, x_k, k)
        loss = discriminator_loss(real_logit, self.discriminator(fake, x_k, k))
        if regularise:
            loss = loss + 0.5 * self.r1_gamma * r1_penalty(real_logit, x_prev)
        self.check_finite("discriminator", loss)
        optimizer.zero_grad(set_to_none=True)
        self.reduced_backward(loss, self.discriminator)
        optimizer.step()
        return loss.detach()

    def generator_step(self, x0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The generator loss mean(prior + λ · fidelity) at fresh levels and latents; returns (loss, prior,
        fidelity)."""
        k = self.levels(x0.shape[0], x0.device)
        x_prev, x_k = self.real_pair(x0, k)
        x0_hat = self.restore(x_k, k)
        fake = self.redegrade(x0_hat, x_k, k)
        prior = self.prior_term(x_prev, x_k, k, fake)
        fidelity = self.fidelity(x0, x_k, k, x0_hat, fake).mean()
        return prior + self.lam * fidelity, prior.detach(), fidelity.detach()

    # ---- Lightning hooks -------------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> dict:
        """One RGM iteration (D step, [DSWD inner loop,] G step, EMA update) on a batch of points or images."""
        x0 = self.inputs(batch)
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        logs = {}
        if self.uses_discriminator:
            logs["train/loss_d"] = self.discriminator_step(x0, optimizers[1].optimizer)
        loss, logs["train/prior"], logs["train/fidelity"] = self.generator_step(x0)
        self.check_finite("generator", loss)
        optimizers[0].zero_grad(set_to_none=True)
        self.reduced_backward(loss, self.generator)
        optimizers[0].step()  # the one optimiser step Lightning counts
        self.update_ema()
        self.log_dict({"train/loss": loss.detach(), **logs}, prog_bar=True, batch_size=x0.shape[0])
        return {"loss": loss.detach()}

    def reduced_backward(self, loss: Tensor, net: nn.Module) -> None:
        """`manual_backward(loss)`; under DDP outside its reducer (no_sync: G, D and the projection net step apart,
        each after its own backward), then the gradients of `net`, the one about to step, averaged over processes."""
        wrapped = self.trainer.strategy.model
        if not isinstance(wrapped, DistributedDataParallel):
            self.manual_backward(loss)
            return
        with wrapped.no_sync():
            self.manual_backward(loss)
        average_gradients(net.parameters())

    def check_finite(self, what: str, loss: Tensor) -> None:
        """Raise FloatingPointError naming the step when a loss is NaN or infinite
        (manual optimisation checks itself)."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"RGM {what} loss became {value} at step {self.global_step}; lower the learning "
                                     "rate or λ, or check the data for NaNs (the last checkpoint is kept)")

    def on_train_batch_end(self, outputs: dict, batch, batch_idx: int) -> None:
        """Finiteness is checked inside the step (every loss, every step); nothing more here."""

    @torch.no_grad()
    def update_ema(self) -> None:
        """θ_ema ← decay · θ_ema + (1 − decay) · θ after each G step (rgm.md §4, EMA 0.9999)."""
        for ema, live in zip(self.generator_ema.parameters(), self.generator.parameters()):
            ema.lerp_(live.detach(), 1 - self.ema_decay)
        for ema, live in zip(self.generator_ema.buffers(), self.generator.buffers()):
            ema.copy_(live)

    def inputs(self, batch) -> Tensor:
        """x_0 of a batch: `(B, dim)` points as they are, or `batch["image"]` in [0, 1] mapped to [−1, 1]; anything
        that is not what the generator makes is refused at the first batch, naming both."""
        data = batch.get("image") if isinstance(batch, dict) else batch
        if (self.images != isinstance(batch, dict) or not torch.is_tensor(data)
                or tuple(data.shape[1:]) != self.sample_shape):
            got = tuple(data.shape) if torch.is_tensor(data) else type(batch).__name__
            wants = (f"image batches (batch, {', '.join(map(str, self.sample_shape))}) (an image data module)"
                     if self.images else f"(batch, {self.sample_shape[0]}) points (data=toy2d)")
            raise ValueError(f"RGM with the {type(self.generator).__name__} generator trains on {wants}, got {got}; "
                             "pick a generator/discriminator for the data (generator=toy for 2-D points)")
        return 2 * data.float() - 1 if self.images else data.float()

    def on_train_epoch_end(self) -> None:
        """Step the per-epoch learning-rate schedules of G and D (manual optimisation: Lightning does not)."""
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    def configure_optimizers(self) -> list[torch.optim.Optimizer] | tuple[list, list]:
        """[Adam on G] + [Adam on D when used] + [Adam on the DSWD projection net when used] (rgm.md §4–5), and the
        configured schedules of the G and D optimisers."""
        make_g, make_d, make_p = self.optimizer_factories
        optimizers = [make_g(self.generator.parameters())]
        if self.uses_discriminator:
            optimizers.append(make_d(self.discriminator.parameters()))
        if isinstance(self.prior, DSWDPrior):
            optimizers.append(make_p(self.prior.projection.parameters()))
        schedulers = [make(optimizer) for make, optimizer in zip(self.scheduler_factories, optimizers)
                      if make is not None]
        return (optimizers, schedulers) if schedulers else optimizers

    # ---- what the method offers tasks ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, count: int, generator: torch.Generator | None = None, ema: bool = True,
               callback: Callable[[int, Tensor], None] | None = None) -> Tensor:
        """Alg. 3: x_N ~ N(0, I); for k = N..1: x̂_0 = G(x_k, z, k), x_{k-1} = re-degraded x̂_0; returns the last x̂_0
        (NFE = N), images mapped back to [0, 1]. `callback(k, x0_hat)` sees every restoration (in the model's scale)."""
        device = next(self.generator.parameters()).device
        x = self.chain.prior_sample((count, *self.sample_shape), generator=generator, device=device)
        for level in range(self.chain.steps, 0, -1):
            k = torch.full((count,), level, dtype=torch.long, device=device)
            x0_hat = self.restore(x, k, ema=ema, generator=generator)
            if callback is not None:
                callback(level, x0_hat)
            x = x0_hat if level == 1 else self.redegrade_seeded(x0_hat, x, k, generator)
        return (x0_hat + 1) / 2 if self.images else x0_hat

    def redegrade_seeded(self, x0_hat: Tensor, x_k: Tensor, k: Tensor, generator: torch.Generator | None) -> Tensor:
        """`redegrade` with its noise drawn from `generator` (reproducible sampling)."""
        noise = torch.randn(x0_hat.shape, device=x0_hat.device, generator=generator)
        if self.algorithm == "posterior":
            return self.chain.posterior_sample(x_k, x0_hat, k, noise)
        return self.chain.marginal(x0_hat, k - 1, noise)

    def backbone(self) -> nn.Module:
        """The generator (the network that speed options apply to)."""
        return self.generator

    def signature(self) -> dict:
        """The chain, the algorithm and the sample shape the weights are only valid for."""
        return {"chain": self.chain.signature(),
                "rgm": {"algorithm": self.algorithm, "shape": list(self.sample_shape), "nz": self.nz}}


def check_choices(chain: nn.Module, prior: nn.Module | None, algorithm: str, fidelity: str, lam: float) -> None:
    """Refuse an unknown algorithm or fidelity, Alg. 1 on a chain without a Gaussian posterior,
    and an empty objective."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"model.algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if fidelity not in FIDELITIES:
        raise ValueError(f"model.fidelity must be one of {FIDELITIES}, got {fidelity!r}")
    if algorithm == "posterior" and not getattr(chain, "gaussian_markov", False):
        raise ValueError(f"algorithm=posterior (Alg. 1) needs a chain with a Gaussian posterior q(x_(k-1) | x_k, x_0); "
                         f"{type(chain).__name__} has none: use algorithm=prior (Alg. 2)")
    if not (math.isfinite(lam) and lam >= 0) or (prior is None and lam == 0):
        raise ValueError(f"model.lam must be finite and >= 0, and > 0 without a prior; got {lam}")
