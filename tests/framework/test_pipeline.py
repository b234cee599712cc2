"""The real pipeline end to end on tiny settings: train, calibrate, test, files on disk, checkpoints, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from dirac.checkpoints import load_checkpoint
from dirac.errors import CheckpointError
from dirac.pipeline import run


def read_table(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as handle:
        return {row["method"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run shared by the tests of this module."""
    from tests.framework.conftest import TINY, compose_config

    root = tmp_path_factory.mktemp("pipeline")
    cfg = compose_config(TINY, root / "outputs" / "train")
    outcome = run(cfg)
    return cfg, outcome, root


def test_training_run_writes_config_results_curve_images_and_checkpoints(trained):
    cfg, outcome, _ = trained
    out = Path(cfg.paths.output_dir)
    table = read_table(out / "results.csv")
    assert set(table) == {"measurement", "dirac_do", "dirac_po"}
    assert {"psnr", "ssim", "swd", "data_consistency"} <= set(table["dirac_do"])
    assert (out / "results.md").read_text().count("|") > 10
    assert (out / "pd_curve.csv").is_file() and (out / "pd_curve.png").stat().st_size > 1000
    assert len(list((out / "images").glob("*.png"))) == 4
    assert (out / "csv" / "metrics.csv").is_file()
    curve = list(csv.DictReader((out / "learning_curve.csv").open()))
    assert [int(row["step"]) for row in curve] == [12, 24] and (out / "learning_curve.png").stat().st_size > 1000
    assert {"loss", "psnr_measurement", "psnr_dirac_do", "psnr_dirac_po"} <= set(curve[0])
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "checkpoints" / "dirac.ckpt").is_file()


def test_checkpoint_carries_family_config_calibration_and_signature(trained):
    cfg, outcome, _ = trained
    assert Path(outcome["checkpoint"]).name == "dirac.ckpt"
    checkpoint = load_checkpoint(outcome["checkpoint"])
    stored = checkpoint["dirac"]
    assert stored["family"] == "dirac" and stored["format_version"] == 2
    assert sorted(stored["calibration"]) == ["dirac_do", "dirac_po"]  # TINY turns on the PO calibration
    grid = {0.25, 0.5, 0.75, 1.0}  # the steps of the calibration pass at dt 0.25
    assert {stored["calibration"]["dirac_do"]["stop_t"], stored["calibration"]["dirac_po"]["stop_t"]} <= grid
    assert stored["config"]["degradation"]["_target_"].endswith("GaussianBlur")
    assert stored["config"]["model"]["_target_"] == "dirac.methods.dirac.DiracModule"
    assert stored["signature"]["noise"]["sigma_max"] == 0.05


def test_mode_test_reproduces_the_training_runs_numbers(trained, tiny_config):
    cfg, outcome, root = trained
    again = run(tiny_config("mode=test", f"ckpt_path={outcome['checkpoint']}", run="eval"))
    assert again["results"]["dirac_do"]["psnr"] == pytest.approx(outcome["results"]["dirac_do"]["psnr"], abs=1e-4)
    assert again["results"]["measurement"]["psnr"] == pytest.approx(outcome["results"]["measurement"]["psnr"], abs=1e-6)
    assert again["results"]["dirac_po"]["psnr"] == pytest.approx(outcome["results"]["dirac_po"]["psnr"], abs=1e-4)


def test_mode_test_with_a_fixed_po_stop_uses_the_configured_stop(trained, tiny_config):
    _, outcome, _ = trained
    calibrated = load_checkpoint(outcome["checkpoint"])["dirac"]["calibration"]["dirac_po"]["stop_t"]
    fixed = 0.25 if calibrated != 0.25 else 0.75
    cfg = tiny_config("mode=test", f"ckpt_path={outcome['checkpoint']}", "sampler.po.auto_stop=false",
                      f"sampler.po.stop_t={fixed}", run="fixed")
    run(cfg)
    assert f"dirac_po stop_t: {fixed:.3f}" in (Path(cfg.paths.output_dir) / "results.md").read_text()


def test_incompatible_degradation_is_refused_naming_the_difference(trained, tiny_config):
    _, outcome, _ = trained
    with pytest.raises(ValueError, match="degradation"):
        run(tiny_config("mode=test", f"ckpt_path={outcome['checkpoint']}", "degradation=gaussian_inpainting",
                        run="bad"))
    with pytest.raises(ValueError, match="image_size"):
        run(tiny_config("mode=test", f"ckpt_path={outcome['checkpoint']}", "data.image_size=64", run="bad2"))


def test_truncated_and_foreign_checkpoints_get_clear_errors(trained, tmp_path):
    _, outcome, _ = trained
    data = Path(outcome["checkpoint"]).read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not written by dirac"):
        load_checkpoint(foreign)
    assert Path(outcome["checkpoint"]).read_bytes() == data  # nothing already written is touched


def test_resume_continues_from_last_checkpoint_without_losing_steps(tiny_config):
    # the quickstart's augmentation, a Chain of Dihedral and Colour: its random states are saved and restored too
    first = tiny_config("trainer.max_steps=12", "model.scheduler=null", run="first")
    run(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["global_step"] == 12
    second = tiny_config("resume=true", "model.scheduler=null", run="second")
    outcome = run(second)
    resumed = load_checkpoint(Path(second.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 24
    assert outcome["results"]["dirac_do"]["psnr"] > 0


def test_resuming_a_one_cycle_schedule_with_another_length_is_refused(tiny_config):
    first = tiny_config("trainer.max_steps=12", run="first")  # the quickstart trains with a one-cycle schedule
    run(first)
    with pytest.raises(CheckpointError, match="schedule runs 12 steps but trainer.max_steps is 24"):
        run(tiny_config("resume=true", run="second"))
