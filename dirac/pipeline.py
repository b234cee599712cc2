"""What `python -m dirac.run` does: build the method, the task and the trainer from the config, then
[fit] -> calibrate -> evaluate -> save `<family>.ckpt`, dispatching on the method and the task."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from dirac.checkpoints import load_checkpoint, resolve_checkpoint, save_checkpoint, with_schedule_contents
from dirac.methods.base import Method
from dirac.tasks.base import Task

log = logging.getLogger(__name__)
# The parts of a run's config a checkpoint stores (the method's groups; `model` is what rebuilds the module).
MODEL_KEYS = ("method", "net", "degradation", "noise", "loss", "severity", "sampler", "data", "model", "name")
COMPATIBLE_KEYS = ("net", "degradation", "noise")


@dataclass
class Run:
    """The objects of one run."""

    datamodule: L.LightningDataModule
    method: Method
    task: Task
    trainer: L.Trainer
    output_dir: Path


def model_config(cfg: DictConfig) -> dict:
    """The resolved part of the config a checkpoint needs to be used on its own (method, operators, data geometry),
    schedule files stored as their knots."""
    return with_schedule_contents({key: OmegaConf.to_container(cfg[key], resolve=True)
                                   if isinstance(cfg[key], DictConfig) else cfg[key]
                                   for key in MODEL_KEYS if key in cfg})


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback]) -> L.Trainer:
    """The Lightning Trainer with the configured callbacks (plus the task's) and loggers."""
    callbacks = [instantiate(conf) for conf in (cfg.get("callbacks") or {}).values()] + callbacks
    loggers = [instantiate(conf) for conf in (cfg.get("logger") or {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def build(cfg: DictConfig) -> Run:
    """DataModule, method, task and trainer of a run, seeded; the task checks that it can judge the method."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    method = instantiate(cfg.model)
    if not isinstance(method, Method):
        raise ValueError(f"model must build a dirac method (a dirac.methods.Method), got {type(method).__name__}")
    method.run_config = model_config(cfg)
    task = instantiate(cfg.task)
    task.check(method)
    trainer = build_trainer(cfg, task.fit_callbacks(method))
    return Run(datamodule, method, task, trainer, Path(cfg.paths.output_dir))


def checkpoint_for(cfg: DictConfig) -> Path | None:
    """The checkpoint the run starts from (resume=true / ckpt_path=last / ckpt_path=<file>), or None."""
    return resolve_checkpoint(cfg.get("ckpt_path"), bool(cfg.get("resume")), Path(cfg.paths.experiment_dir))


def calibrated_checkpoint(output_dir: Path, family: str) -> Path:
    """Where a run writing to `output_dir` saves its calibrated `<family>.ckpt`."""
    return Path(output_dir) / "checkpoints" / f"{family}.ckpt"


def judge(run: Run) -> dict:
    """Calibrate on validation data, evaluate on the test split, save `<family>.ckpt` (weights, config,
    calibration) and return the results and the checkpoint path."""
    run.task.calibrate(run.method, run.trainer, run.datamodule, run.output_dir)
    results = run.task.evaluate(run.method, run.trainer, run.datamodule, run.output_dir)
    path = calibrated_checkpoint(run.output_dir, run.method.family)
    if run.trainer.is_global_zero:
        save_checkpoint(run.method, path, run.trainer.global_step)
        log.info("calibrated checkpoint written to %s", path)
    return {"results": results, "checkpoint": str(path), "monitored": run.task.monitored(results)}


def train(cfg: DictConfig) -> dict:
    """Fit (resuming when asked: the checkpoint is checked as data before Lightning reads it), then calibrate,
    evaluate and save."""
    ckpt = checkpoint_for(cfg)
    if ckpt is not None:
        load_checkpoint(ckpt, configured_family(cfg))
    run = build(cfg)
    run.trainer.fit(run.method, datamodule=run.datamodule, ckpt_path=ckpt, weights_only=True)
    return judge(run)


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate a checkpoint (`mode=test ckpt_path=...`) on the configured test data with the configured task."""
    ckpt = checkpoint_for(cfg)
    if ckpt is None:
        trained_by = cfg.get("checkpoint_from")
        hint = f"; `python -m dirac.run experiment={trained_by}` trains one" if trained_by else ""
        raise ValueError(f"mode=test needs a checkpoint: pass ckpt_path=<file> (or ckpt_path=last){hint}")
    checkpoint = load_checkpoint(ckpt, configured_family(cfg))  # another family's checkpoint: the family error first
    check_compatible(checkpoint["dirac"]["config"], cfg)
    run = build(cfg)
    run.method.on_load_checkpoint(checkpoint)  # refuses another family before the weights are read
    run.method.load_state_dict(checkpoint["state_dict"])
    return judge(run)


def configured_family(cfg: DictConfig) -> str | None:
    """The family of the method class `model._target_` names (None when it names no Method class)."""
    target = get_object(cfg.model._target_)
    return target.family if isinstance(target, type) and issubclass(target, Method) else None


def check_compatible(stored: dict, cfg: DictConfig) -> None:
    """Refuse a checkpoint whose network, degradation, noise or image geometry differ from the config, naming each
    difference; a part the checkpoint does not store (an RGM has no degradation) is the task's alone."""
    current = model_config(cfg)
    differences = [f"{key}: checkpoint {stored.get(key)!r} vs config {current.get(key)!r}"
                   for key in COMPATIBLE_KEYS if key in stored and stored[key] != current.get(key)]
    differences += [f"data.{key}: checkpoint {stored.get('data', {}).get(key)!r} vs config {current['data'].get(key)!r}"
                    for key in ("image_size", "channels")
                    if stored.get("data", {}).get(key) != current["data"].get(key)]
    if differences:
        raise ValueError("checkpoint is incompatible with this configuration:\n  " + "\n  ".join(differences))


def finish_wandb() -> None:
    """Close the job's wandb run, if any, so the next job of a multirun (or fold) gets its own run (SPEC §4)."""
    wandb = sys.modules.get("wandb")  # only present when a WandbLogger was built
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def run(cfg: DictConfig) -> dict:
    """Dispatch on `cv` (k-fold cross-validation, one training run per fold) and `mode`: train (fit + calibrate +
    evaluate) or test (evaluate a checkpoint)."""
    if cfg.get("cv") is not None:
        return instantiate(cfg.cv).run(cfg, train, finish_wandb)  # each fold's wandb run closed before the next
    modes = {"train": train, "test": evaluate}
    if cfg.mode not in modes:
        raise ValueError(f"unknown mode {cfg.mode!r}; choose one of {sorted(modes)} (restoring: python -m "
                         "dirac.restore)")
    return modes[cfg.mode](cfg)
