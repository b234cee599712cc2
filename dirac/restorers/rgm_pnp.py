"""RGM as a plug-and-play prior in Douglas–Rachford splitting (SPEC §2 "Inverse problems", Alg. 4; rgm.md §7), in the
model's [−1, 1] scale where the measurement is y' = 2y − A(1):

    x = A⁺ y'
    M times, for j = T′ … 1:
        x̂ = G(ā_j x + noise_factor · σ̄_j ε, z, j)      the iterate pushed to forward level j, then restored
        w = (1 − α) x + α x̂
        u = prox_{λf}(2w − x) = operator.prox_l2(2w − x, y', λ ρ)   f = ½ ρ ‖A x − y'‖², through the operator's SVD
        x = x + (u − w)

and returns x mapped back to [0, 1] (the loop returns x, not w or u). NFE = M · T′.

λ is in the reference's units (rgm.md §7, whose λ = 0.2, 5, 10 the configs copy). The reference measures at the low
resolution: SR ×r is r×r average pooling H (H Hᵀ = I/r², singular value 1/r) and colorization the channel mean
(singular value 1/√C), while this project's A_1 are full-size projectors with singular value 1 (the block means shown
at full size, the grey image in every channel). With y' = A x₀ and y_ref = H x₀, Hᵀ H = ρ Aᵀ A and Hᵀ y_ref = ρ Aᵀ y'
for ρ = 1/r² (SR) and 1/C (colorization), so λ/2 ‖H x − y_ref‖² = λ ρ/2 ‖A x − y'‖² + const: the prox uses the weight
λ ρ and equals the reference's prox at the same λ (`reference_gain`; ρ = 1 for operators the reference does not use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from dirac.degradations.base import Degradation
from dirac.degradations.colorization import Colorization
from dirac.degradations.operators import LinearOperator
from dirac.degradations.superresolution import BlockSuperResolution
from dirac.denoisers.loading import SharedDenoiser
from dirac.precision import autocast_network_only
from dirac.restorers.baseline import BaselineRestorer, measurement_operator, require_svd
from dirac.samplers.step import Step, StepCallback
from dirac.seeding import Generators, gaussian_like

RGM_HINT = ("train one with `python -m dirac.run experiment=cifar10_rgm_kld_d` (32 px; celebahq_rgm_kld_d for 256 px) "
            "and pass its outputs/<experiment>/<time>/checkpoints/rgm.ckpt")


def reference_gain(degradation: Degradation) -> float:
    """ρ = s_ref², the squared singular value of the reference's operator where this project's A_1 has 1 (rgm.md §7):
    1/r² for ×r block-average SR (r×r average pooling), 1/C for colorization (the channel mean), else 1."""
    if isinstance(degradation, BlockSuperResolution):
        return 1.0 / degradation.factor**2
    if isinstance(degradation, Colorization):
        return 1.0 / degradation.channels
    return 1.0


def shared_rgm(source: nn.Module | SharedDenoiser | None) -> SharedDenoiser | None:
    """RGM-PnP's prior (a module or a `load_rgm` partial) as a network loaded once, with the RGM training hint."""
    if source is None or isinstance(source, SharedDenoiser):
        return source
    return SharedDenoiser(source, what="a trained RGM prior", key="its rgm.path (ckpt_path)", hint=RGM_HINT)


