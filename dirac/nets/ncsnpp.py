"""The NCSN++ / DDPM++ U-Net of Song et al. (2021) that the Dirac network Phi is built on (SPEC §1.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from dirac.nets.layers import (FIR_TAPS, SKIP_SCALE, FourierEmbedding, PositionalEmbedding, ResBlock, conv, group_norm,
                               init_weights)


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
    block (NCSN++; with `adaptive_scale`, scales and shifts them as in ADM). `block_type` builds the residual
    blocks (the RGM generator's take a latent style as well).
    Level `l` works at `image_size / 2**l` with `model_channels * channel_mult[l]` channels and
    `num_blocks` residual blocks; levels are joined by FIR-resampling residual blocks. The "residual"
    encoder also feeds a FIR-downsampled input pyramid into every level (progressive input). The
    bottleneck always attends; other levels attend when their resolution is in `attn_resolutions`.
    """

    def __init__(self, in_channels: int, out_channels: int, image_size: int, model_channels: int = 128,
                 channel_mult: Sequence[int] = (1, 1, 2, 2, 2, 2, 2), num_blocks: int = 2,
                 attn_resolutions: Sequence[int] = (16,), dropout: float = 0.1,
                 embedding: Literal["fourier", "positional"] = "fourier", fourier_scale: float = 16.0,
                 resample_filter: Sequence[float] = FIR_TAPS,
                 encoder: Literal["standard", "residual"] = "residual", adaptive_scale: bool = False,
                 block_type: Callable[..., ResBlock] = ResBlock) -> None:
        super().__init__()
        channel_mult = tuple(channel_mult)
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
        taps = tuple(resample_filter)
        block = partial(block_type, emb_channels=emb, dropout=dropout, taps=taps, adaptive_scale=adaptive_scale)
        widths = [model_channels * mult for mult in channel_mult]
        attends = [image_size >> level in set(attn_resolutions) for level in range(self.levels)]
        self.stem = conv(in_channels, model_channels, 3)
        pyramid_channels = in_channels if encoder == "residual" else 0
        skips = self._build_encoder(block, widths, attends, num_blocks, pyramid_channels, taps)
        self.bottleneck = nn.ModuleList([block(widths[-1], widths[-1], attention=True), block(widths[-1], widths[-1])])
        self._build_decoder(block, widths, attends, num_blocks, skips)
        self.head = nn.Sequential(group_norm(widths[0]), nn.SiLU(), conv(widths[0], out_channels, 3, gain=1e-5))

    def _build_encoder(self, block: Callable[..., ResBlock], widths: list[int], attends: list[bool],
                       num_blocks: int, pyramid_channels: int, taps: tuple[float, ...]) -> list[int]:
        """Create encoder stages, down blocks and (if pyramid_channels > 0) the input pyramid; return skip widths."""
        self.down, self.pyramid, self.encoder = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        channels = self.stem.out_channels
        skips = [channels]
        for level, (width, attention) in enumerate(zip(widths, attends)):
            if level:
                self.down.append(block(channels, channels, resample="down"))
                if pyramid_channels:
                    self.pyramid.append(conv(pyramid_channels, channels, 3, "down", taps))
                    pyramid_channels = channels
                skips.append(channels)
            self.encoder.append(nn.ModuleList())
            for _ in range(num_blocks):
                self.encoder[-1].append(block(channels, width, attention=attention))
                channels = width
                skips.append(channels)
        return skips

    def _build_decoder(self, block: Callable[..., ResBlock], widths: list[int], attends: list[bool],
                       num_blocks: int, skips: list[int]) -> None:
        """Create the decoder stages (one block more than the encoder, attention on the last) and the up blocks."""
        self.up, self.decoder = nn.ModuleList(), nn.ModuleList()
        channels = widths[-1]
        for level in reversed(range(self.levels)):
            if level < self.levels - 1:
                self.up.append(block(channels, channels, resample="up"))
            self.decoder.append(nn.ModuleList())
            for index in range(num_blocks + 1):
                attention = attends[level] and index == num_blocks
                self.decoder[-1].append(block(channels + skips.pop(), widths[level], attention=attention))
                channels = widths[level]

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """F(x, sigma) (SPEC §1.2) for images `x` (B, in_channels, H, W) and noise levels `sigma` (B,)."""
        self._check_inputs(x, sigma)
        return self.unet(x, self.mlp(self.embed(sigma)))

    def unet(self, x: Tensor, emb: Tensor) -> Tensor:
        """The encoder/decoder with skips on `x`, every residual block conditioned on the embedding `emb`."""
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
