"""k-fold cross-validation by photograph (issue 30): one ordinary run per fold into fold_<i>/, the report over the
folds (per fold, mean, worst fold, per-photograph difference), and bad input refused before any training."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dirac.checkpoints.stored import check_stored
from dirac.cross_validation import CrossValidation
from dirac.pipeline import model_config, run
from dirac.reporting.files import csv_text, write_text

pytestmark = pytest.mark.usefixtures("one_thread")
SCENES = {"astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "motorcycle"}
# Restorer outputs the fake training gives each test photograph: Dirac-DO gains len(scene name) / 10 dB over TV.
FAKE_TV_PSNR = 25.0


class FakeTraining:
    """Stands in for `pipeline.train`: records each fold's config and writes per-image results of known values."""

    def __init__(self) -> None:
        self.configs: list[DictConfig] = []

    def __call__(self, config: DictConfig) -> dict:
        self.configs.append(config)
        source = instantiate(config.data).source
        names = source.dataset("test").names
        psnrs = {"admm_tv": [FAKE_TV_PSNR] * len(names),
                 "dirac_do": [FAKE_TV_PSNR + len(source.group_of(name)) / 10 for name in names]}
        rows = [{"image": name, "method": method, "psnr": value, "ssim": 0.5}
                for method, values in psnrs.items() for name, value in zip(names, values)]
        write_text(Path(config.paths.output_dir) / "per_image.csv", csv_text(["image", "method", "psnr", "ssim"], rows))
        return {"results": {method: {"psnr": sum(values) / len(values), "ssim": 0.5, "swd": 0.01}
                            for method, values in psnrs.items()}}


def fake_training_elsewhere(config: DictConfig) -> dict:
    """`FakeTraining` in whichever process runs it, leaving that process's id and torch threads in the fold folder."""
    write_text(Path(config.paths.output_dir) / "process.txt", f"{os.getpid()} {torch.get_num_threads()}")
    return FakeTraining()(config)


def rows_of(path: Path, scope: str) -> list[dict[str, str]]:
    return [row for row in csv.DictReader(path.open()) if row["scope"] == scope]


def test_every_fold_runs_into_its_folder_and_the_report_has_the_closed_form_differences(tiny_config):
    cfg = tiny_config("experiment=embedded_cv", "cv.folds=4")
    fake, closed = FakeTraining(), []
    outcome = CrossValidation(folds=4).run(cfg, fake, lambda: closed.append(True))
    out = Path(cfg.paths.output_dir)
    assert len(fake.configs) == 4 and len(closed) == 4
    for index, config in enumerate(fake.configs):
        assert config.paths.output_dir == str(out / f"fold_{index}") and config.cv is None
        assert config.data.source.fold.index == index and config.task.per_image
    photographs = rows_of(out / "cv_results.csv", "difference")
    per_photo = {row["photograph"]: float(row["psnr"]) for row in photographs if row["photograph"]}
    assert set(per_photo) == SCENES  # every photograph tested exactly once
    assert per_photo == {scene: pytest.approx(len(scene) / 10) for scene in SCENES}
    fold_gains = [float(row["psnr"]) for row in photographs if not row["photograph"]]
    mean = {row["method"]: float(row["psnr"]) for row in rows_of(out / "cv_results.csv", "mean")}
    assert mean["dirac_do"] - mean["admm_tv"] == pytest.approx(sum(fold_gains) / 4)
    assert outcome["monitored"] == pytest.approx(sum(fold_gains) / 4)
    worst = rows_of(out / "cv_results.csv", "worst")
    assert int(worst[0]["fold"]) == fold_gains.index(min(fold_gains))
    report = (out / "cv_results.md").read_text()
    assert f"{sum(fold_gains) / 4:+.2f} dB on the mean over folds" in report and "| motorcycle |" in report
    assert (out / "cv_results.png").stat().st_size > 1000


