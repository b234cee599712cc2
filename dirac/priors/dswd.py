"""The DSWD prior of RGM (SPEC §2 "Priors: DSWD"; Nguyen et al. 2021, "Distributional Sliced-Wasserstein";
rgm.md §5): sliced Wasserstein along directions drawn from a learned distribution f(θ) = normalise(Linear(θ)),
θ uniform on the sphere, trained to maximise SW − λ_C · mean |cos| between directions."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def random_directions(count: int, dim: int, device: torch.device | str = "cpu",
                      generator: torch.Generator | None = None) -> Tensor:
    """`(count, dim)` directions uniform on the unit sphere."""
    return F.normalize(torch.randn(count, dim, device=device, generator=generator), dim=1)


def sliced_wasserstein(x: Tensor, y: Tensor, directions: Tensor, p: float = 2.0) -> Tensor:
    """(mean_θ Σ_b |sort(θᵀx)_b − sort(θᵀy)_b|^p)^{1/p}: the reference's batch-summed sliced W_p (rgm.md §5),
    equal batches."""
    px, py = x.flatten(1) @ directions.T, y.flatten(1) @ directions.T
    gaps = (px.sort(dim=0).values - py.sort(dim=0).values).abs().pow(p).sum(dim=0)
    return gaps.mean().pow(1 / p)


def mean_abs_cosine(directions: Tensor) -> Tensor:
    """mean over all pairs (diagonal included, as the reference) of |cos(θ_i, θ_j)| of unit directions."""
    return (directions @ directions.T).abs().mean()


class DSWDPrior(nn.Module):
    """g_phi = SW_p along learned directions: before each generator step, `inner_steps` Adam steps of the projection
    net on detached samples minimise cosine_weight · mean|cos| − SW; then the distance with the net fixed."""

    uses_discriminator = False
    shared_level = True

    def __init__(self, dim: int | None = 2, projections: int = 10, inner_steps: int = 10, cosine_weight: float = 10.0,
                 p: float = 2.0, on_features: bool = False) -> None:
        super().__init__()
        for name, value in (("dim", 1 if dim is None else dim), ("projections", projections),
                            ("inner_steps", inner_steps)):
            if int(value) != value or value < 1:
                raise ValueError(f"prior.{name} must be a positive integer, got {value!r}")
        self.projections, self.inner_steps = int(projections), int(inner_steps)
        self.cosine_weight, self.p = float(cosine_weight), float(p)
        self.on_features = bool(on_features)
        self.uses_discriminator = self.on_features
        self.dim, self.projection = None, None
        if dim is not None:
            self.bind(int(dim))

    def bind(self, dim: int) -> None:
        """Build the projection net Linear(dim, dim) for vectors of width `dim` (`dim: null` waits for RGMModule to
        bind the width of what it compares: the discriminator's features or the flattened samples)."""
        self.dim, self.projection = int(dim), nn.Linear(int(dim), int(dim))

    def directions(self, theta: Tensor) -> Tensor:
        """f(θ) = row-normalised Linear(θ): the learned projection distribution (rgm.md §5)."""
        return F.normalize(self.projection(theta), dim=1)

    def projection_objective(self, real: Tensor, fake: Tensor, theta: Tensor) -> Tensor:
        """cosine_weight · mean|cos(f(θ))| − SW(real, fake; f(θ)), minimised by the projection net (the DSW dual)."""
        directions = self.directions(theta)
        return self.cosine_weight * mean_abs_cosine(directions) - sliced_wasserstein(real, fake, directions, self.p)

    def fit_projection(self, real: Tensor, fake: Tensor, optimizer: torch.optim.Optimizer,
                       backward: Callable[[Tensor], None] = Tensor.backward) -> Tensor:
        """Run the inner loop on detached samples and return the θ it used (a fresh draw of `projections` directions);
        `backward` differentiates each inner objective (RGMModule's: outside DDP's reducer, gradients averaged)."""
        theta = random_directions(self.projections, self.dim, real.device)
        real, fake = real.detach().flatten(1), fake.detach().flatten(1)
        for _ in range(self.inner_steps):
            optimizer.zero_grad(set_to_none=True)
            backward(self.projection_objective(real, fake, theta))
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return theta

    def distance(self, real: Tensor, fake: Tensor, theta: Tensor) -> Tensor:
        """SW_p(real, fake) along f(θ) with the projection net held fixed (gradients reach the samples only)."""
        return sliced_wasserstein(real, fake, self.directions(theta).detach(), self.p)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, projections={self.projections}, inner_steps={self.inner_steps}, "
                f"cosine_weight={self.cosine_weight:g}, p={self.p:g}, on_features={self.on_features}")


def dswd_distance(prior: DSWDPrior, real: Tensor, fake: Tensor, lr: float = 1e-4,
                  betas: tuple[float, float] = (0.5, 0.9)) -> Tensor:
    """DSWD(real, fake) with a fresh Adam on the projection net (lr, betas as the reference's lr_D): the inner
    loop then the distance (Nguyen et al. 2021, eq. 9) — for evaluation; training keeps one optimiser."""
    optimizer = torch.optim.Adam(prior.projection.parameters(), lr=lr, betas=betas)
    return prior.distance(real, fake, prior.fit_projection(real, fake, optimizer))
