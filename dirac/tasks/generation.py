"""The generation task (SPEC §2 "2-D toy", ARCHITECTURE "generation"): draw samples from a method's `sample`
(RGM Alg. 3) and, on the 2-D mixture, report mode coverage — a sample counts for the nearest mode when it lies
within `std_multiple` standard deviations of it (a "high-quality" sample); a mode is covered when it holds at
least `min_fraction` of all samples — with results.md/.csv, mode_counts.csv and a scatter plot."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from matplotlib.figure import Figure
from torch import Tensor

from dirac.methods.base import Method
from dirac.reporting.curves import save_figure
from dirac.reporting.files import csv_text, write_text, written
from dirac.tasks.base import Task


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
    lines = ["| model | modes covered | high-quality | " + " | ".join(modes) + " |", "|---|---|---|" + "---|" * len(modes)]
    lines += [f"| {name} | {row['modes_covered']:.0f} | {row['high_quality']:.3f} | "
              + " | ".join(f"{row[key]:.0f}" for key in modes) + " |" for name, row in results.items()]
    return "\n".join(lines) + f"\n\nNotes: {notes}\n"


class GenerationTask(Task):
    """Judges a generative method by `num_samples` samples drawn with a generator seeded by `seed` (rank independent):
    on toy data (a datamodule with `means()` and `std`) the mode-coverage report, else an error naming what is missing."""

    def __init__(self, num_samples: int = 10_000, seed: int = 0, std_multiple: float = 3.0, min_fraction: float = 0.01,
                 scatter_points: int = 2000, monitor: str = "samples/high_quality") -> None:
        if num_samples < 1 or std_multiple <= 0 or not 0 <= min_fraction < 1:
            raise ValueError(f"task.num_samples >= 1, std_multiple > 0 and 0 <= min_fraction < 1 are required, got "
                             f"{num_samples}, {std_multiple}, {min_fraction}")
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.std_multiple, self.min_fraction = float(std_multiple), float(min_fraction)
        self.scatter_points, self.monitor = int(scatter_points), monitor

    def check(self, method: Method) -> None:
        """The method must offer `sample(count, generator)` (RGM Alg. 3)."""
        if not callable(getattr(method, "sample", None)):
            raise ValueError(f"the generation task needs a method with sample(count, generator); the "
                             f"{method.family or type(method).__name__!r} method has none (use method=rgm)")

    def evaluate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                 output_dir: Path) -> dict[str, dict[str, float]]:
        """Samples → mode coverage → results.md/.csv, mode_counts.csv, scatter.png (written on rank 0)."""
        if not callable(getattr(datamodule, "means", None)) or not hasattr(datamodule, "std"):
            raise ValueError(f"the mode-coverage report needs the 2-D toy data (data=toy2d), got "
                             f"{type(datamodule).__name__}; sample grids and FID for images are not available yet")
        method.eval()
        samples = method.sample(self.num_samples, torch.Generator(next(method.parameters()).device).manual_seed(self.seed)).cpu()
        results = {"samples": mode_coverage(samples, datamodule.means(), datamodule.std, self.std_multiple, self.min_fraction)}
        if trainer.is_global_zero:
            datamodule.setup("test")
            data = datamodule.dataset("test").points[: self.scatter_points]
            paths = self.write(results, samples[: self.scatter_points], data, datamodule, Path(output_dir))
            print(f"\n{paths['results.md'].read_text()}\nwritten to {output_dir}", flush=True)
        return results

    def write(self, results: Mapping[str, Mapping[str, float]], samples: Tensor, data: Tensor,
              datamodule: L.LightningDataModule, directory: Path) -> dict[str, Path]:
        """results.md/.csv (summary and per-mode counts), mode_counts.csv (mode, centre, count) and scatter.png in `directory`."""
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
