"""The generation task on images: a 3-step RGM run with the tiny 16 px generator through the real pipeline writes the
sample grid and the FID/patch-SWD table (FID skipped, saying so, without the Inception weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from dirac.pipeline import run
from tests.framework.conftest import compose_config

IMAGE_TINY = ["experiment=cifar10_rgm_kld_d", "data=embedded", "data.image_size=16", "data.batch_size=4",
              "data.eval_batch_size=8", "generator=ncsnpp_tiny", "discriminator=tiny", "logger=csv",
              "trainer.max_steps=3", "trainer.enable_progress_bar=false", "callbacks.model_checkpoint.every_n_train_steps=3",
              "task.num_samples=6", "task.batch_size=4", "task.grid_images=4", "task.swd_images=4",
              "task.swd_patches_per_image=8"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _fresh_hydra():
    yield
    GlobalHydra.instance().clear()


def test_a_short_image_run_writes_the_grid_and_the_table_without_fid_weights(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DIRAC_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    cfg = compose_config(IMAGE_TINY, tmp_path / "outputs" / "run")
    outcome = run(cfg)
    out = Path(cfg.paths.output_dir)
    row = outcome["results"]["samples"]
    assert set(row) == {"swd"} and row["swd"] > 0
    assert (out / "samples.png").is_file() and Path(outcome["checkpoint"]).name == "rgm.ckpt"
    assert (out / "results.csv").read_text().splitlines()[0] == "model,fid,swd"
    table = (out / "results.md").read_text()
    assert "| samples | n/a |" in table and "FID: not computed" in table and "first 4 samples and 4 test images" in table


def test_sample_scores_give_fid_with_features_and_the_patch_swd_of_the_kept_images():
    from torchmetrics.image.fid import FrechetInceptionDistance

    from dirac.metrics import patch_swd
    from dirac.tasks.generation import SampleScores
    from tests.metrics.test_metrics_suite import TinyFeatures

    torch.manual_seed(0)
    real, fake = torch.rand(6, 3, 16, 16), torch.rand(5, 3, 16, 16) * 0.5
    scores = SampleScores(FrechetInceptionDistance(feature=TinyFeatures()), swd_images=4, patches_per_image=8)
    for images, is_real in ((real[:3], True), (real[3:], True), (fake, False)):
        scores.update(images, real=is_real)
    row = scores.compute()
    assert row["fid"] > 0 and scores.counts == {True: 6, False: 5}
    assert row["swd"] == pytest.approx(float(patch_swd(fake[:4], real[:4], patches_per_image=8)))
