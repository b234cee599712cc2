"""The generation task (SPEC §2 "2-D toy", ARCHITECTURE "generation"): draw samples from a method's `sample`
(RGM Alg. 3) and, on the 2-D mixture, report mode coverage — a sample counts for the nearest mode when it lies
within `std_multiple` standard deviations of it (a "high-quality" sample); a mode is covered when it holds at
least `min_fraction` of all samples — with results.md/.csv, mode_counts.csv and a scatter plot. On images: a
sample grid, the unpaired FID against the statistics of the train split (`fid_reference: train`, the paper's
protocol for its CIFAR-10 3.04 / 2.47) or of the test split (`test`), when the Inception weights are present, and
the weight-free patch SWD between samples and test images, in results.md/.csv."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance
from torchvision.utils import make_grid

from dirac.methods.base import Method
from dirac.metrics import MissingWeightsError, load_fid, patch_swd
from dirac.metrics.suite import to_uint8_rgb
from dirac.reporting import log_images, save_png
from dirac.reporting.curves import save_figure
from dirac.reporting.files import csv_text, write_text, written
from dirac.reporting.tables import format_value
from dirac.tasks.base import Task

log = logging.getLogger(__name__)
IMAGE_METRICS = {"fid": "FID", "swd": "patch SWD"}
FID_REFERENCES = ("train", "test")


def mode_coverage(samples: Tensor, means: Tensor, std: float, std_multiple: float = 3.0,
                  min_fraction: float = 0.01) -> dict[str, float]:
    """Modes covered, high-quality fraction (within std_multiple·std of the nearest mode) and per-mode counts."""
    distance, nearest = torch.cdist(samples.float(), means.float()).min(dim=1)
    good = distance <= std_multiple * std
    counts = torch.bincount(nearest[good], minlength=len(means))
    covered = int((counts >= min_fraction * len(samples)).sum())
    return {"modes_covered": float(covered), "high_quality": float(good.float().mean()),
            **{f"mode_{index}": float(count) for index, count in enumerate(counts.tolist())}}


def scatter_figure(samples: Tensor, data: Tensor, means: Tensor, radius: float, title: str) -> Figure:
    """Generated points over data points, with a circle of the counting radius around each mode."""
    figure = Figure(figsize=(5, 5), layout="constrained")
    axes = figure.subplots()
    axes.scatter(data[:, 0], data[:, 1], s=2, c="0.7", label="data")
    axes.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", alpha=0.5, label="samples")
    for centre in means.tolist():
        axes.add_patch(_circle(centre, radius))
    axes.set(aspect="equal", title=title, xlim=(-3.5, 3.5), ylim=(-3.5, 3.5))
    axes.legend(loc="upper right", markerscale=4)
    return figure


def _circle(centre: list[float], radius: float):
    """A red unfilled circle (the high-quality region of one mode)."""
    from matplotlib.patches import Circle

    return Circle(tuple(centre), radius, fill=False, color="tab:red", linewidth=1)


def coverage_table(results: Mapping[str, Mapping[str, float]], notes: str) -> str:
    """A Markdown table: modes covered, high-quality fraction and per-mode counts, one row per model."""
    modes = sorted((key for row in results.values() for key in row if key.startswith("mode_")),
                   key=lambda key: int(key.split("_")[1]))
    modes = list(dict.fromkeys(modes))
    lines = ["| model | modes covered | high-quality | " + " | ".join(modes) + " |",
             "|---|---|---|" + "---|" * len(modes)]
    lines += [f"| {name} | {row['modes_covered']:.0f} | {row['high_quality']:.3f} | "
              + " | ".join(f"{row[key]:.0f}" for key in modes) + " |" for name, row in results.items()]
    return "\n".join(lines) + f"\n\nNotes: {notes}\n"


class SampleScores:
    """Unpaired FID (Inception features of 8-bit images; None without weights) of generated against reference images,
    and the patch SWD between the first `swd_images` of each set (SPEC §2 generation; the weight-free measure);
    `counts` are the images each side of the FID saw."""

    def __init__(self, fid: FrechetInceptionDistance | None, swd_images: int, patches_per_image: int) -> None:
        self.fid, self.swd_images, self.patches_per_image = fid, swd_images, patches_per_image
        self.kept: dict[bool, list[Tensor]] = {True: [], False: []}
        self.counts = {True: 0, False: 0}

    def update(self, images: Tensor, real: bool, fid: bool = True, swd: bool = True) -> None:
        """Add a batch of [0, 1] reference (`real`) or generated images to the FID (`fid`) and the SWD's (`swd`)."""
        if fid:
            if self.fid is not None:
                self.fid.update(to_uint8_rgb(images), real=real)
            self.counts[real] += len(images)
        room = self.swd_images - self.kept_count(real)
        if swd and room > 0:
            self.kept[real].append(images[:room].float().cpu())

    def kept_count(self, real: bool) -> int:
        """How many reference (`real`) or generated images the patch SWD keeps so far (at most `swd_images`)."""
        return sum(len(kept) for kept in self.kept[real])

    def compute(self) -> dict[str, float]:
        """FID (when computed) and patch SWD."""
        row = {"swd": float(patch_swd(torch.cat(self.kept[False]), torch.cat(self.kept[True]),
                                      patches_per_image=self.patches_per_image))}
        return {"fid": float(self.fid.compute()), **row} if self.fid is not None else row


