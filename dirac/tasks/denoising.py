"""The denoising task: PSNR of D(x0 + sigma z, sigma) against the noisy input's at fixed noise levels, as a table
and a curve of PSNR against sigma (VE convention, [0, 1] units; SPEC §3–4, ARCHITECTURE "Denoiser")."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from torch import Tensor, nn

from dirac.methods.base import Method
from dirac.metrics import PerImageMeans, clip01, mse, psnr, ssim
from dirac.precision import autocast_network_only
from dirac.reporting import log_images, write_results
from dirac.reporting.curves import save_figure
from dirac.reporting.files import csv_text, write_text, written
from dirac.seeding import image_generators, per_image_normal
from dirac.tasks.base import Task

MEASURES = ("psnr", "ssim", "mse", "psnr_noisy", "ssim_noisy", "mse_noisy")
CURVE_COLUMNS = ("sigma", "psnr_noisy", "psnr", "psnr_gain")


def sigma_row(sigma: float) -> str:
    """The results row of noise level sigma, e.g. `sigma=0.1`."""
    return f"sigma={sigma:g}"


def noise_generators(seed: int, sigma: float, names: Sequence[str],
                     device: torch.device | str) -> list[torch.Generator]:
    """Per-image generators of the test noise at level sigma, seeded by (seed, sigma, image name)
    (batch independent)."""
    return image_generators(seed, names, f"denoising/{sigma:g}", device)


class DenoisingTask(Task):
    """Judges a method's denoiser D(x, sigma): for each sigma of `sigmas`, x = x0 + sigma z with z seeded per image by
    (seed, sigma, image name), and PSNR/SSIM/MSE of D(x, sigma) beside those of x itself (both clipped to [0, 1],
    so the noisy baseline already gets the free gain of clipping).

    Results: one row per noise level (`sigma=<value>`) with the denoised `psnr`, `ssim`, `mse`, the noisy input's
    `psnr_noisy`, `ssim_noisy`, `mse_noisy` and `psnr_gain` = psnr - psnr_noisy; written to results.md/.csv, and
    the curve PSNR against sigma (noisy and denoised) to denoising_curve.csv/.png and wandb.
    """

    def __init__(self, sigmas: Sequence[float] = (0.05, 0.1, 0.2, 0.5, 1.0), seed: int = 0,
                 monitor: str = "sigma=0.1/psnr", preview_sigma: float | None = 0.1, preview_images: int = 4) -> None:
        values = [float(sigma) for sigma in sigmas]
        if not values or not all(math.isfinite(sigma) and sigma > 0 for sigma in values):
            raise ValueError(f"task.sigmas must be a non-empty list of finite noise levels > 0, got {list(sigmas)}")
        if len({sigma_row(sigma) for sigma in values}) != len(values):
            raise ValueError(f"task.sigmas has repeated noise levels: {values}")
        self.sigmas = sorted(values)
        self.seed = int(seed)
        self.monitor = monitor
        if preview_sigma is not None and not (math.isfinite(preview_sigma) and preview_sigma > 0):
            raise ValueError(f"task.preview_sigma must be a noise level > 0 or null, got {preview_sigma}")
        self.preview_sigma = None if preview_sigma is None else float(preview_sigma)
        self.preview_images = int(preview_images)

    def check(self, method: Method) -> None:
        """The method must expose a denoiser D(x, sigma) as its `denoiser` attribute (an nn.Module)."""
        if not isinstance(getattr(method, "denoiser", None), nn.Module):
            raise ValueError(f"the denoising task needs a method with a denoiser D(x, sigma) (a `denoiser` module), "
                             f"but the {method.family or type(method).__name__!r} method has none; use "
                             "method=denoiser, or judge this method with its own task (e.g. task=restoration)")

    def fit_callbacks(self, method: Method) -> list[L.Callback]:
        """The denoising preview at `preview_sigma`, logged at each validation during training."""
        if self.preview_sigma is None or self.preview_images <= 0:
            return []
        return [DenoisingPreview(self, self.preview_sigma, self.preview_images)]

    def noisy(self, x0: Tensor, sigma: float, names: Sequence[str]) -> Tensor:
        """x = x0 + sigma z (VE), image b's z from the generator of (seed, sigma, names[b])."""
        z = per_image_normal(x0.shape, noise_generators(self.seed, sigma, names, x0.device), x0.device, torch.float32)
        return x0.float() + sigma * z

    def evaluate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                 output_dir: Path) -> dict[str, dict[str, float]]:
        """Denoised vs noisy PSNR/SSIM/MSE at every sigma on the test split:
        results.md/.csv and the PSNR-sigma curve."""
        evaluation = DenoisingEvaluation(self, method, output_dir)
        trainer.test(evaluation, datamodule=datamodule, verbose=False)
        return evaluation.results


