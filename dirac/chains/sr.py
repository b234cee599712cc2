"""RGM-SR: odd steps add noise, even steps block-average by 2 (SPEC §2 "Forward processes"; rgm.md §1.3, §9.8).

Level k of an N-step chain uses the VP grid of M = (N + 1) // 2 steps at noise index n = ⌊(k+1)/2⌋ and down index
d = ⌊k/2⌋: x_k = P_d(ā_n x_0 + 2^n σ̄_n ε), P_d = Up^d Down^d (2x2 block averages d times, nearest upsampling).
Tensors stay H x W, as in the reference; the noise std at the level's own resolution is 2^(n-d) σ̄_n. The step into
an odd level rescales by a_n and adds noise; the step into an even level only block-averages. The latent at level N
is N(0, 4 I) on the H/2^⌊N/2⌋ grid for odd N. No posterior q(x_{k-1} | x_k, x_0) is used: Alg. 2 only.

The fidelity (SPEC §2 eq. 6) has two weightings (`fidelity`): "likelihood", the Gaussian negative log-likelihood of
x_k given x̂_0 at the level's own resolution, ½ Σ_{H/2^d grid} (r / s_k)², which equals the full-size sum with std
2^d s_k (the naive chain's and RGM-D's data term); "full_size", the reference RGM-SR's ½ Σ_{H x W} (r / s_k)², which
counts each level pixel 4^d times, i.e. 4^d x the likelihood (rgm.md §2). RGM-SR defaults to "full_size" although it
is not the likelihood: the reference's λ = 1e-3 and its FID 2.47 were obtained with it, and since the factor depends
on the level it cannot be folded into λ. The naive chain's reference term is the likelihood ("likelihood").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dirac.chains.vp import check_steps, vp_levels
from dirac.degradations.superresolution import block_average

FIDELITIES = ("likelihood", "full_size")


def fidelity_stds(std: Tensor, depth: Tensor, fidelity: str) -> Tensor:
    """The stds dividing the full-size residual: 2^d s_k for the level's likelihood, s_k for the full-size sum."""
    if fidelity not in FIDELITIES:
        raise ValueError(f"chain.fidelity must be one of {FIDELITIES} (the level's Gaussian likelihood, or the "
                         f"reference RGM-SR's full-size sum, 4^d times larger), got {fidelity!r}")
    return std * 2.0 ** depth if fidelity == "likelihood" else std


