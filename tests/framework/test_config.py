"""The Hydra config tree: every experiment composes and instantiates; mistakes get Hydra's clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from tests.framework.conftest import CONF, compose_config

EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))
GROUPS = ["data", "model", "degradation", "noise", "loss", "prior", "sampler", "trainer", "logger", "experiment",
          "hydra/launcher", "net", "metrics", "callbacks"]


def test_config_groups_exist():
    missing = [group for group in GROUPS if not any((CONF / group).glob("*.yaml"))]
    assert not missing, f"config groups without options: {missing}"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_builds_its_operators(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}", "net=tiny", "data.image_size=32"], tmp_path / experiment)
    assert cfg.name == experiment
    degradation = instantiate(cfg.degradation)
    noise = instantiate(cfg.noise)
    assert degradation.image_size == 32
    assert float(noise.sigma(degradation.severities(1.0, __import__("torch").zeros(1, 3, 32, 32)))) == pytest.approx(0.05)
    do, po = instantiate(cfg.sampler.do), instantiate(cfg.sampler.po)
    assert do.auto_stop and not po.auto_stop  # the presets keep the reference PO stop


def test_paper_presets_follow_the_reference(tmp_path):
    cfg = compose_config(["experiment=celeba_inpaint"], tmp_path / "inpaint")
    assert cfg.sampler.po.dt == 0.005 and cfg.sampler.po.output == "iterate" and cfg.sampler.po.guidance == "error"
    assert cfg.loss.delta_t == 0.0 and cfg.net.model_channels == 128
    cfg = compose_config(["experiment=imagenet_inpaint"], tmp_path / "imagenet")
    assert cfg.degradation.s_max == 30 and cfg.net.model_channels == 256
    assert cfg.callbacks.ema.decay == 0.9999


def test_slurm_launcher_config_composes(tmp_path):
    cfg = compose_config(["hydra/launcher=submitit_slurm", "trainer.devices=4"], tmp_path / "slurm")
    assert cfg.hydra.launcher.tasks_per_node == 4
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")


@pytest.mark.parametrize("overrides", [["experiment=celeba_debluur"], ["trainer.max_stepz=3"], ["data=imagenette"]])
def test_mistakes_give_hydra_errors(overrides, tmp_path):
    with pytest.raises(ConfigCompositionException):
        compose_config(overrides, tmp_path / "bad")


def test_cli_reports_an_unknown_key_without_a_deep_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dirac.run", "trainer.max_stepz=3", f"hydra.run.dir={tmp_path}"],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert result.returncode != 0
    assert "max_stepz" in result.stderr and "dirac/pipeline.py" not in result.stderr
