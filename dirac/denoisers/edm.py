"""EDM preconditioning, loss weight and training noise distribution (Karras et al. 2022, Table 1 and eq. 7-8)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dirac.denoisers.base import CENTRED_SCALE, DenoiserModule, from_centred, to_centred


def edm_preconditioning(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) of EDM Table 1: sd^2/(s^2+sd^2), s sd/sqrt(s^2+sd^2), 1/sqrt(s^2+sd^2),
    ln(s)/4."""
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(), sigma.log() / 4


def edm_loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """EDM loss weight lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 (Karras et al. 2022, Table 1),
    same units as sigma."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_edm_sigma(batch: int, p_mean: float = -1.2, p_std: float = 1.2, *, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """Training noise levels ln(sigma) ~ N(P_mean, P_std^2) (Karras et al. 2022, Table 1), `(batch,)`."""
    normal = torch.randn(batch, generator=generator, device=device, dtype=dtype)
    return (p_mean + p_std * normal).exp()


class EDMDenoiser(DenoiserModule):
    """D(x, sigma) = c_skip x + c_out F(c_in x, c_noise) (Karras et al. 2022, eq. 7) around a backbone
    `net(x, noise_label)`.

    Project decision on the data range: the preconditioning works on the centred image 2x - 1 at noise
    level 2 sigma, with `sigma_data` (default 0.5, EDM's value for [-1, 1] data) in those units, and the
    output is mapped back to [0, 1]; inputs, outputs and sigma stay in [0, 1] units. (Equivalently: the
    [0, 1] data with sigma_data / 2, up to the mean shift.) `net` is any module called as
    `net(c_in x, c_noise)` with `c_noise` `(B,)`, e.g. `dirac.nets.NCSNpp`, whose noise embedding takes any
    real label. For training, `loss` (or `sample_sigma` + `loss_weight`) gives the EDM objective.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2) -> None:
        super().__init__()
        if sigma_data <= 0 or p_std <= 0:
            raise ValueError(f"need sigma_data > 0 and p_std > 0, got {sigma_data}, {p_std}")
        self.net = net
        self.sigma_data, self.p_mean, self.p_std = float(sigma_data), float(p_mean), float(p_std)

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """EDM eq. 7 on the centred image, back to [0, 1]."""
        x_m, sigma_m = to_centred(x, sigma)
        c_skip, c_out, c_in, c_noise = (c.to(x.dtype) for c in edm_preconditioning(sigma_m, self.sigma_data))
        out = self.net(c_in[:, None, None, None] * x_m, c_noise).to(x.dtype)
        return from_centred(c_skip[:, None, None, None] * x_m + c_out[:, None, None, None] * out)

    def loss_weight(self, sigma: Tensor) -> Tensor:
        """lambda for a squared error in [0, 1] units at [0, 1] noise levels: 4 lambda(2 sigma),
        so the loss is EDM's."""
        return CENTRED_SCALE**2 * edm_loss_weight(CENTRED_SCALE * sigma, self.sigma_data)

    def sample_sigma(self, batch: int, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """Training noise levels in [0, 1] units: EDM's log-normal levels (for the centred data) divided by 2."""
        return sample_edm_sigma(batch, self.p_mean, self.p_std, generator=generator, device=device,
                                dtype=dtype) / CENTRED_SCALE

    def loss(self, x0: Tensor, sigma: Tensor | None = None, noise: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """Per-image EDM loss lambda(sigma) mean ||D(x0 + sigma n, sigma) - x0||^2 (Karras et al. 2022, eq. 8), `(B,)`.

        `sigma` and `noise` default to fresh draws (log-normal levels, standard normal noise).
        """
        if sigma is None:
            sigma = self.sample_sigma(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        error = (self(x0 + sigma[:, None, None, None] * noise, sigma) - x0).pow(2).flatten(1).mean(dim=1)
        return self.loss_weight(sigma) * error
