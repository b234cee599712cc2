"""The denoising task: seeded per-image noise (batch-size independent tables), the noisy baseline, files, wandb,
the check of the method, and the pipeline end to end with a denoiser config (train, test, checkpoints)."""

from __future__ import annotations

import csv
import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.loggers import WandbLogger

from dirac.checkpoints import load_checkpoint, module_from_checkpoint, save_checkpoint
from dirac.data import EmbeddedSource, ImageDataModule
from dirac.errors import CheckpointError
from dirac.methods.base import Method
from dirac.methods.denoiser import DenoiserModule
from dirac.nets import NCSNpp
from dirac.pipeline import build, run
from dirac.tasks.denoising import DenoisingTask, curve_rows, log_denoising_curve
from tests.framework.conftest import TINY, compose_config

# A few-second denoiser run: the embedded experiment at 16 px, 24 steps (EMA on, as the experiment sets it).
DENOISER_TINY = [
    "experiment=denoiser_embedded",
    "logger=csv",
    "trainer.max_steps=24",
    "trainer.val_check_interval=12",
    "trainer.enable_progress_bar=false",
    "callbacks.model_checkpoint.every_n_train_steps=12",
    "data.image_size=16",
    "data.source.downscale=4.0",
    "data.batch_size=8",
    "data.eval_batch_size=32",
    "task.sigmas=[0.1,0.5]",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_module() -> DenoiserModule:
    torch.manual_seed(0)
    net = NCSNpp(3, 3, 16, model_channels=16, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), dropout=0.0)
    return DenoiserModule(net, partial(torch.optim.Adam, lr=1e-3)).eval()


def trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kwargs)


def data(eval_batch_size: int) -> ImageDataModule:
    return ImageDataModule(partial(EmbeddedSource, downscale=4.0), image_size=16, batch_size=8,
                           eval_batch_size=eval_batch_size, seed=0)


def test_table_does_not_depend_on_the_eval_batch_size(tmp_path):
    module, task = tiny_module(), DenoisingTask([1.0, 0.05, 0.2])  # the first 16 test images (ordered eval loader)
    one = task.evaluate(module, trainer(limit_test_batches=16), data(1), tmp_path / "one")
    four = task.evaluate(module, trainer(limit_test_batches=4), data(4), tmp_path / "four")
    assert list(one) == ["sigma=0.05", "sigma=0.2", "sigma=1"]
    for row in one:
        assert one[row] == pytest.approx(four[row], rel=1e-6, abs=1e-9), row
        assert one[row]["psnr_noisy"] == four[row]["psnr_noisy"]  # the noise itself is identical
    assert (tmp_path / "one" / "results.md").read_text() == (tmp_path / "four" / "results.md").read_text()


def test_noisy_baseline_is_the_psnr_of_x0_plus_sigma_z_and_files_are_written(tmp_path):
    results = DenoisingTask([0.05, 0.1, 1.0]).evaluate(tiny_module(), trainer(), data(32), tmp_path)
    for sigma in (0.05, 0.1):  # clipping barely helps at small sigma: about -20 log10(sigma) dB
        noisy = results[f"sigma={sigma:g}"]["psnr_noisy"]
        assert -20 * math.log10(sigma) - 0.05 < noisy < -20 * math.log10(sigma) + 1.0
    assert results["sigma=1"]["psnr_noisy"] < results["sigma=0.1"]["psnr_noisy"] - 10
    row = results["sigma=0.1"]
    assert row["psnr_gain"] == pytest.approx(row["psnr"] - row["psnr_noisy"])
    with (tmp_path / "results.csv").open() as handle:
        table = {line["method"]: line for line in csv.DictReader(handle)}
    assert set(table) == {"sigma=0.05", "sigma=0.1", "sigma=1"}
    assert float(table["sigma=0.1"]["psnr_noisy"]) == pytest.approx(row["psnr_noisy"])
    assert "| sigma=0.1 |" in (tmp_path / "results.md").read_text()
    with (tmp_path / "denoising_curve.csv").open() as handle:
        curve = list(csv.DictReader(handle))
    assert [float(point["sigma"]) for point in curve] == [0.05, 0.1, 1.0]
    assert float(curve[1]["psnr"]) == pytest.approx(row["psnr"])
    assert (tmp_path / "denoising_curve.png").stat().st_size > 1000


