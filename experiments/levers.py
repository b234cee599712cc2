"""One lever at a time: train an experiment (the quickstart unless --experiment) with one change each, same
budget and seeds, and tabulate the validation DO PSNR, the validation perception of PO and the test numbers
(issue 21, item 3).

    python experiments/levers.py                       # every lever at 400 steps
    python experiments/levers.py --steps 700 --only base,constant_lr,no_augment
    python experiments/levers.py --threads 1 --jobs 2  # two runs side by side, one core each
    python experiments/levers.py --collect             # only tabulate the lever runs already under --out
    # another experiment, with Hydra overrides for every run after --:
    python experiments/levers.py --experiment embedded_inpaint --steps 1500 --only base,severity_tilted
        -- '~task.baselines.pnp_admm' callbacks.budget.minutes=null callbacks.performance.channels_last=false
    # cross-validated (issue 30): every lever a full k-fold run, tabulated from its cv_results.csv
    python experiments/levers.py --experiment embedded_cv --only base,net_narrow  # 2 folds at a time (cv.jobs)
    # the long budget (README levers table: 1,200 steps, with EMA, with weight decay; ~45 min each on 2 cores)
    python experiments/levers.py --experiment embedded_cv --steps 1200 --only base,ema_0.995,weight_decay \
        --out outputs/levers_long
    python experiments/levers.py --experiment embedded_cv --steps 2400 --only base --out outputs/levers_2400  # ~77 min
    # the seed spread of the committed recipe (README: what a one-seed lever difference means)
    python experiments/levers.py --experiment embedded_cv --only base,seed_43,seed_44 --out outputs/levers_seeds
    # with PnP-ADMM, its denoiser trained per fold (experiment=embedded_cv_pnp)
    python experiments/levers.py --experiment embedded_cv_pnp --only base --out outputs/levers_pnp

Each run is a real `python -m dirac.run` written to outputs/levers/<lever>/; the summary goes to
outputs/levers/levers.md and .csv. Validation numbers come from the run's calibration.csv (the calibrated DO stop's
PSNR, PO's perception minimum along stop_t) and learning_curve.csv; test numbers from results.csv. A cross-validated
run (`--experiment embedded_cv`) is summarised from its cv_results.csv instead: the fold means, the worst fold's and
the worst photograph's Dirac-DO − ADMM-TV PSNR.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["logger=csv", "trainer.enable_progress_bar=false", "sampler.po.auto_stop=true",
          "task.preview_images=64", "task.save_images=0"]
# flips/rotations then channel order, contrast 0.6-1 and offset (dirac.data.Colour), one generator each
DIHEDRAL_COLOUR = ("{_target_:dirac.data.Chain,augments:[{_target_:dirac.data.Dihedral},"
                   "{_target_:dirac.data.Colour,seed:1}]}")
EMA = "+callbacks.ema._target_=lightning.pytorch.callbacks.EMAWeightAveraging"
LEVERS = {
    "base": [],  # the experiment as committed: since issue 30 the quickstart trains on loss_psnr_floor_tilted_3
    # other run seeds (network init, training draws; data order and augmentation keep their own): the spread to beat
    "seed_43": ["seed=43"],
    "seed_44": ["seed=44"],
    # the quickstart's loss before issue 30 (the paper's: squared error at Δt = 1, training t uniform)
    "loss_clean_uniform": ["loss=clean", "severity=uniform"],
    # the previous quickstart: a constant learning rate of 1e-3 (measured as the base of the first levers table)
    "constant_lr": ["~model.scheduler", "model.optimizer.lr=1e-3"],
    "cosine": ["lr_schedule@model.scheduler=cosine"],
    "ema": [EMA, "+callbacks.ema.decay=0.99"],
    "ema_0.995": [EMA, "+callbacks.ema.decay=0.995"],  # weights averaged over ~200 steps: for the long budget
    "weight_decay": ["model.optimizer._target_=torch.optim.AdamW", "+model.optimizer.weight_decay=0.01"],  # decoupled
    "net_narrow": ["net.model_channels=24"],
    "net_wide": ["net.model_channels=48"],
    "batch_16": ["data.batch_size=16"],
    "batch_64": ["data.batch_size=64"],
    "loss_dt_0.05": ["loss=small"],
    "loss_dt_0": ["loss=current"],
    # the training patches, from the quickstart's (3 scales every 16 px, flipped and rotated; issue 30)
    "single_scale": ["data.source.train_scales=null", "data.source.train_stride=null"],
    "no_augment": ["data.augment=null"],
    "single_scale_no_augment": ["data.source.train_scales=null", "data.source.train_stride=null", "data.augment=null"],
    "colour_only": ["~data.augment", "+data.augment={_target_:dirac.data.Colour}"],  # recoloured, no flips
    "dihedral_colour": ["~data.augment", f"+data.augment={DIHEDRAL_COLOUR}"],
    "jitter": ["+jitter=operator"],  # blur width x (1 ± 10 %), noise std x (1 ± 20 %) per training image (issue 30)
    # more data for the prior: the 7 grey scikit-image photographs added to every fold's training (issue 30)
    "more_data": ["data.source.extra_train=[brick,camera,clock,coins,grass,gravel,moon]"],
    "severity_tilted": ["severity=tilted"],  # training t with density 2t
    "severity_tilted_3": ["severity=tilted", "severity.power=3"],  # density 4t^3
    "loss_psnr": ["loss=clean_psnr"],  # minus the per-image PSNR of Phi instead of the weighted squared error
    "loss_psnr_floor": ["loss=clean_psnr", "loss.floor=1e-3"],  # 10 log10(MSE + 1e-3): the weight 1/MSE bounded
    # 10 log10(MSE + 3e-3) with training t ~ 4t^3: embedded_inpaint's choice, the quickstart's default since issue 30
    "loss_psnr_floor_tilted_3": ["loss=clean_psnr", "loss.floor=3e-3", "severity=tilted", "severity.power=3"],
}


def chosen(rows: list[dict], restorer: str) -> dict:
    """The chosen calibration row of `restorer` along stop_t."""
    return next(row for row in rows
                if row["restorer"] == restorer and row["param"] == "stop_t" and row["chosen"] == "1")


def run_seconds(out: Path) -> float:
    """Wall time of a run, from the first to the last timestamp of its run.log."""
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),", (out / "run.log").read_text(), re.MULTILINE)
    first, last = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") for stamp in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


def summary(lever: str, out: Path) -> dict:
    """The lever's validation and test numbers from the files its run wrote."""
    calibration = list(csv.DictReader((out / "calibration.csv").open()))
    results = {row["method"]: row for row in csv.DictReader((out / "results.csv").open())}
    curve = list(csv.DictReader((out / "learning_curve.csv").open()))
    do, po = chosen(calibration, "dirac_do"), chosen(calibration, "dirac_po")
    return {"lever": lever, "overrides": " ".join(LEVERS[lever]) or "(quickstart)",
            "seconds": f"{run_seconds(out):.0f}", "val_do_psnr": f"{float(do['score']):.2f}",
            "val_do_stop": do["value"],
            f"val_po_{po['measure']}": f"{float(po['score']):.4f}", "val_po_stop": po["value"],
            "curve_do_psnr": "/".join(f"{float(row['psnr_dirac_do']):.2f}" for row in curve),
            "test_do_psnr": f"{float(results['dirac_do']['psnr']):.2f}",
            "test_po_psnr": f"{float(results['dirac_po']['psnr']):.2f}",
            "test_po_swd": f"{float(results['dirac_po']['swd']):.4f}",
            "test_measurement_psnr": f"{float(results['measurement']['psnr']):.2f}"}


