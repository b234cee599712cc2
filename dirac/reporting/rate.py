"""Rate–distortion (bpp vs PSNR) and distortion–perception (PSNR vs LPIPS/FID/SWD) curves of a compression run
(SPEC §3): CSV + PNG and wandb line plots, RCC along the rate for each decoder and along rho at each rate, JPEG as
the classical reference line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure

from dirac.reporting.curves import _label, perception_key, save_figure
from dirac.reporting.files import csv_text, write_text, written

RatePoint = Mapping[str, object]  # method, codec ("rcc" | "jpeg" | "jpeg_matched"), rd_series, dp_series, bpp, psnr, ...
KEYS = ("method", "codec", "rd_series", "dp_series", "bpp", "psnr")


def _checked(rows: Sequence[RatePoint], perception: str | None) -> tuple[list[RatePoint], str]:
    """The rows sorted by bpp, after checking each has the keys a rate point needs, and the perception measure."""
    for row in rows:
        missing = [key for key in KEYS if key not in row]
        if missing:
            raise ValueError(f"each rate point needs {', '.join(KEYS)}; a row lacks {missing}")
    return sorted(rows, key=lambda row: float(row["bpp"])), perception_key(rows, perception)


def series(rows: Sequence[RatePoint], key: str) -> dict[str, list[RatePoint]]:
    """The rows grouped by their `key` series label (rows with an empty label belong to no line), in first-seen order."""
    groups: dict[str, list[RatePoint]] = {}
    for row in rows:
        if row.get(key):
            groups.setdefault(str(row[key]), []).append(row)
    return groups


def _rho_order(point: RatePoint) -> float:
    """A DP line's order along rho; a point without a numeric rho (the MMSE decoder, JPEG) goes last."""
    rho = point.get("rho")
    return float(rho) if isinstance(rho, (int, float)) else float("inf")


def rd_figure(rows: Sequence[RatePoint]) -> Figure:
    """PSNR against bits per pixel (file sizes), one line per RD series (e.g. RCC at each rho, RCC MMSE, JPEG)."""
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.subplots()
    for label, points in series(rows, "rd_series").items():
        style = "s--" if str(points[0]["codec"]).startswith("jpeg") else "o-"
        axes.plot([float(p["bpp"]) for p in points], [float(p["psnr"]) for p in points], style, label=label)
    axes.set(xlabel="bits per pixel (file size)", ylabel=_label("psnr"), title="rate–distortion")
    axes.legend(fontsize=8)
    return figure


def dp_figure(rows: Sequence[RatePoint], perception: str) -> Figure:
    """PSNR against the perception measure, one line per DP series (RCC along rho at one rate), JPEG points apart."""
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.subplots()
    for label, points in series(rows, "dp_series").items():
        style = "s--" if str(points[0]["codec"]).startswith("jpeg") else "o-"
        points = sorted(points, key=_rho_order)
        axes.plot([float(p[perception]) for p in points], [float(p["psnr"]) for p in points], style, label=label)
        for point in points:
            axes.annotate(str(point.get("decoder", "")), (float(point[perception]), float(point["psnr"])), fontsize=7)
    axes.set(xlabel=_label(perception), ylabel=_label("psnr"), title="distortion–perception (lower is better on x)")
    axes.legend(fontsize=8)
    return figure


def write_rate_curves(rows: Sequence[RatePoint], directory: str | Path, perception: str | None = None) -> dict[str, Path]:
    """rd_curve.csv/.png (bpp vs PSNR) and dp_curve.csv/.png (perception vs PSNR) of the rate points in `directory`."""
    rows, perception = _checked(rows, perception)
    columns = list(dict.fromkeys([*KEYS, "decoder", "steps", "rho", *(key for row in rows for key in row)]))
    directory = Path(directory)
    text = csv_text(columns, rows)
    return written(write_text(directory / "rd_curve.csv", text), save_figure(rd_figure(rows), directory / "rd_curve.png"),
                   write_text(directory / "dp_curve.csv", text),
                   save_figure(dp_figure(rows, perception), directory / "dp_curve.png"))


@rank_zero_only
def log_rate_curves(logger: Logger | None, rows: Sequence[RatePoint], perception: str | None = None,
                    key: str = "compression") -> None:
    """Log the rate points as a wandb table with PSNR-vs-bpp and PSNR-vs-perception plots; a no-op unless `logger` is
    a WandbLogger."""
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    rows, perception = _checked(rows, perception)
    columns = ["method", "rd_series", "dp_series", "bpp", "psnr", perception]
    table = wandb.Table(columns=columns, data=[[row[c] if c in ("method", "rd_series", "dp_series") else float(row[c])
                                                for c in columns] for row in rows])
    logger.log_metrics({f"{key}/points": table,
                        f"{key}/psnr_vs_bpp": wandb.plot.scatter(table, "bpp", "psnr", title="rate–distortion"),
                        f"{key}/psnr_vs_{perception}": wandb.plot.scatter(table, perception, "psnr",
                                                                          title="distortion–perception")})
