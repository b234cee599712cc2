"""RGM-D: the VP noising chain of RGM (SPEC §2 "Forward processes"; reference rgm.md §1.1–1.2).

Levels k = 0..N (0 = clean). On the grid t_i = 1e-3 + (1 - 1e-3) i / N,
abar(t) = exp(-(b_max - b_min) t^2 / 2 - b_min t),
beta_i = 1 - abar(t_i) / abar(t_{i-1}) (beta_0 = 1e-8), a_i = sqrt(1 - beta_i), ā_k = prod_{i<=k} a_i,
σ̄_k = sqrt(1 - ā_k^2) (exactly 0 at k = 0). Level tensors `k` are int64 `(B,)`, one level per sample.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def check_steps(steps: int) -> int:
    """`steps` as an int, refused unless a positive integer."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"chain.steps must be a positive integer, got {steps!r}")
    return int(steps)


def vp_betas(steps: int, beta_min: float = 0.1, beta_max: float = 20.0) -> Tensor:
    """beta_0..beta_N of the discretised VP SDE, beta_0 = 1e-8 (rgm.md §1.1), float64."""
    t = 1e-3 + (1 - 1e-3) * torch.arange(steps + 1, dtype=torch.float64) / steps
    log_abar = -0.5 * (beta_max - beta_min) * t ** 2 - beta_min * t
    betas = 1 - torch.exp(log_abar[1:] - log_abar[:-1])
    return torch.cat([torch.tensor([1e-8], dtype=torch.float64), betas])


def vp_levels(steps: int, beta_min: float = 0.1, beta_max: float = 20.0) -> tuple[Tensor, Tensor, Tensor]:
    """(β_k, ā_k = prod_{i<=k} sqrt(1 - β_i), σ̄_k = sqrt(1 - ā_k²) with σ̄_0 = 0) for k = 0..N (rgm.md §1.1), float32."""
    betas = vp_betas(steps, beta_min, beta_max)
    abar = torch.cumprod(torch.sqrt(1 - betas), dim=0)
    sigma_bar = torch.sqrt(1 - abar ** 2)
    sigma_bar[0] = 0.0
    return betas.float(), abar.float(), sigma_bar.float()


class VPChain(nn.Module):
    """The RGM-D chain: x_k = a_k x_{k-1} + sqrt(beta_k) ε, marginal x_k = ā_k x_0 + σ̄_k ε, prior N(0, I) at level N."""

    gaussian_markov = True  # the posterior q(x_{k-1} | x_k, x_0) exists (Alg. 1 allowed)

    def __init__(self, steps: int = 4, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        super().__init__()
        self.steps = check_steps(steps)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        betas, abar, sigma_bar = vp_levels(self.steps, beta_min, beta_max)
        for name, value in (("betas", betas), ("abar", abar), ("sigma_bar", sigma_bar)):
            self.register_buffer(name, value, persistent=False)

    def _at(self, table: Tensor, k: Tensor, like: Tensor) -> Tensor:
        """table[k] broadcast against `like` (one value per sample)."""
        return table.to(like.device)[k].view(-1, *([1] * (like.dim() - 1)))

    def marginal(self, x0: Tensor, k: Tensor, noise: Tensor | None = None) -> Tensor:
        """A draw of q(x_k | x_0) = N(ā_k x_0, σ̄_k^2 I) (rgm.md §1.1 "Marginal")."""
        noise = torch.randn_like(x0) if noise is None else noise
        return self._at(self.abar, k, x0) * x0 + self._at(self.sigma_bar, k, x0) * noise

    def step(self, x_prev: Tensor, k: Tensor, noise: Tensor | None = None) -> Tensor:
        """One forward step q(x_k | x_{k-1}) = N(sqrt(1 - beta_k) x_{k-1}, beta_k I), k >= 1."""
        noise = torch.randn_like(x_prev) if noise is None else noise
        beta = self._at(self.betas, k, x_prev)
        return torch.sqrt(1 - beta) * x_prev + torch.sqrt(beta) * noise

    def posterior(self, x_k: Tensor, x0: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_{k-1} | x_k, x_0) (DDPM eq. 6–7): mean = ā_{k-1} β_k / σ̄_k² x_0 +
        a_k σ̄_{k-1}² / σ̄_k² x_k, var = σ̄_{k-1}² β_k / σ̄_k² (0 at k = 1), k >= 1."""
        beta, s2 = self._at(self.betas, k, x_k), self._at(self.sigma_bar, k, x_k) ** 2
        abar_prev, s2_prev = self._at(self.abar, k - 1, x_k), self._at(self.sigma_bar, k - 1, x_k) ** 2
        mean = abar_prev * beta / s2 * x0 + torch.sqrt(1 - beta) * s2_prev / s2 * x_k
        return mean, s2_prev * beta / s2

    def posterior_sample(self, x_k: Tensor, x0: Tensor, k: Tensor, noise: Tensor | None = None) -> Tensor:
        """A draw of q(x_{k-1} | x_k, x_0) (Alg. 1's re-degradation), reparameterised in x_0."""
        mean, var = self.posterior(x_k, x0, k)
        noise = torch.randn_like(x_k) if noise is None else noise
        return mean + torch.sqrt(var) * noise

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> Tensor:
        """x_N ~ N(0, I), the chain's latent (ignores the ā_N x_0 = 0.0066 x_0 residual, as the reference does)."""
        return torch.randn(shape, generator=generator, device=device)

    def fidelity(self, x_k: Tensor, x0_hat: Tensor, k: Tensor) -> Tensor:
        """Per-sample ½ Σ_pixels ((x_k − ā_k x̂_0) / σ̄_k)², the data term of SPEC §2 eq. 6 with A = ā_k I and the
        residual divided by the std Σ^{1/2} (the reference's per-pixel sum, rgm.md §2 and §9.3), k >= 1."""
        residual = (x_k - self._at(self.abar, k, x_k) * x0_hat) / self._at(self.sigma_bar, k, x_k)
        return 0.5 * residual.pow(2).flatten(1).sum(dim=1)

    def step_fidelity(self, x_k: Tensor, x_prev_hat: Tensor, k: Tensor) -> Tensor:
        """Per-sample ½ Σ ((x_k − a_k x̃_{k-1}) / σ_k)², the one-step data term of Alg. 1 (A = a_k, Σ = β_k), k >= 1."""
        beta = self._at(self.betas, k, x_k)
        residual = (x_k - torch.sqrt(1 - beta) * x_prev_hat) / torch.sqrt(beta)
        return 0.5 * residual.pow(2).flatten(1).sum(dim=1)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Any sample shape works (points or images): the chain acts elementwise."""

    def extra_repr(self) -> str:
        return f"steps={self.steps}, beta_min={self.beta_min:g}, beta_max={self.beta_max:g}"

    def signature(self) -> dict:
        """What weights trained on this chain are only valid for."""
        return {"kind": "vp", "steps": self.steps, "beta_min": self.beta_min, "beta_max": self.beta_max}