def test_curve_goes_to_wandb_when_the_logger_is_wandb(monkeypatch):
    logged = []
    logger = object.__new__(WandbLogger)  # no wandb run: only log_metrics is called
    monkeypatch.setattr(WandbLogger, "log_metrics", lambda self, metrics, step=None: logged.append(metrics))
    results = {"sigma=0.1": {"psnr": 25.0, "psnr_noisy": 20.0, "psnr_gain": 5.0},
               "sigma=1": {"psnr": 15.0, "psnr_noisy": 7.0, "psnr_gain": 8.0}}
    rows = curve_rows(results, [1.0, 0.1])
    assert [row["sigma"] for row in rows] == [0.1, 1.0]
    log_denoising_curve(logger, rows)
    log_denoising_curve(None, rows)  # no logger: nothing, no error
    assert len(logged) == 1 and list(logged[0]) == ["denoising_curve/psnr_vs_sigma"]


def test_check_refuses_a_method_without_a_denoiser():
    class Plain(Method):
        family = "plain"

    with pytest.raises(ValueError, match="needs a method with a denoiser.*'plain' method has none"):
        DenoisingTask().check(Plain())
    DenoisingTask().check(tiny_module())


@pytest.mark.parametrize("sigmas", [[], [0.1, -0.2], [0.1, float("nan")], [0.1, 0.1]])
def test_bad_noise_levels_are_refused(sigmas):
    with pytest.raises(ValueError, match="task.sigmas"):
        DenoisingTask(sigmas)


def test_preview_is_a_fit_callback_unless_switched_off():
    assert len(DenoisingTask().fit_callbacks(tiny_module())) == 1
    assert DenoisingTask(preview_sigma=None).fit_callbacks(tiny_module()) == []
    with pytest.raises(ValueError, match="preview_sigma"):
        DenoisingTask(preview_sigma=0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny denoiser run through the real pipeline, shared by the tests below."""
    root = tmp_path_factory.mktemp("denoiser_pipeline")
    cfg = compose_config(DENOISER_TINY, root / "outputs" / "train")
    return cfg, run(cfg), root


def test_pipeline_trains_and_writes_results_curve_and_checkpoint(trained):
    cfg, outcome, _ = trained
    out = Path(cfg.paths.output_dir)
    assert set(outcome["results"]) == {"sigma=0.1", "sigma=0.5"}
    assert outcome["monitored"] == outcome["results"]["sigma=0.1"]["psnr"]
    assert (out / "results.md").is_file() and (out / "results.csv").is_file()
    assert (out / "denoising_curve.csv").is_file() and (out / "denoising_curve.png").is_file()
    assert Path(outcome["checkpoint"]) == out / "checkpoints" / "denoiser.ckpt"
    assert (out / "checkpoints" / "last.ckpt").is_file()
    logged = (out / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "val/loss", "val/psnr_noisy", "val/psnr_denoised"} <= set(logged)


def test_checkpoint_rebuilds_an_equal_denoiser_module(trained):
    cfg, outcome, _ = trained
    checkpoint = load_checkpoint(outcome["checkpoint"])
    stored = checkpoint["dirac"]
    assert stored["family"] == "denoiser" and stored["signature"]["data"]["image_size"] == 16
    assert "degradation" not in stored["config"] and "sampler" not in stored["config"]
    module = module_from_checkpoint(checkpoint)
    assert isinstance(module, DenoiserModule)
    state = checkpoint["state_dict"]
    assert set(module.state_dict()) == set(state)
    assert all(torch.equal(value, state[key]) for key, value in module.state_dict().items())


def test_ema_callback_is_configured_and_mode_test_reproduces_the_results(trained):
    cfg, outcome, root = trained
    assert any(isinstance(callback, EMAWeightAveraging) for callback in build(cfg).trainer.callbacks)
    again = run(compose_config([*DENOISER_TINY, "mode=test", f"ckpt_path={outcome['checkpoint']}"],
                               root / "outputs" / "eval"))
    for row, values in outcome["results"].items():
        assert again["results"][row] == pytest.approx(values, abs=1e-5)


def test_mode_test_refuses_another_familys_checkpoint(trained):
    _, outcome, root = trained
    dirac_cfg = compose_config(TINY, root / "outputs" / "dirac")
    dirac = instantiate(dirac_cfg.model)
    path = save_checkpoint(dirac, root / "dirac.ckpt")
    with pytest.raises(CheckpointError, match="'dirac' checkpoint, but a 'denoiser' checkpoint is needed"):
        run(compose_config([*DENOISER_TINY, "mode=test", f"ckpt_path={path}"], root / "outputs" / "refused"))
    with pytest.raises(CheckpointError, match="'denoiser' checkpoint, but a 'dirac' checkpoint is needed"):
        run(compose_config([*TINY, "mode=test", f"ckpt_path={outcome['checkpoint']}"], root / "outputs" / "refused2"))
