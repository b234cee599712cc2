"""Cross-validation reports: per fold, per photograph, the mean over folds and the worst fold, as
`cv_results.md/.csv/.png` (issue 30; metrics of SPEC §1.3b)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from dirac.reporting.curves import save_figure
from dirac.reporting.files import csv_text, write_text, written
from dirac.reporting.tables import LABELS, format_value

METRICS = ("psnr", "ssim", "swd")
CSV_COLUMNS = ("scope", "fold", "photograph", "method", *METRICS)


@dataclass(frozen=True)
class FoldOutcome:
    """One fold's groups per split, its test results per method (method -> metric -> value) and its per-photograph
    means (photograph -> method -> metric -> value)."""

    index: int
    groups: Mapping[str, Sequence[str]]
    results: Mapping[str, Mapping[str, float]]
    photographs: Mapping[str, Mapping[str, Mapping[str, float]]]


@dataclass(frozen=True)
class Comparison:
    """The pair of methods whose PSNR difference the report follows (e.g. Dirac-DO minus tuned ADMM-TV)."""

    candidate: str
    reference: str

    @property
    def label(self) -> str:
        """The difference's name in tables and files."""
        return f"{self.candidate}-{self.reference}"

    def difference(self, rows: Mapping[str, Mapping[str, float]]) -> float:
        """candidate PSNR − reference PSNR of one fold's or one photograph's rows."""
        return rows[self.candidate]["psnr"] - rows[self.reference]["psnr"]


def methods_of(folds: Sequence[FoldOutcome]) -> list[str]:
    """The methods evaluated in every fold, in the first fold's order."""
    return [method for method in folds[0].results if all(method in fold.results for fold in folds)]


def fold_means(folds: Sequence[FoldOutcome]) -> dict[str, dict[str, float]]:
    """Per method, each metric's mean over the folds (each fold weighs the same)."""
    return {method: {metric: sum(fold.results[method][metric] for fold in folds) / len(folds)
                     for metric in METRICS if all(metric in fold.results[method] for fold in folds)}
            for method in methods_of(folds)}


def worst_fold(folds: Sequence[FoldOutcome], comparison: Comparison) -> FoldOutcome:
    """The fold where the candidate gains least over the reference."""
    return min(folds, key=lambda fold: comparison.difference(fold.results))


def photograph_rows(folds: Sequence[FoldOutcome], comparison: Comparison) -> list[dict[str, object]]:
    """Per test photograph: its fold, the candidate's and the reference's PSNR and their difference."""
    return [{"photograph": photo, "fold": fold.index, "candidate": rows[comparison.candidate]["psnr"],
             "reference": rows[comparison.reference]["psnr"], "difference": comparison.difference(rows)}
            for fold in folds for photo, rows in sorted(fold.photographs.items())]


def metric_cells(row: Mapping[str, float]) -> str:
    """The table cells of PSNR, SSIM and patch SWD."""
    return " | ".join(format_value(metric, row.get(metric)) for metric in METRICS)


def cv_table(folds: Sequence[FoldOutcome], comparison: Comparison) -> str:
    """The Markdown report: the folds' photographs, every method per fold with the mean and the worst fold, and the
    candidate − reference PSNR per photograph."""
    worst, means = worst_fold(folds, comparison), fold_means(folds)
    header = "| " + " | ".join(LABELS[metric] for metric in METRICS) + " |"
    lines = [f"# Cross-validation: {len(folds)} folds by photograph", "",
             f"| fold | test | validation | training | {comparison.label} PSNR (dB) |", "|---|---|---|---|---|"]
    lines += [f"| {fold.index} | {', '.join(fold.groups['test'])} | {', '.join(fold.groups['val'])} | "
              f"{', '.join(fold.groups['train'])} | {comparison.difference(fold.results):+.2f} |" for fold in folds]
    lines += ["", f"| fold | method {header}", "|---|---|---|---|---|"]
    lines += [f"| {fold.index} | {method} | {metric_cells(fold.results[method])} |"
              for fold in folds for method in methods_of(folds)]
    lines += [f"| mean | {method} | {metric_cells(row)} |" for method, row in means.items()]
    lines += [f"| worst ({worst.index}) | {method} | {metric_cells(worst.results[method])} |"
              for method in methods_of(folds)]
    mean_gain = comparison.difference(means)
    lines += ["", f"{comparison.label}: {mean_gain:+.2f} dB on the mean over folds, "
              f"{comparison.difference(worst.results):+.2f} dB on the worst fold ({worst.index}).", "",
              f"| photograph | fold | {comparison.candidate} PSNR | {comparison.reference} PSNR | difference (dB) |",
              "|---|---|---|---|---|"]
    lines += [f"| {row['photograph']} | {row['fold']} | {row['candidate']:.2f} | {row['reference']:.2f} | "
              f"{row['difference']:+.2f} |" for row in photograph_rows(folds, comparison)]
    lines += ["", "Fold means weigh every fold the same; a photograph's numbers are the means over its test patches "
              "(patch SWD is a set measure: per fold only)."]
    return "\n".join(lines) + "\n"


