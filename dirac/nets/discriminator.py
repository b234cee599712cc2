"""Time-conditioned image discriminators of RGM (SPEC §2 "Priors: KLD"; rgm.md §3): DDGAN's Discriminator_small
(32 px) and _large (256 px) — FIR-downsampling residual blocks shifted by an embedding of the level k, minibatch
stddev, a spatial sum and a linear logit; the last block's output is the feature vector (MMD/DSWD on features)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dirac.nets.layers import FIR_TAPS, SKIP_SCALE, PositionalEmbedding, Resample, conv, init_weights


class DownConvBlock(nn.Module):
    """act → conv3 → + Linear(t) → act → [FIR down] → conv3 (zero init), plus a 1x1 skip of the [downsampled] input."""

    def __init__(self, in_channels: int, out_channels: int, t_channels: int, downsample: bool) -> None:
        super().__init__()
        self.act = nn.LeakyReLU(0.2)
        self.conv0, self.conv1 = conv(in_channels, out_channels, 3), conv(out_channels, out_channels, 3, gain=1e-5)
        self.dense = nn.Linear(t_channels, out_channels)
        init_weights(self.dense)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        init_weights(self.skip)
        self.down = Resample("down", FIR_TAPS) if downsample else nn.Identity()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.act(self.conv0(self.act(x)) + self.dense(t)[:, :, None, None])
        return (self.conv1(self.down(h)) + self.skip(self.down(x))) * SKIP_SCALE


def minibatch_stddev(h: Tensor, group: int = 4) -> Tensor:
    """h with one more channel: the mean over features of the std across groups of gcd(B, group) samples."""
    b, c, height, width = h.shape
    group = math.gcd(b, group)
    std = torch.sqrt(h.view(group, -1, c, height, width).var(0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))
    return torch.cat([h, std.view(1, -1, 1, 1, 1).expand(group, -1, 1, height, width).reshape(b, 1, height, width)], 1)


class TimeDiscriminator(nn.Module):
    """D(x_{k-1}, x_k, k) → `(B,)` logit of level-(k−1) images: a 1x1 stem to 2·ngf channels, one DownConvBlock per
    `channel_mult` entry (ngf·mult channels; the last log2(image_size / final_resolution) halve the resolution),
    minibatch stddev, conv3, spatial sum, linear. `conditional` adds x_k as input channels (DDGAN); the reference's
    RGM D sees (x_{k-1}, k) only. `features` = the last block's output, flattened (ngf·mult[-1]·final_resolution²)."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, ngf: int = 64,
                 channel_mult: Sequence[int] = (2, 4, 8, 8), final_resolution: int = 4, t_emb: int = 256,
                 conditional: bool = False) -> None:
        super().__init__()
        downs = int(math.log2(image_size // final_resolution)) if image_size >= final_resolution else -1
        if downs < 0 or final_resolution << downs != image_size or downs > len(channel_mult):
            raise ValueError(f"discriminator: image_size {image_size} must be final_resolution "
                             f"{final_resolution} times a power of two with at most len(channel_mult) = "
                             f"{len(channel_mult)} halvings")
        self.conditional, self.sample_shape = bool(conditional), (int(in_channels), int(image_size), int(image_size))
        self.embed = nn.Sequential(PositionalEmbedding(t_emb), nn.Linear(t_emb, t_emb), nn.LeakyReLU(0.2),
                                   nn.Linear(t_emb, t_emb), nn.LeakyReLU(0.2))
        self.stem = conv(in_channels * (2 if self.conditional else 1), 2 * ngf, 1)
        widths = [2 * ngf] + [ngf * mult for mult in channel_mult]
        self.blocks = nn.ModuleList(DownConvBlock(widths[i], widths[i + 1], t_emb, i >= len(channel_mult) - downs)
                                    for i in range(len(channel_mult)))
        self.final = nn.Sequential(conv(widths[-1] + 1, widths[-1], 3), nn.LeakyReLU(0.2))
        self.head = nn.Linear(widths[-1], 1)
        init_weights(self.head)
        self.feature_dim = widths[-1] * final_resolution ** 2

    def body(self, x_prev: Tensor, x_k: Tensor, k: Tensor) -> Tensor:
        """The last DownConvBlock's output `(B, ngf·mult[-1], final, final)`."""
        if tuple(x_prev.shape[1:]) != self.sample_shape:
            raise ValueError(f"the image discriminator takes (batch, {', '.join(map(str, self.sample_shape))}) images, "
                             f"got {tuple(x_prev.shape)}; 2-D points need the toy discriminator (discriminator=toy)")
        t = self.embed(k)
        h = self.stem(torch.cat([x_prev, x_k], dim=1) if self.conditional else x_prev)
        for block in self.blocks:
            h = block(h, t)
        return h

    def features(self, x_prev: Tensor, x_k: Tensor, k: Tensor) -> Tensor:
        """The `(B, feature_dim)` flattened last-block features (what MMD/DSWD compare when `on_features`)."""
        return self.body(x_prev, x_k, k).flatten(1)

    def forward(self, x_prev: Tensor, x_k: Tensor, k: Tensor) -> Tensor:
        """The `(B,)` logit: minibatch stddev, conv3, LeakyReLU, spatial sum, linear."""
        return self.head(self.final(minibatch_stddev(self.body(x_prev, x_k, k))).sum(dim=(2, 3))).squeeze(1)
