"""Per-image distortion measures on outputs clipped to [0, 1] (SPEC §1.3b "Metrics")."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure


def check_pair(pred: Tensor, target: Tensor) -> None:
    """Raise a ValueError unless `pred` and `target` are `(B, C, H, W)` batches of one shape."""
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must be (B, C, H, W) batches of the same shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )


def clip01(x: Tensor) -> Tensor:
    """Images clipped to [0, 1], the range every metric is computed on (SPEC §1.3b)."""
    return x.clamp(0.0, 1.0)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean squared error over C·H·W of the clipped images, shape `(B,)` (SPEC §1.3b)."""
    check_pair(pred, target)
    return (clip01(pred) - clip01(target)).square().flatten(1).mean(dim=1)


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR in dB, 20·log10(1 / RMSE) over C·H·W of the clipped images, shape `(B,)` (SPEC §1.3b)."""
    return -10.0 * torch.log10(mse(pred, target))


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image SSIM (Gaussian window 11, sigma 1.5, data range 1) of the clipped images, `(B,)` (SPEC §1.3b)."""
    check_pair(pred, target)
    return structural_similarity_index_measure(
        clip01(pred), clip01(target), gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0,
        reduction="none",
    )


def data_consistency(measured_pred: Tensor, y: Tensor) -> Tensor:
    """Per-image data consistency ||A_1(x0_hat) - y|| (SPEC §1.3), given `A_1(x0_hat)` already computed; `(B,)`."""
    if measured_pred.ndim < 2 or measured_pred.shape != y.shape:
        raise ValueError(
            f"A_1(x0_hat) and y must be batches of the same shape, got {tuple(measured_pred.shape)} "
            f"and {tuple(y.shape)}"
        )
    return (measured_pred - y).flatten(1).norm(dim=1)
