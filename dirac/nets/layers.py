"""Building blocks of the NCSN++ / DDPM++ U-Net (SPEC §1.2; Song et al. 2021, App. H)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SKIP_SCALE = math.sqrt(0.5)
Resampling = Literal["none", "up", "down"]
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def init_weights(module: nn.Linear | nn.Conv2d, gain: float = 1.0) -> None:
    """Xavier-uniform weights scaled by `gain` and zero bias (NCSN++ init, SPEC §1.2; gain ~0 zeroes output layers)."""
    nn.init.xavier_uniform_(module.weight, gain=gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def group_norm(channels: int, eps: float = 1e-6) -> nn.GroupNorm:
    """GroupNorm with at most 32 groups of at least 4 channels each, dividing `channels` (SPEC §1.2)."""
    groups = max(g for g in range(1, min(32, max(1, channels // 4)) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=eps)


class SinusoidalEmbedding(nn.Module):
    """Features `[cos(sigma * freqs), sin(sigma * freqs)]` of a noise level, fixed `freqs` (SPEC §1.2)."""

    def __init__(self, freqs: Tensor) -> None:
        super().__init__()
        self.register_buffer("freqs", freqs)

    def forward(self, sigma: Tensor) -> Tensor:
        """Embed a `(B,)` tensor of noise levels as `(B, 2 * len(freqs))` features (computed in float32)."""
        phase = sigma.float().outer(self.freqs)
        return torch.cat([phase.cos(), phase.sin()], dim=1)


class FourierEmbedding(SinusoidalEmbedding):
    """Random Fourier features with frequencies `2 pi f`, f ~ N(0, scale^2) (NCSN++, Song et al. 2021; SPEC §1.2)."""

    def __init__(self, channels: int, scale: float = 16.0) -> None:
        if channels % 2:
            raise ValueError(f"Fourier embedding width must be even, got {channels}")
        super().__init__(2 * math.pi * scale * torch.randn(channels // 2))


class PositionalEmbedding(SinusoidalEmbedding):
    """Transformer sinusoidal features, frequencies 1 .. 1/max_positions (DDPM++, SPEC §1.2; for inputs ~1-1000)."""

    def __init__(self, channels: int, max_positions: int = 10000) -> None:
        if channels % 2 or channels < 4:
            raise ValueError(f"positional embedding width must be even and at least 4, got {channels}")
        half = channels // 2
        super().__init__(max_positions ** (-torch.arange(half, dtype=torch.float32) / (half - 1)))


class Resample(nn.Module):
    """Factor-2 FIR up/down sampling with a separable filter preserving constants (NCSN++ [1,3,3,1], SPEC §1.2)."""

    def __init__(self, mode: Literal["up", "down"], taps: tuple[float, ...] = FIR_TAPS) -> None:
        super().__init__()
        if len(taps) % 2 or sum(taps) <= 0:
            raise ValueError(f"resample_filter needs an even number of taps with a positive sum, got {tuple(taps)}")
        f = torch.as_tensor(taps, dtype=torch.float32)
        kernel = f.outer(f) / f.sum() ** 2
        self.mode = mode
        self.padding = (len(taps) - 1) // 2
        self.register_buffer("kernel", (4 * kernel if mode == "up" else kernel)[None, None])

    def forward(self, x: Tensor) -> Tensor:
        """Filter every channel with the FIR kernel and halve (down) or double (up) H and W."""
        channels = x.shape[1]
        kernel = self.kernel.expand(channels, 1, *self.kernel.shape[-2:])
        if self.mode == "up":
            return F.conv_transpose2d(x, kernel, stride=2, padding=self.padding, groups=channels)
        return F.conv2d(x, kernel, stride=2, padding=self.padding, groups=channels)


def conv(in_channels: int, out_channels: int, kernel: int, resample: Resampling = "none",
         taps: tuple[float, ...] = FIR_TAPS, gain: float = 1.0) -> nn.Module:
    """A 'same'-padded convolution, preceded by FIR resampling when `resample` is 'up' or 'down' (SPEC §1.2)."""
    layer = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
    init_weights(layer, gain)
    return layer if resample == "none" else nn.Sequential(Resample(resample, taps), layer)


class SelfAttention(nn.Module):
    """Single-head spatial self-attention with a residual connection, scaled by sqrt(1/2) (NCSN++, SPEC §1.2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = conv(channels, 3 * channels, 1, gain=math.sqrt(0.2))
        self.proj = conv(channels, channels, 1, gain=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        """x + Attn(GroupNorm(x)), each pixel attending to every pixel of the same image."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, 1, c, h * w).transpose(-1, -2).unbind(1)
        attended = F.scaled_dot_product_attention(q, k, v)
        return (x + self.proj(attended.transpose(-1, -2).reshape(b, c, h, w))) * SKIP_SCALE


class ResBlock(nn.Module):
    """NCSN++ residual block: GN-SiLU-conv, embedding shift (or scale/shift), GN-SiLU-dropout-conv, skip (§1.2).

    The embedding enters as a per-channel shift added before the second GroupNorm (NCSN++, Song et al.
    2021), or with `adaptive_scale` as a scale and shift applied after it (ADM, Dhariwal & Nichol 2021).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, resample: Resampling = "none",
                 attention: bool = False, dropout: float = 0.0, taps: tuple[float, ...] = FIR_TAPS,
                 adaptive_scale: bool = False) -> None:
        super().__init__()
        self.adaptive_scale = adaptive_scale
        self.norm0 = group_norm(in_channels)
        self.conv0 = conv(in_channels, out_channels, 3, resample, taps)
        self.affine = nn.Linear(emb_channels, (2 if adaptive_scale else 1) * out_channels)
        init_weights(self.affine)
        self.norm1 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = conv(out_channels, out_channels, 3, gain=1e-5)
        reshape = in_channels != out_channels or resample != "none"
        self.skip = conv(in_channels, out_channels, 1, resample, taps) if reshape else nn.Identity()
        self.attention = SelfAttention(out_channels) if attention else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """Residual update of `x` (B, in, H, W) conditioned on the embedding `emb` (B, emb_channels)."""
        h = self.conv0(F.silu(self.norm0(x)))
        params = self.affine(emb)[:, :, None, None]
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            h = F.silu(self.norm1(h) * (scale + 1) + shift)
        else:
            h = F.silu(self.norm1(h + params))
        h = self.conv1(self.dropout(h))
        return self.attention((h + self.skip(x)) * SKIP_SCALE)
