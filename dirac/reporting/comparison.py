"""The comparison's perception–distortion scatter: every method a point, the early-stopping curve a line (SPEC §1.4)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure

from dirac.reporting.curves import _label, perception_key, save_figure
from dirac.reporting.files import csv_text, write_text, written

Results = Mapping[str, Mapping[str, float]]
Row = Mapping[str, float]


def scatter_points(results: Results) -> list[dict]:
    """One point per method that has a PSNR: {"method", "psnr", and its other metrics}."""
    return [{"method": method, **row} for method, row in results.items() if "psnr" in row]


def scatter_perception(results: Results, curve: Sequence[Row], perception: str | None = None) -> str:
    """The perception measure every method and every curve row has (LPIPS, else FID, else patch SWD)."""
    return perception_key([*scatter_points(results), *curve], perception)


def scatter_figure(results: Results, curve: Sequence[Row], perception: str, curve_label: str | None = None) -> Figure:
    """PSNR against the perception measure: each method a labelled point, the curve rows a line (SPEC §1.4)."""
    figure = Figure(figsize=(7, 5), layout="constrained")
    axes = figure.subplots()
    if curve:
        axes.plot([row[perception] for row in curve], [row["psnr"] for row in curve], "-", color="0.5",
                  marker=".", label=curve_label or "early-stopping curve")
    for index, point in enumerate(scatter_points(results)):
        axes.scatter([point[perception]], [point["psnr"]], color=f"C{index % 10}", zorder=3, label=point["method"])
        axes.annotate(point["method"], (point[perception], point["psnr"]), fontsize=8, xytext=(4, 4),
                      textcoords="offset points")
    axes.set(xlabel=_label(perception) + " (lower is better)", ylabel=_label("psnr") + " (higher is better)",
             title="perception–distortion: methods and the early-stopping curve")
    axes.legend(fontsize=7)
    return figure


def write_pd_scatter(results: Results, curve: Sequence[Row], directory: str | Path, stem: str = "pd_scatter",
                     perception: str | None = None, curve_label: str | None = None) -> dict[str, Path]:
    """Write `<stem>.png` (the scatter) and `<stem>.csv` (method, psnr, perception) into `directory`."""
    perception = scatter_perception(results, curve, perception)
    points = scatter_points(results)
    rows = [{"method": point["method"], "psnr": repr(float(point["psnr"])), perception: repr(float(point[perception]))}
            for point in points]
    directory = Path(directory)
    return written(write_text(directory / f"{stem}.csv", csv_text(["method", "psnr", perception], rows)),
                   save_figure(scatter_figure(results, curve, perception, curve_label), directory / f"{stem}.png"))


@rank_zero_only
def log_pd_scatter(logger: Logger | None, results: Results, curve: Sequence[Row], perception: str | None = None,
                   key: str = "pd_scatter", step: int | None = None) -> None:
    """Log the scatter to wandb: the methods as a scatter plot and the figure (with the curve) as an image.

    A no-op unless `logger` is a WandbLogger.
    """
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    perception = scatter_perception(results, curve, perception)
    table = wandb.Table(columns=["method", perception, "psnr"],
                        data=[[point["method"], float(point[perception]), float(point["psnr"])]
                              for point in scatter_points(results)])
    logger.log_metrics({f"{key}/methods": wandb.plot.scatter(table, perception, "psnr", title="methods"),
                        f"{key}/figure": wandb.Image(figure_image(scatter_figure(results, curve, perception)))},
                       step=step)


def figure_image(figure: Figure):
    """A matplotlib figure rendered to a PIL image (PNG, 120 dpi)."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