class BlockChain(nn.Module):
    """A chain of block-averaged VP levels x_k = P_{d_k}(ā_k x_0 + 2^{d_k} s_k ε): `depth` d_k, `abar` ā_k,
    `std` s_k the
    noise std at the level's own resolution H/2^{d_k}; subclasses give the three tables (k = 0..N). `fidelity` weighs
    the data term: "likelihood" (the level's Gaussian NLL) or "full_size" (the reference RGM-SR's, module docstring)."""

    gaussian_markov = False  # no posterior sampler (Alg. 1 refused; rgm.md §1.3)
    kind = ""

    def __init__(self, steps: int, depth: Tensor, abar: Tensor, std: Tensor, fidelity: str, prior_std: float,
                 beta_min: float, beta_max: float) -> None:
        super().__init__()
        fidelity_std = fidelity_stds(std, depth, fidelity)
        self.steps, self.beta_min, self.beta_max = int(steps), float(beta_min), float(beta_max)
        self.fidelity_weighting = fidelity
        self.max_depth, self.prior_std = int(depth[-1]), float(prior_std)
        shrink = torch.cat([torch.ones(1), abar[1:] / abar[:-1]])
        carried = torch.cat([torch.zeros(1), shrink[1:] * std[:-1] / 2.0 ** (depth[1:] - depth[:-1])])
        step_std = 2.0 ** depth * (std ** 2 - carried ** 2).clamp(min=0).sqrt()
        tables = {"depth": depth.long(), "abar": abar, "std": std, "shrink": shrink, "step_std": step_std,
                  "fidelity_std": fidelity_std}
        for name, value in tables.items():
            self.register_buffer(name, value if name == "depth" else value.float(), persistent=False)

    def _at(self, table: Tensor, k: Tensor, like: Tensor) -> Tensor:
        """table[k] broadcast against `like` (one value per sample)."""
        return table.to(like.device)[k].view(-1, *([1] * (like.dim() - 1)))

    def down(self, x: Tensor, k: Tensor) -> Tensor:
        """P_{d_k} x: image b block-averaged d_{k_b} times by 2, shown at full size."""
        return block_average(x, self.depth.to(x.device)[k], self.max_depth)

    def marginal(self, x0: Tensor, k: Tensor, noise: Tensor | None = None) -> Tensor:
        """A draw of q(x_k | x_0): P_{d_k}(ā_k x_0 + 2^{d_k} s_k ε), ε full-resolution N(0, I)."""
        noise = torch.randn_like(x0) if noise is None else noise
        scale = 2.0 ** self._at(self.depth, k, x0) * self._at(self.std, k, x0)
        return self.down(self._at(self.abar, k, x0) * x0 + scale * noise, k)

    def step(self, x_prev: Tensor, k: Tensor, noise: Tensor | None = None) -> Tensor:
        """One forward step q(x_k | x_{k-1}) = P_{d_k}(ā_k/ā_{k-1} x_{k-1} + r_k ε), r_k the full-resolution std that
        brings the level-resolution noise std from s_{k-1} (averaged down) to s_k; k >= 1."""
        noise = torch.randn_like(x_prev) if noise is None else noise
        return self.down(self._at(self.shrink, k, x_prev) * x_prev + self._at(self.step_std, k, x_prev) * noise, k)

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> Tensor:
        """x_N ~ N(0, prior_std² I) on the H/2^{d_N} grid, nearest-upsampled
        (the level-N marginal with σ̄ taken as 1)."""
        noise = torch.randn(shape, generator=generator, device=device)
        k = torch.full((shape[0],), self.steps, dtype=torch.long, device=device)
        return self.down(2.0 ** self.max_depth * self.prior_std * noise, k)

    def fidelity(self, x_k: Tensor, x0_hat: Tensor, k: Tensor) -> Tensor:
        """Per-sample ½ Σ_pixels ((x_k − P_{d_k}(ā_k x̂_0)) / std_k)² over the full-size tensor (SPEC §2 eq. 6 with
        A = ā_k P_{d_k}; the reference's per-pixel sum, rgm.md §2 and §9.3): std_k = 2^{d_k} s_k makes it the level's
        Gaussian NLL ("likelihood"), std_k = s_k the reference RGM-SR's 4^{d_k} times larger term ("full_size");
        k >= 1."""
        residual = (x_k - self.down(self._at(self.abar, k, x_k) * x0_hat, k)) / self._at(self.fidelity_std, k, x_k)
        return 0.5 * residual.pow(2).flatten(1).sum(dim=1)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Refuse samples that are not (C, H, W) images with H and W divisible by 2^{d_N}."""
        factor = 2 ** self.max_depth
        if len(shape) != 3 or shape[1] % factor or shape[2] % factor:
            raise ValueError(f"{type(self).__name__} (steps={self.steps}) block-averages images down to 1/{factor}: it "
                             f"needs (C, H, W) samples with H and W divisible by {factor}, got {tuple(shape)}")

    def extra_repr(self) -> str:
        return (f"steps={self.steps}, max_depth={self.max_depth}, beta_min={self.beta_min:g}, "
                f"beta_max={self.beta_max:g}, fidelity={self.fidelity_weighting}")

    def signature(self) -> dict:
        """What weights trained on this chain are only valid for."""
        return {"kind": self.kind, "steps": self.steps, "beta_min": self.beta_min, "beta_max": self.beta_max}


class SRChain(BlockChain):
    """RGM-SR (N = 7 on CIFAR-10): level k = P_{⌊k/2⌋}(ā_n x_0 + 2^n σ̄_n ε), n = ⌊(k+1)/2⌋ on the M = (N+1)//2 VP grid;
    level std s_k = 2^(n-d) σ̄_n; the fidelity defaults to the reference's sum over the full-size tensor with std s_k
    (4^d x the level's likelihood; `fidelity="likelihood"` gives the likelihood itself, module docstring)."""

    kind = "sr"

    def __init__(self, steps: int = 7, beta_min: float = 0.1, beta_max: float = 20.0,
                 fidelity: str = "full_size") -> None:
        steps = check_steps(steps)
        _, abar, sigma_bar = vp_levels((steps + 1) // 2, beta_min, beta_max)
        k = torch.arange(steps + 1)
        noise, depth = (k + 1) // 2, k // 2
        std = 2.0 ** (noise - depth) * sigma_bar[noise]
        prior_std = 2.0 ** float(noise[-1] - depth[-1])
        super().__init__(steps, depth, abar[noise], std, fidelity, prior_std, beta_min, beta_max)
