"""The Hydra config tree: every experiment composes and instantiates; mistakes get Hydra's clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dirac.checkpoints import save_checkpoint
from dirac.pipeline import model_config
from tests.framework.conftest import CONF, compose_config

EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))
GROUPS = ["data", "method", "task", "degradation", "noise", "loss", "severity", "sampler", "trainer", "logger",
          "experiment", "hydra/launcher", "net", "metrics", "callbacks"]


def test_config_groups_exist():
    missing = [group for group in GROUPS if not any((CONF / group).glob("*.yaml"))]
    assert not missing, f"config groups without options: {missing}"


def check_dirac_experiment(cfg, method, task) -> None:
    """Dirac's invariants: the task measures with the method's own operators; DO stops automatically, PO keeps
    the reference stop unless the experiment calibrates it (auto_stop); sigma_1 = 0.05."""
    assert method.signature()["degradation"] == task.degradation.signature()
    assert float(task.noise.sigma(torch.ones(1))) == pytest.approx(0.05)
    restorers = method.restorers()
    assert set(restorers) == {"dirac_do", "dirac_po"}
    assert "stop_t" in restorers["dirac_do"].tuned
    assert ("stop_t" in restorers["dirac_po"].tuned) == cfg.sampler.po.auto_stop
    assert task.curve.restorer in restorers and task.monitor == "dirac_do/psnr"


def check_denoiser_experiment(cfg, method, task) -> None:
    """The denoiser family's invariants: none of Dirac's operator/loss/sampler groups composed, the denoising task,
    a module of family "denoiser" exposing an EDM denoiser whose geometry is the data's, EMA configured."""
    from dirac.denoisers import EDMDenoiser
    from dirac.tasks.denoising import DenoisingTask

    assert not {"degradation", "noise", "loss", "severity", "sampler"} & set(cfg), sorted(cfg)
    if cfg.name.startswith("rcc_"):  # the denoiser judged as an RCC codec (issue 18)
        from dirac.tasks.compression import CompressionTask

        assert isinstance(task, CompressionTask) and (task.steps or task.bpps) and task.rhos
        assert all(1 <= step <= task.ladder.levels for step in task.steps) and all(bpp > 0 for bpp in task.bpps)
    else:
        assert isinstance(task, DenoisingTask) and task.sigmas == sorted(task.sigmas) and min(task.sigmas) > 0
    assert method.family == "denoiser" and isinstance(method.denoiser, EDMDenoiser)
    assert method.signature()["data"]["image_size"] == cfg.data.image_size
    assert cfg.callbacks.ema._target_.endswith("EMAWeightAveraging")


def check_rgm_experiment(cfg, method, task) -> None:
    """RGM's invariants: only its own groups (chain, prior, generator, discriminator), the generation task; the toy
    runs have N = 4 VP levels and batch 1000, the image runs the reference's N, batch, λ, R1, EMA, Adam betas and
    per-epoch cosine schedules."""
    from dirac.tasks import RestorationTask
    from dirac.tasks.generation import GenerationTask

    assert not {"loss", "severity", "sampler"} & set(cfg) and method.family == "rgm", sorted(cfg)
    if cfg.name.startswith("rgm_pnp_"):  # Alg. 4: a trained RGM as a PnP prior beside the pseudo-inverse
        assert isinstance(task, RestorationTask) and set(task.baselines) == {"pinv", "rgm_pnp"}
        assert cfg.mode == "test" and cfg.checkpoint_from in EXPERIMENTS and task.monitor == "rgm_pnp/psnr"
        return
    assert not {"degradation", "noise"} & set(cfg) and isinstance(task, GenerationTask)
    if cfg.name.startswith("toy_"):
        assert method.chain.steps == 4 and method.sample_shape == (2,)
        assert cfg.data.batch_size == 1000 and (cfg.prior is None) == (cfg.name == "toy_mmse")
        return
    cifar = cfg.name.startswith("cifar10_")
    steps = {"vp": 4, "sr": 7, "sr_naive": 3}[method.chain.signature()["kind"]]
    assert method.chain.steps == steps and method.sample_shape == (3, 32, 32) and method.discriminator is not None
    assert (cfg.data.batch_size, method.lam, method.r1_gamma, method.lazy_reg) == ((256, 1e-3, 0.02, 15) if cifar
                                                                                  else (32, 5e-5, 2.0, 10))
    assert method.ema_decay == 0.9999 and cfg.model.optimizer_g.lr == (1.6e-4 if cifar else 2e-4)
    assert list(cfg.model.optimizer_g.betas) == list(cfg.model.optimizer_d.betas) == [0.5, 0.9]
    assert cfg.model.optimizer_d.lr == 1e-4 and method.algorithm == "prior"
    for optimizer, scheduler in zip(*method.configure_optimizers()):  # the per-epoch cosine of G and D (rgm.md §4)
        assert (scheduler.T_max, scheduler.eta_min) == ((1800 if cifar else 700), 1e-5)


FAMILY_CHECKS = {"dirac": check_dirac_experiment, "denoiser": check_denoiser_experiment, "rgm": check_rgm_experiment}