@dataclass(frozen=True, eq=False)
class RGMPnP(BaselineRestorer):
    """Alg. 4: Douglas–Rachford splitting with a trained RGM (`rgm`: its module, or a partial of
    `dirac.methods.rgm.load_rgm` loaded once) as the prior and the data term's prox through the operator's SVD;
    `iterations` outer iterations (M) of `t_prime` restorations each, from level T′ down to 1, with the EMA generator
    and z, ε drawn from the per-image generators.

    Tunable: `lam` (the prox weight λ, in the reference's units: the prox uses λ·`reference_gain`, module docstring)
    and `alpha` (the step towards G's restoration). `noise_factor` scales the forward noise (0.99 as the reference);
    `clamp` clips w to [−1, 1] (off by default, as the reference).
    """

    PARAMS: ClassVar[tuple[str, ...]] = ("lam", "alpha")
    METHOD: ClassVar[str] = "RGM-PnP"
    SAMPLES: ClassVar[bool] = True

    rgm: SharedDenoiser | nn.Module | None = None
    lam: float = 10.0
    alpha: float = 0.05
    iterations: int = 40
    t_prime: int = 1
    noise_factor: float = 0.99
    clamp: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "rgm", shared_rgm(self.rgm))
        if int(self.iterations) < 1 or int(self.t_prime) < 1 or not 0 < self.alpha <= 1 or self.lam <= 0:
            raise ValueError(f"RGM-PnP needs iterations >= 1, t_prime >= 1, 0 < alpha <= 1 and lam > 0, got "
                             f"{self.iterations}, {self.t_prime}, {self.alpha}, {self.lam}")
        object.__setattr__(self, "iterations", int(self.iterations))
        object.__setattr__(self, "t_prime", int(self.t_prime))

    @property
    def nfe(self) -> int:
        """One generator call per restoration: M · T′."""
        return self.iterations * self.t_prime

    def prepare(self, degradation: Degradation) -> None:
        """Refuse an operator without an SVD, then load the RGM and refuse one for other images or with fewer than T′
        levels, before any work."""
        super().prepare(degradation)
        if self.rgm is None:
            raise ValueError(f"RGM-PnP needs a trained RGM prior: {RGM_HINT}")
        module = self.rgm.load(self.METHOD)
        shape = (degradation.channels, degradation.image_size, degradation.image_size)
        if tuple(module.sample_shape) != shape:
            raise ValueError(f"the RGM prior makes {tuple(module.sample_shape)} images but the task measures {shape} "
                             "images: use an RGM trained on this data")
        if self.t_prime > module.chain.steps:
            raise ValueError(f"RGM-PnP pushes the iterate to level t_prime={self.t_prime}, but the RGM chain has "
                             f"{module.chain.steps} levels")

    def prox_weight(self, degradation: Degradation) -> float:
        """λ ρ: the weight of ½ ‖A x − y'‖² whose prox is the reference's of λ/2 ‖H x − y_ref‖² (module docstring)."""
        return self.lam * reference_gain(degradation)

    def check_operator(self, degradation: Degradation, operator: LinearOperator) -> None:
        """The data term's prox is taken through the operator's SVD (as DDRM)."""
        require_svd(self.METHOD, degradation, operator, "takes the data term's prox through the operator's SVD")

    @torch.no_grad()
    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """Alg. 4 on y in [0, 1]; each outer iteration's `Step` (x before and after, in [0, 1]) to `callback`."""
        operator = measurement_operator(degradation, y)
        rgm = self.rgm.on(y.device, self.METHOD)
        measured = 2 * y - operator.A(torch.ones_like(y))  # y' = A(2 x0 − 1) in the model's scale
        x = operator.A_pinv(measured)
        latent = y.new_empty(y.shape[0], rgm.nz)
        with autocast_network_only(y.device.type) as under_autocast:
            generate = under_autocast(rgm.generator_ema)
            for index in range(self.iterations):
                before = x
                for level in range(self.t_prime, 0, -1):
                    x = self.split(x, generate, rgm.chain, operator, measured, level, latent, generator)
                if callback is not None:
                    callback(Step(index, self.iterations, None, None, (before + 1) / 2, (x + 1) / 2, (x + 1) / 2))
        return (x + 1) / 2

    def split(self, x: Tensor, generate, chain: nn.Module, operator: LinearOperator, measured: Tensor, level: int,
              latent: Tensor, generator: Generators) -> Tensor:
        """One Douglas–Rachford step with G's restoration from level `level` as the prior's reflection point."""
        k = torch.full((x.shape[0],), level, dtype=torch.long, device=x.device)
        x_level = chain.marginal(x, k, self.noise_factor * gaussian_like(x, generator))
        w = (1 - self.alpha) * x + self.alpha * generate(x_level, gaussian_like(latent, generator), k).float()
        w = w.clamp(-1, 1) if self.clamp else w
        return x + operator.prox_l2(2 * w - x, measured, self.prox_weight(operator.degradation)) - w
