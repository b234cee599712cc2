"""The generation task on images: a 3-step RGM run with the tiny 16 px generator through the real pipeline writes the
sample grid and the FID/patch-SWD table (FID skipped, saying so, without the Inception weights); `fid_reference`
selects the split whose statistics the FID uses (train by default, the paper's), the patch SWD staying on test
images."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torch import nn

from dirac.pipeline import run
from tests.framework.conftest import compose_config

IMAGE_TINY = ["experiment=cifar10_rgm_kld_d", "data=embedded", "data.image_size=16", "data.batch_size=4",
              "data.eval_batch_size=8", "generator=ncsnpp_tiny", "discriminator=tiny", "logger=csv",
              "trainer.max_steps=3", "trainer.enable_progress_bar=false",
              "callbacks.model_checkpoint.every_n_train_steps=3", "task.num_samples=6", "task.batch_size=4",
              "task.grid_images=4", "task.swd_images=4", "task.swd_patches_per_image=8"]


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
    assert "| samples | n/a |" in table and "FID: not computed" in table
    assert "first 4 samples and 4 test images" in table


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


class TwoSplits(L.LightningDataModule):
    """Dark train images and bright test images, 16 px: the split the FID's real statistics come from shows."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.train = 0.3 * torch.rand(10, 3, 16, 16, generator=generator)
        self.test = 0.7 + 0.3 * torch.rand(7, 3, 16, 16, generator=generator)

    def train_dataloader(self) -> list[dict]:
        return [{"image": images} for images in self.train.split(4)]

    def test_dataloader(self) -> list[dict]:
        return [{"image": images} for images in self.test.split(3)]


class UniformSampler(nn.Module):
    """A stand-in generative method: uniform 16 px images from the task's generator."""

    sample_shape = (3, 16, 16)

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # the task reads the device from the parameters

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(count, *self.sample_shape, generator=generator)


@pytest.mark.parametrize("reference", ["train", "test"])
def test_fid_reference_selects_the_split_of_the_fid_statistics_and_the_swd_stays_on_test(reference, tmp_path,
                                                                                         monkeypatch):
    from torchmetrics.image.fid import FrechetInceptionDistance

    from dirac.metrics import patch_swd
    from dirac.metrics.suite import to_uint8_rgb
    from dirac.tasks import generation
    from dirac.tasks.generation import GenerationTask
    from tests.metrics.test_metrics_suite import TinyFeatures

    torch.manual_seed(0)
    features = TinyFeatures()  # Inception's stand-in: the weights do not exist here
    monkeypatch.setattr(generation, "load_fid", lambda weights_dir: FrechetInceptionDistance(feature=features))
    data, task = TwoSplits(), GenerationTask(num_samples=6, batch_size=4, grid_images=4, swd_images=4,
                                             swd_patches_per_image=8, fid_reference=reference)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, accelerator="cpu", devices=1)
    row = task.evaluate(UniformSampler(), trainer, data, tmp_path)["samples"]
    samples = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(task.seed))
    for real in (data.train, data.test):
        fid = FrechetInceptionDistance(feature=features)
        fid.update(to_uint8_rgb(real), real=True)
        fid.update(to_uint8_rgb(samples), real=False)
        if real is getattr(data, reference):
            assert row["fid"] == pytest.approx(float(fid.compute()), rel=1e-6)
        else:
            assert row["fid"] != pytest.approx(float(fid.compute()), rel=1e-2)
    assert row["swd"] == pytest.approx(float(patch_swd(samples[:4], data.test[:4], patches_per_image=8)))
    count = {"train": 10, "test": 7}[reference]
    table = (tmp_path / "results.md").read_text()
    assert f"6 samples (seed 0) vs the statistics of {count} {reference} images" in table


def test_fid_reference_defaults_to_the_papers_train_statistics_and_refuses_other_splits():
    from dirac.tasks.generation import GenerationTask

    conf = Path(__file__).resolve().parents[2] / "conf" / "task" / "generation.yaml"
    assert GenerationTask().fid_reference == "train" and OmegaConf.load(conf).fid_reference == "train"
    with pytest.raises(ValueError, match="task.fid_reference must be one of"):
        GenerationTask(fid_reference="val")
