"""Perception–distortion curves along stop_t (or rho): CSV + PNG, wandb line plots, sweep summaries (SPEC §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from dirac.reporting.files import atomic_path, csv_text, write_text, written
from dirac.reporting.tables import LABELS, metric_columns, read_results

Row = Mapping[str, float]
PERCEPTION = ("lpips", "fid", "swd")


def perception_key(rows: Sequence[Mapping[str, object]], perception: str | None = None) -> str:
    """The perception measure to plot: `perception`, else the first of LPIPS, FID, SWD that every row has."""
    for key in (perception,) if perception else PERCEPTION:
        if rows and all(key in row for row in rows):
            return key
    raise ValueError(f"every row needs the perception measure {perception or ' or '.join(PERCEPTION)}; "
                     f"rows have {sorted({key for row in rows for key in row})}")


def _require(rows: Sequence[Mapping[str, object]], keys: Sequence[str]) -> None:
    """Raise a ValueError naming the missing key when a row lacks one of `keys`."""
    for row in rows:
        for key in keys:
            if key not in row:
                raise ValueError(f"each curve row needs {', '.join(map(repr, keys))}; a row has only {sorted(row)}")


def _checked(rows: Sequence[Row], x: str, perception: str | None) -> tuple[list[Row], str]:
    """The rows sorted by `x` after checking each has `x` and PSNR, and the perception measure to plot."""
    _require(rows, (x, "psnr"))
    return sorted(rows, key=lambda row: row[x]), perception_key(rows, perception)


def _label(metric: str) -> str:
    """The axis label of a metric."""
    return LABELS.get(metric, metric)


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Save a matplotlib figure as a PNG atomically and return the path."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    return Path(path)


def pd_figure(rows: Sequence[Row], x: str, perception: str) -> Figure:
    """PSNR and perception against `x` on twin axes, beside PSNR against perception (SPEC §4 curves)."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    along, tradeoff = figure.subplots(1, 2)
    xs, psnrs, perceptions = ([row[key] for row in rows] for key in (x, "psnr", perception))
    along.plot(xs, psnrs, "o-", color="C0")
    along.set_xlabel(x)
    along.set_ylabel(_label("psnr"), color="C0")
    twin = along.twinx()
    twin.plot(xs, perceptions, "s--", color="C1")
    twin.set_ylabel(_label(perception), color="C1")
    tradeoff.plot(perceptions, psnrs, "o-", color="C2")
    for value, point in zip(xs, zip(perceptions, psnrs)):
        tradeoff.annotate(f"{x}={value:g}", point, fontsize=7)
    tradeoff.set(xlabel=_label(perception), ylabel=_label("psnr"), title="perception–distortion")
    return figure


def write_pd_curve(rows: Sequence[Row], directory: str | Path, x: str = "stop_t", stem: str = "pd_curve",
                   perception: str | None = None) -> dict[str, Path]:
    """Write `<stem>.csv` (all columns of the rows) and `<stem>.png` (the curve plots) into `directory`.

    Returns the written paths keyed by file name.
    """
    rows, perception = _checked(rows, x, perception)
    columns = list(dict.fromkeys([x, *(key for row in rows for key in row)]))
    directory = Path(directory)
    return written(write_text(directory / f"{stem}.csv", csv_text(columns, rows)),
                   save_figure(pd_figure(rows, x, perception), directory / f"{stem}.png"))


