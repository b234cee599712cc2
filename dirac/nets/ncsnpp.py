"""The NCSN++ / DDPM++ U-Net of Song et al. (2021) that the Dirac network Phi is built on (SPEC §1.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from dirac.nets.layers import SKIP_SCALE, FourierEmbedding, PositionalEmbedding, ResBlock, conv, group_norm, init_weights


def _check_arguments(in_channels: int, out_channels: int, image_size: int, model_channels: int,
                     channel_mult: Sequence[int], num_blocks: int, attn_resolutions: Sequence[int], dropout: float,
                     embedding: str, encoder: str) -> None:
    """Raise a ValueError naming the first construction argument that cannot build a U-Net."""
    sizes = {"in_channels": in_channels, "out_channels": out_channels, "image_size": image_size,
             "model_channels": model_channels, "num_blocks": num_blocks}
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if not channel_mult or min(channel_mult) < 1:
        raise ValueError(f"channel_mult must be a non-empty list of positive integers, got {list(channel_mult)}")
    factor = 2 ** (len(channel_mult) - 1)
    if image_size % factor:
        raise ValueError(f"image_size {image_size} must be divisible by {factor} = 2**(len(channel_mult) - 1)")
    resolutions = [image_size >> level for level in range(len(channel_mult))]
    missing = sorted(set(attn_resolutions) - set(resolutions))
    if missing:
        raise ValueError(f"attn_resolutions {missing} do not exist; this U-Net has resolutions {resolutions}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if embedding not in ("fourier", "positional"):
        raise ValueError(f"embedding must be 'fourier' or 'positional', got {embedding!r}")
    if encoder not in ("standard", "residual"):
        raise ValueError(f"encoder must be 'standard' or 'residual', got {encoder!r}")


class NCSNpp(nn.Module):
    """NCSN++ U-Net `F(x, sigma)`: noise embedding, residual encoder/decoder with skips, attention (SPEC §1.2).

    Fourier (or sinusoidal) features of the raw noise level `sigma` (width 2*model_channels) feed a
    two-layer SiLU MLP (width 4*model_channels) whose output shifts the features of every residual
    block (NCSN++; with `adaptive_scale`, scales and shifts them as in ADM).
    Level `l` works at `image_size / 2**l` with `model_channels * channel_mult[l]` channels and
    `num_blocks` residual blocks; levels are joined by FIR-resampling residual blocks. The "residual"
    encoder also feeds a FIR-downsampled input pyramid into every level (progressive input). The
    bottleneck always attends; other levels attend when their resolution is in `attn_resolutions`.
    """

    def __init__(self, in_channels: int, out_channels: int, image_size: int, model_channels: int = 128,
                 channel_mult: Sequence[int] = (1, 1, 2, 2, 2, 2, 2), num_blocks: int = 2,
                 attn_resolutions: Sequence[int] = (16,), dropout: float = 0.1,
                 embedding: Literal["fourier", "positional"] = "fourier", fourier_scale: float = 16.0,
                 resample_filter: Sequence[float] = (1, 3, 3, 1),
                 encoder: Literal["standard", "residual"] = "residual", adaptive_scale: bool = False) -> None:
        super().__init__()
        channel_mult, attn_resolutions, taps = tuple(channel_mult), set(attn_resolutions), tuple(resample_filter)
        _check_arguments(in_channels, out_channels, image_size, model_channels, channel_mult, num_blocks,
                         attn_resolutions, dropout, embedding, encoder)
        self.in_channels, self.out_channels, self.image_size = in_channels, out_channels, image_size
        self.levels = len(channel_mult)
        emb = 4 * model_channels
        self.embed = (FourierEmbedding(2 * model_channels, fourier_scale) if embedding == "fourier"
                      else PositionalEmbedding(2 * model_channels))
        self.mlp = nn.Sequential(nn.Linear(2 * model_channels, emb), nn.SiLU(), nn.Linear(emb, emb), nn.SiLU())
        for layer in self.mlp[::2]:
            init_weights(layer)

        def block(cin: int, cout: int, resample: str = "none", attention: bool = False) -> ResBlock:
            return ResBlock(cin, cout, emb, resample, attention, dropout, taps, adaptive_scale)

        self.stem = conv(in_channels, model_channels, 3)
        self.down, self.pyramid, self.encoder = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        channels, pyramid_channels, skips = model_channels, in_channels, [model_channels]
        for level, mult in enumerate(channel_mult):
            if level:
                self.down.append(block(channels, channels, "down"))
                if encoder == "residual":
                    self.pyramid.append(conv(pyramid_channels, channels, 3, "down", taps))
                    pyramid_channels = channels
                skips.append(channels)
            attention = image_size >> level in attn_resolutions
            stage = nn.ModuleList()
            for _ in range(num_blocks):
                stage.append(block(channels, model_channels * mult, attention=attention))
                channels = model_channels * mult
                skips.append(channels)
            self.encoder.append(stage)

        self.bottleneck = nn.ModuleList([block(channels, channels, attention=True), block(channels, channels)])

        self.up, self.decoder = nn.ModuleList(), nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            if level < self.levels - 1:
                self.up.append(block(channels, channels, "up"))
            attention = image_size >> level in attn_resolutions
            stage = nn.ModuleList()
            for index in range(num_blocks + 1):
                stage.append(block(channels + skips.pop(), model_channels * mult,
                                   attention=attention and index == num_blocks))
                channels = model_channels * mult
            self.decoder.append(stage)
        self.head = nn.Sequential(group_norm(channels), nn.SiLU(), conv(channels, out_channels, 3, gain=1e-5))

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """F(x, sigma) for images `x` (B, in_channels, H, W) and noise levels `sigma` (B,) -> (B, out_channels, H, W)."""
        self._check_inputs(x, sigma)
        emb = self.mlp(self.embed(sigma))
        h = self.stem(x)
        skips, pyramid = [h], x
        for level, stage in enumerate(self.encoder):
            if level:
                h = self.down[level - 1](h, emb)
                if self.pyramid:
                    h = pyramid = (h + self.pyramid[level - 1](pyramid)) * SKIP_SCALE
                skips.append(h)
            for layer in stage:
                h = layer(h, emb)
                skips.append(h)
        for layer in self.bottleneck:
            h = layer(h, emb)
        for index, stage in enumerate(self.decoder):
            if index:
                h = self.up[index - 1](h, emb)
            for layer in stage:
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
        return self.head(h)

    def _check_inputs(self, x: Tensor, sigma: Tensor) -> None:
        """Raise a ValueError when `x` is not a (B, in_channels, H, W) batch the U-Net can halve, or sigma not (B,)."""
        factor = 2 ** (self.levels - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"expected images of shape (B, {self.in_channels}, H, W) with H and W divisible by "
                             f"{factor}, got {tuple(x.shape)}")
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
