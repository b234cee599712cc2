"""k-fold cross-validation by photograph (issue 30): the ordinary pipeline (fit, calibrate, evaluate) once per fold
into `<output>/fold_<i>/`, each fold testing photographs it never trained or validated on, then one report over the
folds (`cv_results.md/.csv/.png`, dirac.reporting.folds). With `denoiser` (Hydra overrides of a denoiser run, e.g.
`[experiment=denoiser_embedded]`) each fold first trains PnP-ADMM's denoiser on its own training split, into
`fold_<i>/denoiser/`, so that no baseline's prior has seen the photographs the fold tests on."""

from __future__ import annotations

import copy
import logging
import multiprocessing
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from statistics import fmean

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from dirac.data.source import ImageSource, KFold
from dirac.methods.denoiser import DenoiserModule
from dirac.pipeline import calibrated_checkpoint
from dirac.reporting.files import read_csv
from dirac.reporting.folds import Comparison, FoldOutcome, fold_means, write_cv_results

log = logging.getLogger(__name__)
PER_IMAGE_METRICS = ("psnr", "ssim")
CONF = Path(__file__).resolve().parents[1] / "conf"
# where and how a fold runs, carried over to the run that trains its denoiser
RUNTIME_TRAINER_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "precision", "enable_progress_bar")


def fold_config(cfg: DictConfig, split: KFold, output_dir: Path, own_denoiser: bool = False) -> DictConfig:
    """The run config of one fold: the data source split by `split`, per-image results on, writing to `output_dir`
    (its baselines' denoiser the fold's own with `own_denoiser`), every interpolation resolved and Hydra's own node
    (present in tests' configs) left out: a fold may run in a process without Hydra."""
    config = copy.deepcopy(cfg)
    with open_dict(config):
        config.pop("hydra", None)
        config.cv = None
        config.paths.output_dir = str(output_dir)
        config.data.source.fold = {"_target_": "dirac.data.source.KFold", **asdict(split)}
        config.task.per_image = True
        if own_denoiser:
            config.denoiser.path = str(calibrated_checkpoint(output_dir / "denoiser", DenoiserModule.family))
    OmegaConf.resolve(config)
    return config


def composed(overrides: Sequence[str]) -> DictConfig:
    """The run config `python -m dirac.run <overrides>` composes (inside a Hydra app or not)."""
    if GlobalHydra.instance().is_initialized():
        return compose("run", overrides=list(overrides))
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("run", overrides=list(overrides))


def uses_denoiser(cfg: DictConfig) -> list[str]:
    """The baselines that restore with the shared denoiser (PnP-ADMM, DPS, DDRM)."""
    return sorted(name for name, baseline in (cfg.task.get("baselines") or {}).items() if "denoiser" in baseline)


def denoiser_config(overrides: Sequence[str], fold: DictConfig, logger: DictConfig | None) -> DictConfig:
    """The run config that trains a fold's denoiser: the run `overrides` compose, on the fold's data (its training
    photographs, patches and augmentation), metrics and devices, with the run's `logger` (unresolved: it logs into
    the denoiser's own folder), writing to `<fold>/denoiser/`."""
    config = composed(overrides)
    with open_dict(config):
        config.pop("hydra", None)
        config.cv = None
        config.paths.output_dir = str(Path(fold.paths.output_dir) / "denoiser")
        config.data, config.metrics = copy.deepcopy(fold.data), copy.deepcopy(fold.metrics)
        config.logger = copy.deepcopy(logger)
        for key in RUNTIME_TRAINER_KEYS:
            config.trainer[key] = fold.trainer[key]
    OmegaConf.resolve(config)
    return config


def run_fold(train: Callable[[DictConfig], dict], finish: Callable[[], None], config: DictConfig,
             threads: int | None = None, denoiser: DictConfig | None = None) -> dict:
    """One fold's `train` (then `finish`), after training its `denoiser` run when given; in a worker process
    (`threads` set) with that many torch threads and its log in the fold's own run.log."""
    if threads is not None:
        torch.set_num_threads(threads)
        handler = logging.FileHandler(Path(config.paths.output_dir) / "run.log")
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler, logging.StreamHandler()], force=True)
        for name in ("lightning.pytorch", "lightning.fabric"):  # Lightning's own loggers do not propagate
            logging.getLogger(name).addHandler(handler)
    if denoiser is not None:
        train_denoiser(train, finish, denoiser, config.denoiser.path)
    try:
        return train(config)
    finally:
        finish()


def train_denoiser(train: Callable[[DictConfig], dict], finish: Callable[[], None], config: DictConfig,
                   expected: str) -> None:
    """Train a fold's denoiser with `train` and check that its checkpoint is where the fold's baselines load it."""
    try:
        checkpoint = train(config).get("checkpoint")
    finally:
        finish()
    if checkpoint != expected:
        raise RuntimeError(f"the fold's denoiser run wrote {checkpoint!r}, but its baselines load {expected!r}")


def per_photograph(per_image: Sequence[dict[str, str]], source: ImageSource) -> dict[str, dict[str, dict[str, float]]]:
    """Per photograph (the source's group of each image) and method, the mean PSNR and SSIM over its images."""
    scores: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in per_image:
        scores[source.group_of(row["image"]), row["method"]].append(row)
    photographs: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (photo, method), rows in sorted(scores.items()):
        photographs[photo][method] = {metric: fmean(float(row[metric]) for row in rows) for metric in PER_IMAGE_METRICS}
    return dict(photographs)


