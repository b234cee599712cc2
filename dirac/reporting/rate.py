"""Rate–distortion (bpp vs PSNR) and distortion–perception (PSNR vs LPIPS/FID/SWD) curves of a compression run
(SPEC §3): CSV + PNG (one panel per image set) and wandb plots, RCC along the rate for each decoder and along rho at
each rate, JPEG and WebP as the classical reference lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dirac.reporting.curves import _label, perception_key, save_figure
from dirac.reporting.files import csv_text, write_text, written

RatePoint = Mapping[str, object]  # method, codec (rcc | jpeg | webp | jpeg_matched), rd_series, dp_series, bpp, psnr,
# images (the image set, optional), ...
KEYS = ("method", "codec", "rd_series", "dp_series", "bpp", "psnr")


def _checked(rows: Sequence[RatePoint], perception: str | None) -> tuple[list[RatePoint], str]:
    """The rows sorted by image set (in first-seen order), then bpp, after checking each has the keys a rate point
    needs, and the perception measure."""
    for row in rows:
        missing = [key for key in KEYS if key not in row]
        if missing:
            raise ValueError(f"each rate point needs {', '.join(KEYS)}; a row lacks {missing}")
    order = {images: index for index, images in enumerate(panels(rows))}
    return (sorted(rows, key=lambda row: (order[str(row.get("images", ""))], float(row["bpp"]))),
            perception_key(rows, perception))


def series(rows: Sequence[RatePoint], key: str) -> dict[str, list[RatePoint]]:
    """The rows grouped by their `key` series label (rows with an empty label belong to no line), first-seen order."""
    groups: dict[str, list[RatePoint]] = {}
    for row in rows:
        if row.get(key):
            groups.setdefault(str(row[key]), []).append(row)
    return groups


def _rho_order(point: RatePoint) -> float:
    """A DP line's order along rho; a point without a numeric rho (the MMSE decoder, JPEG) goes last."""
    rho = point.get("rho")
    return float(rho) if isinstance(rho, (int, float)) else float("inf")


def panels(rows: Sequence[RatePoint]) -> dict[str, list[RatePoint]]:
    """The rows grouped by their image set (`images`; '' when absent), in first-seen order: one plot panel each."""
    groups: dict[str, list[RatePoint]] = {}
    for row in rows:
        groups.setdefault(str(row.get("images", "")), []).append(row)
    return groups


def _panel_axes(rows: Sequence[RatePoint]) -> tuple[Figure, list[tuple[str, list[RatePoint], Axes]]]:
    """A figure with one panel per image set, side by side: (figure, [(image set, its rows, its axes)])."""
    groups = panels(rows)
    figure = Figure(figsize=(6.5 * len(groups), 4.5), layout="constrained")
    axes = figure.subplots(1, len(groups), squeeze=False)[0]
    return figure, [(images, points, ax) for (images, points), ax in zip(groups.items(), axes)]


def _styles(rows: Sequence[RatePoint], key: str) -> dict[str, dict[str, str]]:
    """One matplotlib style per series label of `key`, the same in every panel: dashed squares for the classical
    codecs, solid circles for RCC."""
    labels = {str(row[key]): str(row["codec"]) for row in rows if row.get(key)}
    return {label: {"fmt": "o-" if codec == "rcc" else "s--", "color": f"C{index % 10}"}
            for index, (label, codec) in enumerate(labels.items())}


def _title(what: str, images: str) -> str:
    """A panel title: the plot kind and the image set when there is one."""
    return f"{what} ({images})" if images else what


def rd_figure(rows: Sequence[RatePoint]) -> Figure:
    """PSNR against bits per pixel (file sizes), one line per RD series (RCC at each rho, RCC MMSE, JPEG, WebP), one
    panel per image set."""
    figure, axes = _panel_axes(rows)
    styles = _styles(rows, "rd_series")
    for images, points, ax in axes:
        for label, line in series(points, "rd_series").items():
            style = styles[label]
            ax.plot([float(p["bpp"]) for p in line], [float(p["psnr"]) for p in line], style["fmt"],
                    color=style["color"], label=label)
        ax.set(xlabel="bits per pixel (file size, every byte)", ylabel=_label("psnr"),
               title=_title("rate–distortion", images))
        ax.legend(fontsize=8)
    return figure


def dp_figure(rows: Sequence[RatePoint], perception: str) -> Figure:
    """PSNR against the perception measure, one line per DP series (RCC along rho at one rate; the classical codecs
    along their quality), one panel per image set."""
    figure, axes = _panel_axes(rows)
    styles = _styles(rows, "dp_series")
    for images, points, ax in axes:
        for label, line in series(points, "dp_series").items():
            style, line = styles[label], sorted(line, key=_rho_order)
            ax.plot([float(p[perception]) for p in line], [float(p["psnr"]) for p in line], style["fmt"],
                    color=style["color"], label=label, markersize=4)
            if style["fmt"] == "o-":
                for point in line:
                    ax.annotate(str(point.get("decoder", "")), (float(point[perception]), float(point["psnr"])),
                                fontsize=6)
        ax.set(xlabel=_label(perception), ylabel=_label("psnr"),
               title=_title("distortion–perception (lower is better on x)", images))
        ax.legend(fontsize=7)
    return figure


def write_rate_curves(rows: Sequence[RatePoint], directory: str | Path,
                      perception: str | None = None) -> dict[str, Path]:
    """rd_curve.csv/.png (bpp vs PSNR) and dp_curve.csv/.png (perception vs PSNR) of the rate points in `directory`."""
    rows, perception = _checked(rows, perception)
    columns = list(dict.fromkeys([*KEYS, "images", "decoder", "steps", "rho", *(key for row in rows for key in row)]))
    directory = Path(directory)
    text = csv_text(columns, rows)
    return written(write_text(directory / "rd_curve.csv", text),
                   save_figure(rd_figure(rows), directory / "rd_curve.png"),
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