@pytest.fixture(scope="module")
def denoiser_checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny 32 px denoiser checkpoint: what the comparisons' baselines load when the task checks them."""
    cfg = compose_config(["experiment=denoiser_embedded", "net=tiny", "data.image_size=32"],
                         tmp_path_factory.mktemp("denoiser") / "run")
    module = instantiate(cfg.model)
    module.run_config = model_config(cfg)
    return save_checkpoint(module, tmp_path_factory.mktemp("denoiser") / "denoiser.ckpt")


@pytest.fixture(scope="module")
def rgm_checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny 32 px RGM image checkpoint: the prior the rgm_pnp experiments load when the task checks
    them."""
    cfg = compose_config(["experiment=cifar10_rgm_kld_d", "generator=ncsnpp_tiny", "discriminator=tiny",
                          "data.image_size=32"], tmp_path_factory.mktemp("rgm") / "run")
    module = instantiate(cfg.model)
    module.run_config = model_config(cfg)
    return save_checkpoint(module, tmp_path_factory.mktemp("rgm") / "rgm.ckpt")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_keeps_its_familys_invariants(experiment, tmp_path, denoiser_checkpoint,
                                                                    rgm_checkpoint):
    prior = [f"denoiser.path={denoiser_checkpoint}"] if experiment.startswith(("compare_", "embedded_")) else []
    prior += [f"ckpt_path={rgm_checkpoint}"] if experiment.startswith("rgm_pnp_") else []
    as_configured = compose_config([f"experiment={experiment}", *prior], tmp_path / experiment)
    small = ["net=tiny", "data.image_size=32"] if "net" in as_configured else []  # image networks, built small
    if as_configured.get("generator", {}).get("_target_") == "dirac.nets.NCSNppGenerator":
        small = ["generator=ncsnpp_tiny", "discriminator=tiny", "data.image_size=32"]
    cfg = compose_config([f"experiment={experiment}", *small, *prior], tmp_path / experiment)
    assert cfg.name == experiment
    method, task = instantiate(cfg.model), instantiate(cfg.task)
    task.check(method)
    FAMILY_CHECKS[method.family](cfg, method, task)
    if experiment.startswith("compare_"):  # every baseline is a row of the same table
        assert {"dps", "ddrm", "pnp_admm", "admm_tv"} <= set(task.restorers_of(method))


def test_the_method_bundle_brings_only_its_own_groups(tmp_path):
    cfg = compose_config([], tmp_path / "default")
    assert cfg.name == "quickstart" and cfg.model._target_ == "dirac.methods.dirac.DiracModule"
    assert {"net", "degradation", "noise", "loss", "severity", "sampler"} <= set(cfg) and "prior" not in cfg


def test_paper_presets_follow_the_reference(tmp_path):
    cfg = compose_config(["experiment=celeba_inpaint"], tmp_path / "inpaint")
    assert cfg.sampler.po.dt == 0.005 and cfg.sampler.po.output == "iterate" and cfg.sampler.po.guidance == "error"
    assert cfg.loss.delta_t == 0.0 and cfg.net.model_channels == 128
    cfg = compose_config(["experiment=imagenet_inpaint"], tmp_path / "imagenet")
    assert cfg.degradation.s_max == 30 and cfg.net.model_channels == 256
    assert cfg.callbacks.ema.decay == 0.9999


def test_rgm_image_presets_use_the_reference_networks(tmp_path):
    for name, size, generator, discriminator in (("cifar10_rgm_kld_sr", 32, "ncsnpp_32", "small"),
                                                 ("celebahq_rgm_kld_d", 256, "ncsnpp_256", "large")):
        cfg = compose_config([f"experiment={name}"], tmp_path / name)
        for group, option in (("generator", generator), ("discriminator", discriminator)):
            preset = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"), resolve=False)
            assert all(cfg[group][key] == value for key, value in preset.items() if not str(value).startswith("${"))
        assert cfg.data.image_size == size and cfg.generator.image_size == size
    cfg = compose_config(["experiment=cifar10_rgm_dswd_d"], tmp_path / "dswd")
    assert cfg.prior.projections == 1000 and cfg.prior.inner_steps == 10 and cfg.prior.on_features
    assert cfg.generator.model_channels == 128 and list(cfg.generator.channel_mult) == [1, 2, 2, 2]


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


def run_cli(tmp_path: Path, *overrides: str, full_error: bool = False) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.run([sys.executable, "-m", "dirac.run", *overrides, "logger=csv", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=180, cwd=Path(__file__).parents[2], env=env)


@pytest.mark.parametrize(("overrides", "message"), [
    (["mode=test", "ckpt_path=/nowhere/dirac.ckpt"], "error: checkpoint file /nowhere/dirac.ckpt does not exist"),
    (["task.restorers=[dirac_mmse]"], "error: unknown restorer(s) ['dirac_mmse']"),
])
def test_a_user_error_prints_its_message_alone_and_exits_1(tmp_path, overrides, message):
    result = run_cli(tmp_path, *overrides)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_hydra_full_error_shows_the_trace_of_a_user_error(tmp_path):
    result = run_cli(tmp_path, "mode=test", "ckpt_path=/nowhere/dirac.ckpt", full_error=True)
    assert result.returncode != 0 and "Traceback" in result.stderr and "does not exist" in result.stderr
