"""Fixtures that compose the real Hydra config tree in-process and run the real pipeline on tiny settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from dirac.config import register_resolvers

CONF = Path(__file__).resolve().parents[2] / "conf"

# A few-second version of the quickstart: tiny net, 24 training steps, coarse sampler, metrics without weights.
TINY = [
    "logger=csv",
    "metrics=offline",
    "trainer.max_steps=24",
    "trainer.val_check_interval=12",
    "trainer.enable_progress_bar=false",
    "callbacks.model_checkpoint.every_n_train_steps=12",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "sampler.do.dt=0.25",
    "sampler.po.dt=0.25",
    "sampler.po.auto_stop=true",  # exercise the PO calibration (perception minimum) end to end
    "task.preview_images=2",
    "task.save_images=4",
]


def compose_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """The composed run config with Hydra's runtime set, as `python -m dirac.run <overrides>` would see it."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("run", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.experiment_dir = str(output_dir.parent)
    return cfg


@pytest.fixture
def tiny_config(tmp_path: Path):
    """A factory of tiny composed configs writing under tmp_path/<name>."""

    def make(*overrides: str, run: str = "run") -> DictConfig:
        return compose_config([*TINY, *overrides], tmp_path / "outputs" / run)

    yield make
    GlobalHydra.instance().clear()