def cv_csv_rows(folds: Sequence[FoldOutcome], comparison: Comparison) -> list[dict[str, object]]:
    """The long-format CSV rows: scope fold / mean / worst / photograph / difference, one row per method."""
    def row(scope: str, fold: object, photograph: str, method: str, values: Mapping[str, float]) -> dict:
        return {"scope": scope, "fold": fold, "photograph": photograph, "method": method,
                **{metric: repr(float(values[metric])) for metric in METRICS if metric in values}}

    worst = worst_fold(folds, comparison)
    rows = [row("fold", fold.index, "", method, fold.results[method]) for fold in folds for method in methods_of(folds)]
    rows += [row("mean", "", "", method, values) for method, values in fold_means(folds).items()]
    rows += [row("worst", worst.index, "", method, worst.results[method]) for method in methods_of(folds)]
    rows += [row("photograph", fold.index, photo, method, values) for fold in folds
             for photo, methods in sorted(fold.photographs.items()) for method, values in methods.items()]
    rows += [row("difference", fold.index, "", comparison.label, {"psnr": comparison.difference(fold.results)})
             for fold in folds]
    rows += [row("difference", item["fold"], item["photograph"], comparison.label, {"psnr": item["difference"]})
             for item in photograph_rows(folds, comparison)]
    return rows


def cv_figure(folds: Sequence[FoldOutcome], comparison: Comparison) -> Figure:
    """Left: every method's test PSNR per fold; right: the candidate − reference PSNR per photograph."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    per_fold, per_photo = figure.subplots(1, 2)
    indices = [fold.index for fold in folds]
    for method in methods_of(folds):
        per_fold.plot(indices, [fold.results[method]["psnr"] for fold in folds], marker="o", label=method)
    per_fold.set(xlabel="fold", ylabel=LABELS["psnr"], xticks=indices, title="test PSNR per fold")
    per_fold.legend(fontsize="small")
    rows = photograph_rows(folds, comparison)
    gains = [row["difference"] for row in rows]
    per_photo.bar(range(len(rows)), gains, color=["tab:green" if gain >= 0 else "tab:red" for gain in gains])
    per_photo.axhline(0.0, color="black", linewidth=0.8)
    per_photo.set_xticks(range(len(rows)), [f"{row['photograph']} ({row['fold']})" for row in rows],
                         rotation=45, ha="right", fontsize="small")
    per_photo.set(ylabel=f"{comparison.label} PSNR (dB)", title="per test photograph (fold)")
    return figure


def write_cv_results(folds: Sequence[FoldOutcome], directory: str | Path, comparison: Comparison,
                     stem: str = "cv_results") -> dict[str, Path]:
    """Write `<stem>.md`, `<stem>.csv` and `<stem>.png` into `directory`; returns the paths by file name."""
    if not folds:
        raise ValueError("no folds to report")
    missing = sorted({comparison.candidate, comparison.reference} - set(methods_of(folds)))
    if missing:
        raise ValueError(f"the compared method(s) {missing} are not in every fold's results; got {methods_of(folds)}")
    directory = Path(directory)
    return written(write_text(directory / f"{stem}.md", cv_table(folds, comparison)),
                   write_text(directory / f"{stem}.csv", csv_text(CSV_COLUMNS, cv_csv_rows(folds, comparison))),
                   save_figure(cv_figure(folds, comparison), directory / f"{stem}.png"))