def test_folds_trained_in_parallel_processes_give_the_same_report(tiny_config, tmp_path):
    """cv.jobs=2: every fold runs in a spawned process with its share of the threads; the report is the one-by-one
    report, byte for byte."""
    reports = {}
    for jobs in (1, 2):
        cfg = tiny_config("experiment=embedded_cv", f"cv.jobs={jobs}", f"paths.output_dir={tmp_path / str(jobs)}")
        instantiate(cfg.cv).run(cfg, fake_training_elsewhere, os.sync)  # any importable function closes a fold
        reports[jobs] = (tmp_path / str(jobs) / "cv_results.csv").read_text()
        processes = [(tmp_path / str(jobs) / f"fold_{index}" / "process.txt").read_text().split() for index in range(4)]
        assert (all(pid == str(os.getpid()) for pid, _ in processes) if jobs == 1
                else not any(pid == str(os.getpid()) for pid, _ in processes))
        assert jobs == 1 or all(int(threads) == max(1, torch.get_num_threads() // 2) for _, threads in processes)
    assert reports[1] == reports[2]


class FakeTrainingWithDenoiser(FakeTraining):
    """`FakeTraining` that also stands in for a denoiser run: it writes the checkpoint file where the pipeline would
    and records the order of the runs."""

    def __init__(self) -> None:
        super().__init__()
        self.denoiser_configs: list[DictConfig] = []
        self.order: list[str] = []

    def __call__(self, config: DictConfig) -> dict:
        if config.model._target_.endswith("DenoiserModule"):
            self.denoiser_configs.append(config)
            self.order.append(config.paths.output_dir)
            checkpoint = Path(config.paths.output_dir) / "checkpoints" / "denoiser.ckpt"
            write_text(checkpoint, "a denoiser")
            return {"results": {}, "checkpoint": str(checkpoint)}
        self.order.append(config.paths.output_dir)
        return super().__call__(config)


PNP_PER_FOLD = ["+baseline@task.baselines.pnp_admm=pnp_admm", 'cv.denoiser=["experiment=denoiser_embedded"]']


@pytest.mark.parametrize("overrides", [["experiment=embedded_cv", *PNP_PER_FOLD], ["experiment=embedded_cv_pnp"]])
def test_each_fold_trains_its_pnp_denoiser_on_its_own_training_photographs_first(tiny_config, overrides):
    """cv.denoiser (on the command line, or experiment=embedded_cv_pnp): every fold's PnP-ADMM loads a denoiser
    trained, just before the fold, on that fold's data (its training photographs), so no prior has seen the
    photographs the fold tests on."""
    cfg = tiny_config(*overrides, "cv.jobs=1")
    fake = FakeTrainingWithDenoiser()
    instantiate(cfg.cv).run(cfg, fake, lambda: None)
    out = Path(cfg.paths.output_dir)
    assert fake.order == [str(out / f"fold_{index}" / part) for index in range(4) for part in ("denoiser", "")]
    for index, (denoiser, fold) in enumerate(zip(fake.denoiser_configs, fake.configs)):
        assert denoiser.name == "denoiser_embedded" and denoiser.trainer.max_steps == 500 and denoiser.cv is None
        assert denoiser.data == fold.data and denoiser.data.source.fold.index == index
        assert denoiser.metrics == fold.metrics and set(denoiser.logger) == set(fold.logger)
        # each run logs into its own folder (the denoiser's metrics.csv is not overwritten by the fold's)
        assert {node.save_dir for node in denoiser.logger.values()} == {denoiser.paths.output_dir}
        assert {node.save_dir for node in fold.logger.values()} == {fold.paths.output_dir}
        assert denoiser.trainer.accelerator == fold.trainer.accelerator
        expected = str(out / f"fold_{index}" / "denoiser" / "checkpoints" / "denoiser.ckpt")
        assert fold.task.baselines.pnp_admm.denoiser.path == expected
        train_photos = set(instantiate(denoiser.data).source.split_groups()["train"])
        assert not train_photos & set(instantiate(fold.data).source.split_groups()["test"])


def test_the_long_recipe_s_gpu_command_runs_every_fold_with_its_own_pnp_denoiser(tiny_config):
    """experiments/gpu_cv.sh's configuration (embedded_deblur under the folds, a denoiser per fold) is accepted and
    gives every fold the long recipe and a PnP-ADMM on the fold's own denoiser (checked here: no GPU runs it)."""
    cfg = tiny_config("experiment=embedded_deblur", "cv=kfold", 'cv.denoiser=["experiment=denoiser_embedded"]')
    fake = FakeTrainingWithDenoiser()
    instantiate(cfg.cv).run(cfg, fake, lambda: None)
    assert len(fake.configs) == len(fake.denoiser_configs) == 4
    for fold, denoiser in zip(fake.configs, fake.denoiser_configs):
        assert fold.net.model_channels == 24 and fold.name == "embedded_deblur"
        assert fold.task.baselines.pnp_admm.denoiser.path == str(
            Path(denoiser.paths.output_dir) / "checkpoints" / "denoiser.ckpt")


def test_a_fold_checkpoint_s_stored_config_passes_the_checkpoint_check(tiny_config):
    """A fold's config names its split (dirac.data.source.KFold) in the data part every checkpoint stores; the loader's
    safety check must accept it, or no fold's checkpoint (Dirac's, or the denoiser its PnP-ADMM loads) could be used."""
    cfg = tiny_config("experiment=embedded_cv", "cv.jobs=1", *PNP_PER_FOLD)
    fake = FakeTrainingWithDenoiser()
    instantiate(cfg.cv).run(cfg, fake, lambda: None)
    for config in (*fake.configs, *fake.denoiser_configs):
        assert config.data.source.fold._target_ == "dirac.data.source.KFold"
        check_stored(model_config(config))


def test_a_fold_whose_denoiser_is_not_where_its_baselines_look_stops(tiny_config):
    cfg = tiny_config("experiment=embedded_cv", "cv.jobs=1", *PNP_PER_FOLD)
    fake = FakeTrainingWithDenoiser()

    def misplaced(config: DictConfig) -> dict:
        outcome = fake(config)
        return {**outcome, "checkpoint": "elsewhere.ckpt"} if "checkpoint" in outcome else outcome

    with pytest.raises(RuntimeError, match="denoiser run wrote 'elsewhere.ckpt'"):
        instantiate(cfg.cv).run(cfg, misplaced, lambda: None)
    assert not fake.configs


@pytest.mark.parametrize("overrides, message", [
    (["cv.folds=9"], "9-fold cross-validation with 2 validation photographs needs at least 9 photographs, got 8"),
    (["data.source.test=[chelsea,lena]"], r"unknown embedded photo\(s\) \['lena'\]"),
    (["cv.validation_groups=1"], "several photographs"),
    (["~task.baselines.admm_tv"], r"cv.reference='admm_tv' is not among task.baselines \[\]"),
    (["mode=test"], "use mode=train"),
    (["resume=true"], "drop resume"),
    (["cv.jobs=0"], "cv.jobs must be at least 1"),
    (["+baseline@task.baselines.pnp_admm=pnp_admm"], r"baselines \['pnp_admm'\] need a denoiser: pass 'cv.denoiser"),
    (['cv.denoiser=["experiment=denoiser_embedded"]'], "no baseline among .* uses one"),
])
def test_bad_input_is_refused_before_any_training(tiny_config, overrides, message):
    cfg = tiny_config("experiment=embedded_cv", *overrides)
    fake = FakeTraining()
    with pytest.raises(ValueError, match=message):
        instantiate(cfg.cv).run(cfg, fake, lambda: None)
    assert not fake.configs


def test_a_folder_with_too_few_images_for_the_folds_is_refused_before_any_training(tiny_config, tmp_path):
    from tests.data.conftest import write_numbered

    write_numbered(tmp_path / "mine", 3)
    cfg = tiny_config("experiment=embedded_cv", "data=folder", f"data.root={tmp_path / 'mine'}", "data.image_size=16")
    fake = FakeTraining()
    with pytest.raises(ValueError, match="mine.*4-fold cross-validation .* needs at least 4 images, got 3"):
        instantiate(cfg.cv).run(cfg, fake, lambda: None)
    assert not fake.configs


@pytest.mark.slow
def test_tiny_cross_validation_end_to_end_writes_every_fold_and_the_report(tiny_config):
    """The real pipeline per fold (2 folds, 16 px, 6 steps), each fold's PnP-ADMM denoiser trained first on its own
    training photographs (6 steps): each fold's results and checkpoints, then the report."""
    tiny_denoiser = ('cv.denoiser=["experiment=denoiser_embedded","trainer.max_steps=6","trainer.val_check_interval=6",'
                     '"callbacks.model_checkpoint.every_n_train_steps=6","task.sigmas=[0.1]"]')
    cfg = tiny_config("experiment=embedded_cv", "cv.folds=2", "data.image_size=16", "data.source.downscale=8",
                      "trainer.max_steps=6", "trainer.val_check_interval=6",
                      "callbacks.model_checkpoint.every_n_train_steps=6", "task.baselines.admm_tv.iterations=10",
                      "task.baselines.admm_tv.grids.lam=[0.01,0.04]", "task.baselines.admm_tv.grids.rho=[0.5,2.0]",
                      "+baseline@task.baselines.pnp_admm=pnp_admm", "task.baselines.pnp_admm.iterations=3",
                      "task.baselines.pnp_admm.grids.rho=[0.5,2.0]", tiny_denoiser)
    outcome = run(cfg)
    out = Path(cfg.paths.output_dir)
    for index in range(2):
        assert (out / f"fold_{index}" / "results.csv").is_file()
        assert (out / f"fold_{index}" / "checkpoints" / "dirac.ckpt").is_file()
        assert (out / f"fold_{index}" / "denoiser" / "checkpoints" / "denoiser.ckpt").is_file()
        assert (out / f"fold_{index}" / "denoiser" / "csv" / "metrics.csv").is_file()  # its own training log
    photographs = {row["photograph"] for row in rows_of(out / "cv_results.csv", "photograph")}
    assert photographs == SCENES
    assert {row["method"] for row in rows_of(out / "cv_results.csv", "mean")} == {
        "measurement", "dirac_do", "dirac_po", "admm_tv", "pnp_admm"}
    assert outcome["monitored"] == pytest.approx(outcome["results"]["dirac_do"]["psnr"]
                                                 - outcome["results"]["admm_tv"]["psnr"])

