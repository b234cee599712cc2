"""Results tables: Markdown and CSV with metrics in paper order and the evaluation settings noted (SPEC §1.3b)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from dirac.reporting.files import csv_text, read_csv, write_text, written

Results = Mapping[str, Mapping[str, float]]

METRIC_ORDER = ("psnr", "ssim", "lpips", "fid", "swd", "data_consistency")
LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS", "fid": "FID", "swd": "patch SWD",
          "data_consistency": "data consistency ‖A₁(x̂₀) − y‖", "mse": "MSE"}
FORMATS = {"psnr": ".2f", "ssim": ".4f", "lpips": ".4f", "fid": ".2f", "swd": ".4f", "data_consistency": ".4g"}
REQUIRED_NOTES = ("clipping", "lpips_net")
NOTE_LABELS = {"clipping": "clipping", "lpips_net": "LPIPS net", "fid": "FID", "swd": "patch SWD"}


def metric_columns(results: Results) -> list[str]:
    """The paper-order metrics (always shown), then any other metric in the results, sorted."""
    extra = sorted({metric for row in results.values() for metric in row} - set(METRIC_ORDER))
    return [*METRIC_ORDER, *extra]


def format_value(metric: str, value: float | None) -> str:
    """A metric value for a table cell, "n/a" when missing or NaN."""
    if value is None or math.isnan(value):
        return "n/a"
    return format(value, FORMATS.get(metric, ".4g"))


def results_table(results: Results, notes: Mapping[str, str]) -> str:
    """A Markdown table, one row per method, followed by a notes line stating clipping and LPIPS net (SPEC §1.3b)."""
    absent = [key for key in REQUIRED_NOTES if key not in notes]
    if absent:
        raise ValueError(f"results notes must state {', '.join(absent)} (SPEC §1.3b: record them in every table)")
    columns = metric_columns(results)
    lines = ["| method | " + " | ".join(LABELS.get(metric, metric) for metric in columns) + " |",
             "|---|" + "---|" * len(columns)]
    lines += [f"| {method} | " + " | ".join(format_value(metric, row.get(metric)) for metric in columns) + " |"
              for method, row in results.items()]
    lines.append("")
    lines.append("Notes: " + "; ".join(f"{NOTE_LABELS.get(key, key)}: {value}" for key, value in notes.items()))
    return "\n".join(lines) + "\n"


def write_results(results: Results, directory: str | Path, stem: str = "results", *,
                  notes: Mapping[str, str]) -> dict[str, Path]:
    """Write `<stem>.md` (the table with notes) and `<stem>.csv` (method, metrics) into `directory`.

    Returns the written paths keyed by file name.
    """
    directory = Path(directory)
    columns = metric_columns(results)
    rows = [{"method": method, **{metric: repr(float(row[metric])) for metric in columns if metric in row}}
            for method, row in results.items()]
    return written(write_text(directory / f"{stem}.md", results_table(results, notes)),
                   write_text(directory / f"{stem}.csv", csv_text(["method", *columns], rows)))


def read_results(path: str | Path) -> dict[str, dict[str, float]]:
    """Results read back from a CSV written by `write_results` (empty cells are missing metrics)."""
    return {row["method"]: {metric: float(value) for metric, value in row.items() if metric != "method" and value}
            for row in read_csv(path)}