def cv_summary(lever: str, out: Path) -> dict:
    """A cross-validated lever's fold means, worst fold and worst photograph from its cv_results.csv."""
    rows = list(csv.DictReader((out / "cv_results.csv").open()))
    mean = {row["method"]: row for row in rows if row["scope"] == "mean"}
    gains = [row for row in rows if row["scope"] == "difference"]
    folds = [float(row["psnr"]) for row in gains if not row["photograph"]]
    photos = {row["photograph"]: float(row["psnr"]) for row in gains if row["photograph"]}
    worst_photo = min(photos, key=photos.get)
    return {"lever": lever, "overrides": " ".join(LEVERS[lever]) or "(base)", "seconds": f"{run_seconds(out):.0f}",
            "mean_do_psnr": f"{float(mean['dirac_do']['psnr']):.2f}",
            "mean_tv_psnr": f"{float(mean['admm_tv']['psnr']):.2f}",
            **({"mean_pnp_psnr": f"{float(mean['pnp_admm']['psnr']):.2f}"} if "pnp_admm" in mean else {}),
            "mean_do_minus_tv": f"{sum(folds) / len(folds):+.2f}", "worst_fold_do_minus_tv": f"{min(folds):+.2f}",
            "worst_photo_do_minus_tv": f"{photos[worst_photo]:+.2f} ({worst_photo})",
            "mean_swd_do/po/tv": "/".join(f"{float(mean[name]['swd']):.4f}"
                                          for name in ("dirac_do", "dirac_po", "admm_tv"))}


def summarise(lever: str, out: Path) -> dict:
    """The summary row of a lever run: cross-validated when it wrote cv_results.csv."""
    return cv_summary(lever, out) if (out / "cv_results.csv").is_file() else summary(lever, out)


def finished(out: Path) -> bool:
    """Whether the lever run under `out` wrote its results."""
    return (out / "results.csv").is_file() or (out / "cv_results.csv").is_file()


def train(lever: str, args: argparse.Namespace) -> dict:
    """Run the experiment with the lever's overrides and return its summary row."""
    out, steps = args.out / lever, args.steps
    interval = max(1, steps // 4)
    command = [sys.executable, "-m", "dirac.run", f"experiment={args.experiment}", *COMMON, *args.overrides,
               *LEVERS[lever], f"trainer.max_steps={steps}",
               f"trainer.val_check_interval={interval}", f"callbacks.model_checkpoint.every_n_train_steps={steps}",
               f"name=levers_{lever}", f"hydra.run.dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with (args.out / f"{lever}.log").open("w") as log:
        subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return summarise(lever, out)


def write_table(rows: list[dict], root: Path) -> None:
    """levers.csv and levers.md under root."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with (root / "levers.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(column, "")) for column in columns) + " |" for row in rows]
    (root / "levers.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="quickstart", help="the experiment every lever changes")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--only", default=",".join(LEVERS), help="comma-separated levers, from: " + ", ".join(LEVERS))
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "levers")
    parser.add_argument("--collect", action="store_true",
                        help="tabulate the finished lever runs under --out, train nothing")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = parser.parse_args()
    levers = args.only.split(",")
    unknown = sorted(set(levers) - set(LEVERS))
    if unknown:
        parser.error(f"unknown lever(s) {unknown}; choose from {', '.join(LEVERS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.collect:
        rows = [summarise(lever, args.out / lever) for lever in LEVERS if finished(args.out / lever)]
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda lever: train(lever, args), levers))
    write_table(rows, args.out)
    print((args.out / "levers.md").read_text())


if __name__ == "__main__":
    main()