class DenoisingEvaluation(L.LightningModule):
    """The test loop of the denoising task (runs under the run's Trainer: devices, DDP, precision, loggers)."""

    def __init__(self, task: DenoisingTask, method: Method, output_dir: Path) -> None:
        super().__init__()
        self.task = task
        self.denoiser = method.denoiser  # a submodule, so Lightning moves it to the device
        self.output_dir = Path(output_dir)
        self.means = nn.ModuleList(PerImageMeans(MEASURES) for _ in task.sigmas)  # summed over DDP ranks
        self.results: dict[str, dict[str, float]] = {}

    def on_test_epoch_start(self) -> None:
        for means in self.means:
            means.reset()
        self.denoiser.eval()

    @torch.no_grad()
    def test_step(self, batch: dict, batch_idx: int) -> None:
        """D(x, sigma) and x itself against x0 at every sigma, per image, into the accumulators."""
        x0, names = batch["image"].float(), list(batch["name"])
        for sigma, means in zip(self.task.sigmas, self.means):
            x = self.task.noisy(x0, sigma, names)
            with autocast_network_only(x0.device.type) as under_autocast:
                denoised = under_autocast(self.denoiser)(x, x.new_full((x.shape[0],), sigma))
            means.update(per_image_measures(denoised, x, x0))

    def on_test_epoch_end(self) -> None:
        self.results = results_of(self.task.sigmas, [means.compute() for means in self.means])
        for row, values in self.results.items():
            for metric, value in values.items():
                self.log(f"test/{row}/{metric}", value, rank_zero_only=True)
        if self.trainer.is_global_zero:
            paths = write_denoising_results(self.results, self.task.sigmas, self.output_dir)
            for logger in self.loggers:
                log_denoising_curve(logger, curve_rows(self.results, self.task.sigmas))
            print(f"\n{paths['results.md'].read_text()}\nwritten to {self.output_dir}", flush=True)


class DenoisingPreview(L.Callback):
    """During training, at each validation: the first validation images noised at sigma (seeded per image), their
    PSNR and that of D(x, sigma) (`val/psnr_noisy`, `val/psnr_denoised`) and the images (`val/denoising`) logged."""

    def __init__(self, task: DenoisingTask, sigma: float, images: int) -> None:
        self.task, self.sigma, self.images = task, sigma, images

    @torch.no_grad()
    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch: dict,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not isinstance(getattr(pl_module, "denoiser", None), nn.Module):
            return
        x0, names = batch["image"][: self.images].float(), list(batch["name"][: self.images])
        x = self.task.noisy(x0, self.sigma, names)
        with autocast_network_only(x0.device.type) as under_autocast:
            denoised = under_autocast(pl_module.denoiser)(x, x.new_full((x.shape[0],), self.sigma))
        values = per_image_measures(denoised, x, x0)
        pl_module.log("val/psnr_noisy", values["psnr_noisy"].mean(), sync_dist=True, batch_size=len(names))
        pl_module.log("val/psnr_denoised", values["psnr"].mean(), sync_dist=True, batch_size=len(names))
        if trainer.is_global_zero and pl_module.logger is not None:
            log_images(pl_module.logger, "val/denoising", [x0, x, denoised],
                       ["ground truth", f"noisy σ={self.sigma:g}", "denoised"], step=pl_module.global_step)