class CrossValidation:
    """`folds`-fold cross-validation over the groups of the configured data (photographs of data=embedded, image
    files of data=folder), shuffled by `seed`; each fold validates on `validation_groups` groups outside its test
    fold. The report follows `candidate` − `reference` PSNR (Dirac-DO minus the tuned ADMM-TV by default).
    `jobs` > 1 trains that many folds at once, each in its own process with an equal share of the torch threads.
    `denoiser` (overrides of a denoiser run) trains the denoiser of the baselines that use one (PnP-ADMM) per fold on
    the fold's training split, before the fold's own training."""

    def __init__(self, folds: int = 4, seed: int = 0, validation_groups: int = 2, candidate: str = "dirac_do",
                 reference: str = "admm_tv", jobs: int = 1, denoiser: Sequence[str] | None = None) -> None:
        self.folds, self.seed, self.validation_groups = int(folds), int(seed), int(validation_groups)
        self.comparison = Comparison(candidate, reference)
        self.jobs = int(jobs)
        self.denoiser = list(denoiser) if denoiser else None

    def splits(self) -> list[KFold]:
        """Every fold's split (bad fold settings raise here, not while Hydra builds this object)."""
        return [KFold(self.folds, index, self.seed, self.validation_groups) for index in range(self.folds)]

    def check(self, cfg: DictConfig) -> None:
        """Refuse a run that cannot produce the report: at least one job, training from scratch only, the reference
        among the baselines."""
        if self.jobs < 1:
            raise ValueError(f"cv.jobs must be at least 1 (folds trained at once), got {self.jobs}")
        if cfg.mode != "train":
            raise ValueError(f"cross-validation trains one model per fold: use mode=train, got mode={cfg.mode}")
        if cfg.get("resume") or cfg.get("ckpt_path"):
            raise ValueError("cross-validation trains every fold from scratch; drop resume / ckpt_path")
        baselines = sorted(cfg.task.get("baselines") or {})
        if self.comparison.reference not in baselines:
            raise ValueError(f"cv.reference={self.comparison.reference!r} is not among task.baselines {baselines}; "
                             "add it (e.g. /baseline@task.baselines.admm_tv: admm_tv) or choose another reference")
        with_denoiser = uses_denoiser(cfg)
        if self.denoiser and not with_denoiser:
            raise ValueError(f"cv.denoiser trains a denoiser per fold, but no baseline among {baselines} uses one; "
                             "add one (e.g. +baseline@task.baselines.pnp_admm=pnp_admm) or drop cv.denoiser")
        if with_denoiser and not self.denoiser and not OmegaConf.select(cfg, "denoiser.path", default=None):
            raise ValueError(f"the baselines {with_denoiser} need a denoiser: pass 'cv.denoiser=[\"experiment="
                             "denoiser_embedded\"]' (one per fold, trained on its training photographs) or "
                             "denoiser.path=<a checkpoint that never saw the photographs the folds test on>")

    def run(self, cfg: DictConfig, train: Callable[[DictConfig], dict], finish: Callable[[], None]) -> dict:
        """Train, calibrate and evaluate every fold with `train` (then `finish`, e.g. closing its wandb run), and
        write the report; every fold's split is checked before any training."""
        self.check(cfg)
        output = Path(cfg.paths.output_dir)
        configs = [fold_config(cfg, split, output / f"fold_{split.index}", own_denoiser=bool(self.denoiser))
                   for split in self.splits()]
        sources = [instantiate(config.data).source for config in configs]
        groups = [source.split_groups() for source in sources]  # bad splits fail here, before any training
        denoisers = [denoiser_config(self.denoiser, config, cfg.get("logger")) if self.denoiser else None
                     for config in configs]
        for index, config in enumerate(configs):
            log.info("fold %d/%d: test %s, validation %s", index, len(configs), groups[index]["test"],
                     groups[index]["val"])
        outcomes = self.train_folds(configs, denoisers, train, finish)
        folds = [FoldOutcome(index, groups[index], outcome["results"],
                             per_photograph(read_csv(Path(config.paths.output_dir) / "per_image.csv"), source))
                 for index, (config, source, outcome) in enumerate(zip(configs, sources, outcomes))]
        paths = write_cv_results(folds, output, self.comparison)
        log.info("cross-validation report written to %s", paths["cv_results.md"])
        print(f"\n{paths['cv_results.md'].read_text()}\nwritten to {output}", flush=True)
        means = fold_means(folds)
        return {"results": means, "checkpoint": None, "monitored": self.comparison.difference(means)}

    def train_folds(self, configs: Sequence[DictConfig], denoisers: Sequence[DictConfig | None],
                    train: Callable[[DictConfig], dict], finish: Callable[[], None]) -> list[dict]:
        """Every fold's outcome (after its denoiser's run, where given), in fold order: one after another here, or
        `jobs` at a time in spawned processes (`train` and `finish` must then be importable functions)."""
        if self.jobs == 1:
            return [run_fold(train, finish, config, denoiser=denoiser) for config, denoiser in zip(configs, denoisers)]
        workers = min(self.jobs, len(configs))
        threads = max(1, torch.get_num_threads() // workers)
        for config in configs:
            Path(config.paths.output_dir).mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(run_fold, train, finish, config, threads, denoiser)
                       for config, denoiser in zip(configs, denoisers)]
            try:
                return [future.result() for future in futures]
            except BaseException:
                pool.shutdown(cancel_futures=True)  # a failed fold stops the folds not yet started
                raise
