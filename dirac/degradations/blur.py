"""Gaussian blur with a scheduled kernel std (SPEC §1.1, reference/dirac.md §1.1-1.2)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dirac.degradations.operators import SVD, SVDOperator, as_severities
from dirac.degradations.scheduled import ScheduledDegradation
from dirac.degradations.schedules import SeverityMap, default_blur_schedule

STD_FLOOR = 0.01  # px; exp(-1 / (2 * 0.01**2)) underflows to 0 in float32 and float64, so the kernel is an exact delta


class GaussianBlur(ScheduledDegradation):
    """Depthwise separable sampled Gaussian blur with reflect padding, one kernel per sample.

    The severity c is the kernel std in pixels at `reference_size` (the units of the reference
    schedule file, 0.3 -> 3.0); by default c(t) follows that file. Project decision (A_0 must be
    exactly the identity; the paper keeps an imperceptible std of 0.3 at t = 0): the kernel uses the
    effective std `(c - std_min) / (std_max - std_min) * std_max`, the affine rescale of the schedule
    that gives std 0 at t = 0 and exactly std_max at t = 1. Stds below 0.01 px are clamped to 0.01 px,
    where the sampled kernel is an exact delta (no NaN). For other image sizes the kernel size and the
    stds are scaled by `image_size / reference_size` (kernel kept odd, >= 3 and < image_size). The
    kernel is the normalised Gaussian sampled on the whole window (the reference truncates at 6 std,
    which differs by less than 1e-7).
    """

    offsets: Tensor

    def __init__(
        self,
        channels: int,
        image_size: int,
        kernel_size: int = 61,
        std_min: float = 0.3,
        std_max: float = 3.0,
        reference_size: int = 256,
        schedule: SeverityMap | str | Path | None = None,
    ) -> None:
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 3, got {kernel_size}")
        if not 0 <= std_min < std_max:
            raise ValueError(f"need 0 <= std_min < std_max, got {std_min}, {std_max}")
        if reference_size < 1 or image_size < 4:
            raise ValueError(f"need reference_size >= 1 and image_size >= 4, got {reference_size}, {image_size}")
        super().__init__(channels, image_size, std_min, std_max,
                         default_blur_schedule() if schedule is None else schedule)
        self.kernel_size = int(kernel_size)
        self.std_min, self.std_max = float(std_min), float(std_max)
        self.reference_size = int(reference_size)
        self.scale = image_size / reference_size
        size = scaled_kernel_size(kernel_size, self.scale, image_size)
        self.register_buffer("offsets", torch.arange(size, dtype=torch.get_default_dtype()) - size // 2)

    def kernels(self, c: Tensor) -> Tensor:
        """Normalised 1-D kernels `(B, K)` for severities `c` (reference-size stds,
        rescaled so c = std_min is a delta)."""
        std = (c - self.std_min) / (self.std_max - self.std_min) * (self.std_max * self.scale)
        std = std.clamp(min=STD_FLOOR)
        weights = torch.exp(-self.offsets.to(c.dtype) ** 2 / (2 * std[:, None] ** 2))
        return weights / weights.sum(dim=1, keepdim=True)

    def apply_at(self, x: Tensor, c: Tensor) -> Tensor:
        """Blur each sample with its own separable kernel: grouped convs over (1, B*C, H, W), reflect padding."""
        batch, channels, height, width = x.shape
        kernel = self.kernels(c).repeat_interleave(channels, dim=0)
        pad = kernel.shape[1] // 2
        flat = F.pad(x.reshape(1, batch * channels, height, width), (pad, pad, pad, pad), mode="reflect")
        flat = F.conv2d(flat, kernel[:, None, :, None], groups=batch * channels)
        flat = F.conv2d(flat, kernel[:, None, None, :], groups=batch * channels)
        return flat.reshape(batch, channels, height, width)

    def operator(self, t: Tensor | float) -> BlurOperator:
        """A_t at fixed severities with the closed-form adjoint and the separable SVD (SPEC §1.5, DDRM App. D.5)."""
        t = as_severities(t)
        return BlurOperator(self, t, self.kernels(self.schedule(t)))

    def extra_signature(self) -> dict:
        """Kernel size, std range, reference size and schedule knots."""
        return {**super().extra_signature(), "kernel_size": self.kernel_size, "std_min": self.std_min,
                "std_max": self.std_max, "reference_size": self.reference_size}


def scaled_kernel_size(kernel_size: int, scale: float, image_size: int) -> int:
    """`kernel_size * scale` rounded to an odd integer, at least 3 and below `image_size`."""
    size = 2 * round((kernel_size * scale - 1) / 2) + 1
    largest = image_size - 1 if image_size % 2 == 0 else image_size - 2
    return max(3, min(size, largest))


class SeparableSVD(SVD):
    """A X = M X M^T with one 1-D matrix M = u diag(s1) v^T per image, so A = M ⊗ M (DDRM App. D.5, separable blur).

    `u`, `v` are `(B, n, n)` orthogonal factors and `s1` `(B, n)`; the 2-D singular values are s1 s1^T.
    """

    def __init__(self, u: Tensor, s1: Tensor, v: Tensor) -> None:
        super().__init__(s1[:, None, :, None] * s1[:, None, None, :])
        self.u, self.v = u[:, None], v[:, None]

    def V_T(self, x: Tensor) -> Tensor:
        """v^T X v on each image plane."""
        return self.v.mT @ x @ self.v

    def V(self, z: Tensor) -> Tensor:
        """v Z v^T on each image plane."""
        return self.v @ z @ self.v.mT

    def U(self, z: Tensor) -> Tensor:
        """u Z u^T on each image plane."""
        return self.u @ z @ self.u.mT

    def U_T(self, y: Tensor) -> Tensor:
        """u^T Y u on each image plane."""
        return self.u.mT @ y @ self.u


class BlurOperator(SVDOperator):
    """Separable blur with reflect padding and per-image 1-D kernels `(B|1, K)` (GaussianBlur at fixed severities).

    A^T is the correlation's transpose followed by folding the reflected border back onto the image;
    the SVD is the Kronecker product of the 1-D reflect-padded blur matrix with itself (DDRM App. D.5).
    """

    def __init__(self, degradation: GaussianBlur, t: Tensor | float, kernels: Tensor) -> None:
        super().__init__(degradation, t)
        self.kernels = kernels

    def A_adjoint(self, y: Tensor) -> Tensor:
        """A^T y: transposed depthwise convolutions along W then H, then the adjoint of reflect padding."""
        self.severities(y)
        batch, channels, height, width = y.shape
        kernel = self.kernels.expand(batch, -1).repeat_interleave(channels, dim=0)
        flat = y.reshape(1, batch * channels, height, width)
        flat = F.conv_transpose2d(flat, kernel[:, None, None, :], groups=batch * channels)
        flat = F.conv_transpose2d(flat, kernel[:, None, :, None], groups=batch * channels)
        pad = kernel.shape[1] // 2
        flat = reflect_pad_adjoint(reflect_pad_adjoint(flat, pad).mT, pad).mT
        return flat.reshape(batch, channels, height, width)

    def build_svd(self) -> SVD:
        """SVD of the per-image 1-D matrices M (rows and columns share the kernel): A X = M X M^T."""
        u, s1, vh = torch.linalg.svd(blur_matrices(self.kernels, self.degradation.image_size))
        return SeparableSVD(u, s1, vh.mT)


def reflect_pad_adjoint(z: Tensor, pad: int) -> Tensor:
    """Adjoint of reflect padding by `pad` on the last axis: add each mirrored border sample back onto its source."""
    n = z.shape[-1] - 2 * pad
    left, core, right = z[..., :pad].flip(-1), z[..., pad : pad + n], z[..., pad + n :].flip(-1)
    return core + F.pad(left, (1, n - 1 - pad)) + F.pad(right, (n - 1 - pad, 1))


def blur_matrices(kernels: Tensor, size: int) -> Tensor:
    """Per-image `(B, n, n)` matrices of the 1-D reflect-padded correlation with each kernel,
    built from the identity."""
    batch, pad = kernels.shape[0], kernels.shape[1] // 2
    identity = torch.eye(size, dtype=kernels.dtype, device=kernels.device)[:, None, :].expand(size, batch, size)
    responses = F.conv1d(F.pad(identity, (pad, pad), mode="reflect"), kernels[:, None, :], groups=batch)
    return responses.permute(1, 2, 0)
