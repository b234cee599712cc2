"""The RGM generator G(x_k, z, k) → x̂_0 (SPEC §2; rgm.md §3): DDGAN's NCSN++ with the auxiliary latent z injected
by adaptive group norm in every residual block, a positional embedding of the level k and a tanh output."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dirac.nets.layers import FIR_TAPS, SKIP_SCALE, ResBlock, group_norm, init_weights
from dirac.nets.ncsnpp import NCSNpp


class PixelNorm(nn.Module):
    """z / sqrt(mean(z²) + 1e-8) per sample (StyleGAN's latent normalisation, DDGAN's z path)."""

    def forward(self, z: Tensor) -> Tensor:
        return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class AdaptiveGroupNorm(nn.Module):
    """γ(w) · GroupNorm(h) + β(w): a GroupNorm without affine whose scale and shift come from the style w
    (DDGAN's AdaptiveGroupNorm; the γ bias starts at 1, the β bias at 0)."""

    def __init__(self, channels: int, style_channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(group_norm(channels).num_groups, channels, eps=1e-6, affine=False)
        self.style = nn.Linear(style_channels, 2 * channels)
        init_weights(self.style)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0

    def forward(self, h: Tensor, w: Tensor) -> Tensor:
        gamma, beta = self.style(w)[:, :, None, None].chunk(2, dim=1)
        return gamma * self.norm(h) + beta


class AdaptiveResBlock(ResBlock):
    """The NCSN++ residual block with both GroupNorms adaptive in the style w; `emb` is [level embedding, w]."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, style_channels: int,
                 resample: str = "none", attention: bool = False, dropout: float = 0.0,
                 taps: tuple[float, ...] = FIR_TAPS, adaptive_scale: bool = False) -> None:
        if adaptive_scale:
            raise ValueError("the adaptive-group-norm block shifts by the level embedding only (adaptive_scale=false)")
        super().__init__(in_channels, out_channels, emb_channels, resample, attention, dropout, taps)
        self.emb_channels = emb_channels
        self.norm0 = AdaptiveGroupNorm(in_channels, style_channels)
        self.norm1 = AdaptiveGroupNorm(out_channels, style_channels)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """Residual update of `x` with the level shift from emb[:, :emb_channels] and the style
        emb[:, emb_channels:]."""
        level, w = emb[:, :self.emb_channels], emb[:, self.emb_channels:]
        h = self.conv0(F.silu(self.norm0(x, w)))
        h = F.silu(self.norm1(h + self.affine(level)[:, :, None, None], w))
        h = self.conv1(self.dropout(h))
        return self.attention((h + self.skip(x)) * SKIP_SCALE)


class NCSNppGenerator(NCSNpp):
    """G(x_k, z, k) → x̂_0 in [−1, 1] (rgm.md §3): NCSN++ (residual progressive input, FIR [1,3,3,1], positional
    embedding of k) whose blocks are adaptive in w = MLP(PixelNorm(z)), z ~ N(0, I_nz), with n_mlp + 1 SiLU layers."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, model_channels: int = 128,
                 channel_mult: Sequence[int] = (1, 2, 2, 2), num_blocks: int = 2,
                 attn_resolutions: Sequence[int] = (16,), dropout: float = 0.0, nz: int = 100, z_emb: int = 256,
                 n_mlp: int = 4,
                 resample_filter: Sequence[float] = FIR_TAPS) -> None:
        super().__init__(in_channels, in_channels, image_size, model_channels, channel_mult, num_blocks,
                         attn_resolutions, dropout, embedding="positional", resample_filter=resample_filter,
                         encoder="residual",
                         block_type=partial(AdaptiveResBlock, style_channels=int(z_emb)))
        self.nz, self.sample_shape = int(nz), (int(in_channels), int(image_size), int(image_size))
        layers: list[nn.Module] = [PixelNorm(), nn.Linear(self.nz, z_emb), nn.SiLU()]
        for _ in range(n_mlp):
            layers += [nn.Linear(z_emb, z_emb), nn.SiLU()]
        self.mapping = nn.Sequential(*layers)

    def forward(self, x: Tensor, z: Tensor, k: Tensor) -> Tensor:
        """x̂_0 = tanh(U-Net(x_k; [embed(k), mapping(z)])) for images x `(B, C, H, W)`, z `(B, nz)`, levels k `(B,)`."""
        if tuple(x.shape[1:]) != self.sample_shape or z.shape != (x.shape[0], self.nz):
            raise ValueError(f"the image generator takes (batch, {', '.join(map(str, self.sample_shape))}) images and "
                             f"(batch, {self.nz}) latents, got {tuple(x.shape)} and {tuple(z.shape)}; 2-D points need "
                             "the toy generator (generator=toy)")
        self._check_inputs(x, k)
        return torch.tanh(self.unet(x, torch.cat([self.mlp(self.embed(k)), self.mapping(z)], dim=1)))