def learning_figure(rows: Sequence[Row]) -> Figure:
    """Validation PSNR of each tracked restorer (and the measurement, dashed) against the training step (SPEC §4)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    steps = [row["step"] for row in rows]
    for key in (key for key in rows[-1] if key.startswith("psnr_")):
        axes.plot(steps, [row.get(key, float("nan")) for row in rows], "--" if key == "psnr_measurement" else "o-",
                  label=key.removeprefix("psnr_"))
    axes.set(xlabel="training step", ylabel=_label("psnr"), title="validation PSNR during training")
    axes.legend()
    return figure


def write_learning_curve(rows: Sequence[Row], directory: str | Path, stem: str = "learning_curve") -> dict[str, Path]:
    """Write `<stem>.csv` (one row per validation: step, val loss, PSNRs) and `<stem>.png` into `directory`."""
    _require(rows, ("step",))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    directory = Path(directory)
    return written(write_text(directory / f"{stem}.csv", csv_text(columns, rows)),
                   save_figure(learning_figure(rows), directory / f"{stem}.png"))


@rank_zero_only
def log_pd_curve(logger: Logger | None, rows: Sequence[Row], x: str = "stop_t", perception: str | None = None,
                 key: str = "pd_curve", step: int | None = None) -> None:
    """Log PSNR and perception against `x`, and PSNR against perception, as wandb line plots (SPEC §4).

    A no-op unless `logger` is a WandbLogger.
    """
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    rows, perception = _checked(rows, x, perception)
    columns = [x, "psnr", perception]
    table = wandb.Table(columns=columns, data=[[float(row[column]) for column in columns] for row in rows])
    pairs = ((x, "psnr"), (x, perception), (perception, "psnr"))
    logger.log_metrics({f"{key}/{y_key}_vs_{x_key}": wandb.plot.line(table, x_key, y_key, title=f"{y_key} vs {x_key}")
                        for x_key, y_key in pairs}, step=step)


def job_overrides(run_dir: Path) -> list[str]:
    """A sweep job's Hydra overrides (`.hydra/overrides.yaml`), empty when it has none."""
    overrides = run_dir / ".hydra" / "overrides.yaml"
    return list(map(str, OmegaConf.load(overrides))) if overrides.is_file() else []


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each sweep job's label: the overrides in which it differs from the other jobs, else its folder name."""
    overrides = [job_overrides(run_dir) for run_dir in run_dirs]
    shared = set.intersection(*map(set, overrides)) if len(overrides) > 1 else set()
    return [",".join(item for item in items if item not in shared) or run_dir.name
            for run_dir, items in zip(run_dirs, overrides)]


def _sweep_results(run_dirs: Sequence[str | Path], results_stem: str) -> dict[str, dict[str, dict[str, float]]]:
    """Each sweep job's results (method -> metric -> value), keyed by the job's label."""
    run_dirs = list(map(Path, run_dirs))
    paths = [run_dir / f"{results_stem}.csv" for run_dir in run_dirs]
    for run_dir, path in zip(run_dirs, paths):
        if not path.is_file():
            raise ValueError(f"sweep run {run_dir} has no {path.name} (write it with dirac.reporting.write_results)")
    return {label: read_results(path) for label, path in zip(run_labels(run_dirs), paths)}


def sweep_figure(rows: Sequence[Mapping[str, object]], perception: str) -> Figure:
    """PSNR against perception, one line per method through a sweep's runs, points labelled by run (SPEC §4)."""
    figure = Figure(figsize=(7, 5), layout="constrained")
    axes = figure.subplots()
    for method in dict.fromkeys(row["method"] for row in rows):
        points = [row for row in rows if row["method"] == method]
        axes.plot([row[perception] for row in points], [row["psnr"] for row in points], "o-", label=method)
        for row in points:
            axes.annotate(str(row["run"]), (row[perception], row["psnr"]), fontsize=7)
    axes.set(xlabel=_label(perception), ylabel=_label("psnr"), title="perception–distortion across the sweep")
    axes.legend()
    return figure


def combine_sweep(run_dirs: Sequence[str | Path], out_dir: str | Path, stem: str = "sweep",
                  results_stem: str = "results", perception: str | None = None) -> dict[str, Path]:
    """Combine a multirun's job results CSVs into `<stem>.csv` and a perception–distortion `<stem>.png` (SPEC §4).

    Returns the written paths keyed by file name.
    """
    results = _sweep_results(run_dirs, results_stem)
    table = {(run, method): metrics for run, methods in results.items() for method, metrics in methods.items()}
    rows = [{"run": run, "method": method, **metrics} for (run, method), metrics in table.items()]
    _require(rows, ("psnr",))
    perception = perception_key(rows, perception)
    metrics = metric_columns({f"{run}/{method}": values for (run, method), values in table.items()})
    out_dir = Path(out_dir)
    return written(write_text(out_dir / f"{stem}.csv", csv_text(["run", "method", *metrics], rows)),
                   save_figure(sweep_figure(rows, perception), out_dir / f"{stem}.png"))