def sample_batches(method: Method, count: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """`count` samples of `method.sample` in batches of at most `batch_size`, all drawn from one `generator`."""
    for start in range(0, count, batch_size):
        yield method.sample(min(batch_size, count - start), generator)


def image_table(results: Mapping[str, Mapping[str, float]], notes: Mapping[str, str]) -> str:
    """A Markdown table of FID and patch SWD, one row per model, followed by the notes."""
    lines = ["| model | " + " | ".join(IMAGE_METRICS.values()) + " |", "|---|" + "---|" * len(IMAGE_METRICS)]
    lines += [f"| {name} | " + " | ".join(format_value(key, row.get(key)) for key in IMAGE_METRICS) + " |"
              for name, row in results.items()]
    return "\n".join(lines) + "\n\nNotes: " + "; ".join(f"{key}: {value}" for key, value in notes.items()) + "\n"


class GenerationTask(Task):
    """Judges a generative method by `num_samples` samples drawn with a generator seeded by `seed` (rank independent):
    on toy data (a datamodule with `means()` and `std`) the mode-coverage report; from an image generator, in batches
    of `batch_size`, a grid of the first `grid_images` samples (samples.png, and wandb), the unpaired FID against the
    statistics of the `fid_reference` split (train: the paper's; test) when `fid` and the Inception weights (in
    `weights_dir`) are present, and the patch SWD between the first `swd_images` samples and test images
    (`swd_patches_per_image` 7x7 patches each). Every rank computes the same report (one seed); rank 0 writes it."""

    def __init__(self, num_samples: int = 10_000, seed: int = 0, std_multiple: float = 3.0, min_fraction: float = 0.01,
                 scatter_points: int = 2000, monitor: str = "samples/high_quality", batch_size: int = 250,
                 grid_images: int = 64, fid: bool = True, weights_dir: str | None = None, swd_images: int = 1000,
                 swd_patches_per_image: int = 64, fid_reference: str = "train") -> None:
        if num_samples < 1 or std_multiple <= 0 or not 0 <= min_fraction < 1:
            raise ValueError(f"task.num_samples >= 1, std_multiple > 0 and 0 <= min_fraction < 1 are required, got "
                             f"{num_samples}, {std_multiple}, {min_fraction}")
        if min(batch_size, grid_images, swd_images, swd_patches_per_image) < 1:
            raise ValueError(f"task.batch_size, grid_images, swd_images and swd_patches_per_image must be >= 1, got "
                             f"{batch_size}, {grid_images}, {swd_images}, {swd_patches_per_image}")
        if fid_reference not in FID_REFERENCES:
            raise ValueError(f"task.fid_reference must be one of {FID_REFERENCES} (the split whose statistics the FID "
                             f"compares the samples with; train is the paper's), got {fid_reference!r}")
        self.fid_reference = fid_reference
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.std_multiple, self.min_fraction = float(std_multiple), float(min_fraction)
        self.scatter_points, self.monitor = int(scatter_points), monitor
        self.batch_size, self.grid_images = int(batch_size), int(grid_images)
        self.fid, self.weights_dir = bool(fid), weights_dir
        self.swd_images, self.swd_patches_per_image = int(swd_images), int(swd_patches_per_image)

    def check(self, method: Method) -> None:
        """The method must offer `sample(count, generator)` (RGM Alg. 3)."""
        if not callable(getattr(method, "sample", None)):
            raise ValueError(f"the generation task needs a method with sample(count, generator); the "
                             f"{method.family or type(method).__name__!r} method has none (use method=rgm)")

    def evaluate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                 output_dir: Path) -> dict[str, dict[str, float]]:
        """The image report for a method that makes `(C, H, W)` samples, else the toy mode-coverage report."""
        if len(getattr(method, "sample_shape", ())) == 3:
            return self.evaluate_images(method, trainer, datamodule, Path(output_dir))
        return self.evaluate_points(method, trainer, datamodule, output_dir)

    def evaluate_points(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                        output_dir: Path) -> dict[str, dict[str, float]]:
        """Samples → mode coverage → results.md/.csv, mode_counts.csv, scatter.png (written on rank 0)."""
        if not callable(getattr(datamodule, "means", None)) or not hasattr(datamodule, "std"):
            raise ValueError(f"the mode-coverage report needs the 2-D toy data (data=toy2d), got "
                             f"{type(datamodule).__name__}")
        method.eval()
        samples = method.sample(self.num_samples,
                                torch.Generator(next(method.parameters()).device).manual_seed(self.seed)).cpu()
        results = {"samples": mode_coverage(samples, datamodule.means(), datamodule.std, self.std_multiple,
                                            self.min_fraction)}
        if trainer.is_global_zero:
            datamodule.setup("test")
            data = datamodule.dataset("test").points[: self.scatter_points]
            paths = self.write(results, samples[: self.scatter_points], data, datamodule, Path(output_dir))
            print(f"\n{paths['results.md'].read_text()}\nwritten to {output_dir}", flush=True)
        return results

    def write(self, results: Mapping[str, Mapping[str, float]], samples: Tensor, data: Tensor,
              datamodule: L.LightningDataModule, directory: Path) -> dict[str, Path]:
        """results.md/.csv (summary and per-mode counts), mode_counts.csv (mode, centre,
        count) and scatter.png in `directory`."""
        row, means = results["samples"], datamodule.means()
        notes = (f"{self.num_samples} samples (seed {self.seed}); high-quality = within {self.std_multiple:g} std "
                 f"({self.std_multiple * datamodule.std:.3g}) of the nearest mode; a mode is covered with ≥ "
                 f"{self.min_fraction:g} of the samples")
        columns = ["model", *row]  # modes_covered, high_quality, mode_0 ...
        counts = [{"mode": index, "x": float(x), "y": float(y), "count": int(row[f"mode_{index}"])}
                  for index, (x, y) in enumerate(means.tolist())]
        radius = self.std_multiple * datamodule.std
        title = f"{row['modes_covered']:.0f}/{len(means)} modes, {100 * row['high_quality']:.1f}% high-quality"
        return written(write_text(directory / "results.md", coverage_table(results, notes)),
                       write_text(directory / "results.csv", csv_text(columns, [{"model": name, **values}
                                                                                 for name, values in results.items()])),
                       write_text(directory / "mode_counts.csv", csv_text(["mode", "x", "y", "count"], counts)),
                       save_figure(scatter_figure(samples, data, means, radius, title), directory / "scatter.png"))

    def evaluate_images(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                        output_dir: Path) -> dict[str, dict[str, float]]:
        """Samples, the reference split and the test split → FID (with weights), patch SWD → samples.png,
        results.md/.csv (rank 0)."""
        method.eval()
        device = next(method.parameters()).device
        scores = SampleScores(self.fid_metric(device), self.swd_images, self.swd_patches_per_image)
        self.add_references(scores, datamodule, tuple(method.sample_shape), device)
        grid: list[Tensor] = []
        for samples in sample_batches(method, self.num_samples, self.batch_size,
                                      torch.Generator(device).manual_seed(self.seed)):
            scores.update(samples, real=False)
            grid.append(samples[: self.grid_images - sum(len(part) for part in grid)].cpu())
        results = {"samples": scores.compute()}
        if trainer.is_global_zero:
            paths = self.write_images(results, torch.cat(grid), scores, trainer, output_dir)
            print(f"\n{paths['results.md'].read_text()}\nwritten to {output_dir}", flush=True)
        return results

    def add_references(self, scores: SampleScores, datamodule: L.LightningDataModule, shape: tuple[int, ...],
                       device: torch.device) -> None:
        """The real side: the FID's from the whole `fid_reference` split (when the FID is computed), the patch SWD's
        from the first `swd_images` test images."""
        fid_split = self.fid_reference if scores.fid is not None else None
        if fid_split == "train":
            for batch in split_images(datamodule, shape, "train"):
                scores.update(batch.to(device), real=True, swd=False)
        for batch in split_images(datamodule, shape, "test"):
            scores.update(batch.to(device), real=True, fid=fid_split == "test")
            if fid_split != "test" and scores.kept_count(True) >= self.swd_images:
                break

    def fid_metric(self, device: torch.device) -> FrechetInceptionDistance | None:
        """The FID accumulator on `device`; None when `fid` is off, or (with a warning) when the weights are missing."""
        if not self.fid:
            return None
        try:
            return load_fid(self.weights_dir).to(device)
        except MissingWeightsError as error:
            log.warning("continuing without FID: %s", error)
            return None

    def write_images(self, results: Mapping[str, Mapping[str, float]], grid: Tensor, scores: SampleScores,
                     trainer: L.Trainer, directory: Path) -> dict[str, Path]:
        """samples.png (also logged to wandb), results.md/.csv with the counts and settings in the notes."""
        image = make_grid(grid, nrow=math.ceil(math.sqrt(len(grid))), padding=2, pad_value=1.0)
        if isinstance(trainer.logger, WandbLogger):
            log_images(trainer.logger, "samples", [image], [f"{len(grid)} of {self.num_samples} samples"])
        counts = (f"{scores.counts[False]} samples (seed {self.seed}) vs the statistics of {scores.counts[True]} "
                  f"{self.fid_reference} images")
        notes = {"FID": f"Inception-v3 pool features on 8-bit images, {counts}" if scores.fid is not None
                 else f"not computed (off, or Inception weights missing; reference: the {self.fid_reference} split)",
                 "patch SWD": f"7x7 patches, 256 projections, {self.swd_patches_per_image} patches of "
                              f"each of the first {scores.kept_count(False)} samples and {scores.kept_count(True)} "
                              "test images",
                 "clipping": "samples and images clipped to [0, 1]"}
        rows = [{"model": name, **{key: repr(value) for key, value in row.items()}} for name, row in results.items()]
        return written(save_png(image, directory / "samples.png"),
                       write_text(directory / "results.md", image_table(results, notes)),
                       write_text(directory / "results.csv", csv_text(["model", *IMAGE_METRICS], rows)))


def split_images(datamodule: L.LightningDataModule, shape: tuple[int, ...], split: str = "test") -> Iterator[Tensor]:
    """The `split` (train or test) loader's `batch["image"]` batches, unaugmented (the train loader's shuffled order
    leaves FID statistics unchanged), refused with a clear error when they are not of the samples' shape."""
    loader = getattr(datamodule, f"{split}_dataloader", None)
    if not callable(loader):
        raise ValueError(f"the image generation report compares samples with a {split} split of images, but "
                         f"{type(datamodule).__name__} has none; use an image data module (e.g. data=cifar10)")
    datamodule.setup("fit" if split == "train" else split)
    for batch in loader():
        images = batch["image"] if isinstance(batch, dict) else batch
        if tuple(images.shape[1:]) != shape:
            raise ValueError(f"the generator makes {shape} images but the {split} split holds "
                             f"{tuple(images.shape[1:])}")
        yield images.float()