def per_image_measures(denoised: Tensor, noisy: Tensor, x0: Tensor) -> dict[str, Tensor]:
    """Per-image PSNR/SSIM/MSE (SPEC §1.3b, clipped to [0, 1]) of the denoised and of the noisy images, `(B,)` each."""
    target, values = clip01(x0), {}
    for suffix, image in (("", clip01(denoised.float())), ("_noisy", clip01(noisy))):
        values.update({f"psnr{suffix}": psnr(image, target), f"ssim{suffix}": ssim(image, target),
                       f"mse{suffix}": mse(image, target)})
    return values


def results_of(sigmas: Sequence[float], computed: Sequence[tuple[Tensor, Tensor]]) -> dict[str, dict[str, float]]:
    """Rows `sigma=<value>` of the accumulated means, with psnr_gain = psnr - psnr_noisy."""
    results = {}
    for sigma, (means, _) in zip(sigmas, computed):
        row = {name: float(means[index]) for index, name in enumerate(MEASURES)}
        results[sigma_row(sigma)] = {**row, "psnr_gain": row["psnr"] - row["psnr_noisy"]}
    return results


def curve_rows(results: Mapping[str, Mapping[str, float]], sigmas: Sequence[float]) -> list[dict[str, float]]:
    """The curve points (sigma, psnr_noisy, psnr, psnr_gain), sorted by sigma."""
    return [{"sigma": sigma, **{key: results[sigma_row(sigma)][key] for key in CURVE_COLUMNS[1:]}}
            for sigma in sorted(sigmas)]


def denoising_figure(rows: Sequence[Mapping[str, float]]) -> Figure:
    """PSNR of the denoised and of the noisy images against sigma (log axis)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    sigmas = [row["sigma"] for row in rows]
    axes.plot(sigmas, [row["psnr"] for row in rows], "o-", label="denoised D(x, σ)")
    axes.plot(sigmas, [row["psnr_noisy"] for row in rows], "s--", label="noisy x = x0 + σ z")
    axes.set(xscale="log", xlabel="σ ([0, 1] units)", ylabel="PSNR (dB)", title="denoising PSNR against σ")
    axes.legend()
    return figure


def write_denoising_results(results: Mapping[str, Mapping[str, float]], sigmas: Sequence[float],
                            directory: str | Path) -> dict[str, Path]:
    """results.md/.csv (one row per sigma) and denoising_curve.csv/.png (PSNR against sigma) in `directory`."""
    directory = Path(directory)
    notes = {"clipping": "denoised and noisy images and targets clipped to [0, 1]", "lpips_net": "off",
             "noise": "x = x0 + σ z, z seeded per image by (seed, σ, image name)",
             "columns": "psnr/ssim/mse of D(x, σ); *_noisy of x; psnr_gain = psnr − psnr_noisy"}
    rows = curve_rows(results, sigmas)
    paths = write_results(results, directory, stem="results", notes=notes)
    paths.update(written(write_text(directory / "denoising_curve.csv", csv_text(list(CURVE_COLUMNS), rows)),
                         save_figure(denoising_figure(rows), directory / "denoising_curve.png")))
    return paths


@rank_zero_only
def log_denoising_curve(logger: Logger | None, rows: Sequence[Mapping[str, float]],
                        key: str = "denoising_curve") -> None:
    """Log PSNR (denoised and noisy) against sigma as a wandb line plot; a no-op unless `logger` is a WandbLogger."""
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    xs = [float(row["sigma"]) for row in rows]
    ys = [[float(row["psnr"]) for row in rows], [float(row["psnr_noisy"]) for row in rows]]
    logger.log_metrics({f"{key}/psnr_vs_sigma": wandb.plot.line_series(
        xs, ys, keys=["denoised", "noisy"], title="denoising PSNR vs sigma", xname="sigma")})
