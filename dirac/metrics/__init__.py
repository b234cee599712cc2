"""Evaluation metrics: distortion, LPIPS/FID from local weights, patch SWD, per-method MetricSuite (SPEC §1.3b)."""

from dirac.metrics.distortion import clip01, data_consistency, mse, psnr, ssim
from dirac.metrics.suite import MetricSuite, PerImageMeans
from dirac.metrics.swd import PatchSWD, patch_swd, patch_swd_per_image, sliced_wasserstein
from dirac.metrics.weights import MissingWeightsError, load_fid, load_inception, load_lpips, weights_dir

__all__ = [
    "MetricSuite", "MissingWeightsError", "PatchSWD", "PerImageMeans", "clip01", "data_consistency", "load_fid",
    "load_inception", "load_lpips", "mse", "patch_swd", "patch_swd_per_image", "psnr", "sliced_wasserstein", "ssim",
    "weights_dir",
]
