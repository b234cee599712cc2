"""What `python -m dirac.run` does: build the objects from the config, then train, evaluate or both."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dirac.checkpoints import load_checkpoint, resolve_checkpoint

log = logging.getLogger(__name__)
MODEL_KEYS = ("net", "degradation", "noise", "loss", "sampler", "data", "model", "name")


def model_config(cfg: DictConfig) -> dict:
    """The resolved part of the config a checkpoint needs to be used on its own (network, operators, samplers, data geometry)."""
    return {key: OmegaConf.to_container(cfg[key], resolve=True) if isinstance(cfg[key], DictConfig) else cfg[key]
            for key in MODEL_KEYS if key in cfg}


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """The Lightning Trainer with the configured callbacks and loggers."""
    callbacks = [instantiate(conf) for conf in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(conf) for conf in (cfg.get("logger") or {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """DataModule, model and trainer of a run, seeded, with the run directory and config attached to the model."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    model.run_config = model_config(cfg)
    model.output_dir = Path(cfg.paths.output_dir)
    return datamodule, model, build_trainer(cfg)


def checkpoint_for(cfg: DictConfig) -> Path | None:
    """The checkpoint the run starts from (resume=true / ckpt_path=last / ckpt_path=<file>), or None."""
    return resolve_checkpoint(cfg.get("ckpt_path"), bool(cfg.get("resume")), Path(cfg.paths.experiment_dir))


def calibrate(model: L.LightningModule, trainer: L.Trainer, datamodule: L.LightningDataModule) -> None:
    """Set the auto-stopped presets' stop times on validation data (SPEC §1.3): DO at the PSNR peak, PO at the perception minimum."""
    if model.calibrated:
        return
    model.calibrating = True
    try:
        trainer.validate(model, datamodule=datamodule, verbose=False)
    finally:
        model.calibrating = False


def finish(model: L.LightningModule, trainer: L.Trainer) -> dict:
    """Save the calibrated model (weights, config, stops; resume training from last.ckpt) and return the test results."""
    path = Path(model.output_dir) / "checkpoints" / "dirac.ckpt"
    trainer.save_checkpoint(path, weights_only=True)
    if trainer.is_global_zero:
        log.info("calibrated checkpoint written to %s", path)
    return {"results": getattr(model, "test_results", {}), "checkpoint": str(path)}


def train(cfg: DictConfig) -> dict:
    """Fit (resuming when asked), calibrate the stop times on validation data, test, and save the calibrated checkpoint."""
    ckpt = checkpoint_for(cfg)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
    calibrate(model, trainer, datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)
    return finish(model, trainer)


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate a checkpoint (`mode=test ckpt_path=...`) on the configured test data, with the configured samplers."""
    ckpt = checkpoint_for(cfg)
    if ckpt is None:
        raise ValueError("mode=test needs a checkpoint: pass ckpt_path=<file> (or ckpt_path=last)")
    checkpoint = load_checkpoint(ckpt)
    check_compatible(checkpoint["dirac"]["config"], cfg)
    datamodule, model, trainer = build(cfg)
    model.load_state_dict(checkpoint["state_dict"])
    model.on_load_checkpoint(checkpoint)
    calibrate(model, trainer, datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)
    return finish(model, trainer)


def check_compatible(stored: dict, cfg: DictConfig) -> None:
    """Refuse a checkpoint whose network, degradation, noise or image geometry differ from the config, naming each difference."""
    current = model_config(cfg)
    differences = [f"{key}: checkpoint {stored.get(key)!r} vs config {current.get(key)!r}"
                   for key in ("net", "degradation", "noise") if stored.get(key) != current.get(key)]
    differences += [f"data.{key}: checkpoint {stored.get('data', {}).get(key)!r} vs config {current['data'].get(key)!r}"
                    for key in ("image_size", "channels") if stored.get("data", {}).get(key) != current["data"].get(key)]
    if differences:
        raise ValueError("checkpoint is incompatible with this configuration:\n  " + "\n  ".join(differences))


def run(cfg: DictConfig) -> dict:
    """Dispatch on `mode`: train (fit + calibrate + test) or test (evaluate a checkpoint)."""
    modes = {"train": train, "test": evaluate}
    if cfg.mode not in modes:
        raise ValueError(f"unknown mode {cfg.mode!r}; choose one of {sorted(modes)} (restoring: python -m dirac.restore)")
    return modes[cfg.mode](cfg)
