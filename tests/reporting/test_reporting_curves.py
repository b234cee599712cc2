"""Perception–distortion curves: CSV + PNG, wandb line plots, and the combined sweep summary."""

import pytest
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from dirac.reporting import combine_sweep, log_pd_curve, perception_key, read_results, write_pd_curve, write_results
from dirac.reporting.curves import run_labels
from dirac.reporting.files import read_csv

ROWS = [{"stop_t": 0.5, "psnr": 27.0, "swd": 0.2, "ssim": 0.8}, {"stop_t": 0.0, "psnr": 25.0, "swd": 0.1, "ssim": 0.7},
        {"stop_t": 0.25, "psnr": 26.0, "swd": 0.15, "ssim": 0.75}]
NOTES = {"clipping": "[0, 1]", "lpips_net": "vgg"}


def test_perception_measure_prefers_lpips_then_fid_then_swd():
    assert perception_key(ROWS) == "swd"
    assert perception_key([{**row, "lpips": 0.3, "fid": 9.0} for row in ROWS]) == "lpips"
    with pytest.raises(ValueError, match="fid"):
        perception_key(ROWS, "fid")


def test_curve_is_written_as_sorted_csv_and_png(tmp_path):
    paths = write_pd_curve(ROWS, tmp_path)
    rows = read_csv(paths["pd_curve.csv"])
    assert [float(row["stop_t"]) for row in rows] == [0.0, 0.25, 0.5]
    assert list(rows[0]) == ["stop_t", "psnr", "swd", "ssim"]
    with Image.open(paths["pd_curve.png"]) as image:
        assert image.format == "PNG" and image.size[0] > 500


def test_curve_rows_need_x_and_psnr(tmp_path):
    with pytest.raises(ValueError, match="'rho'"):
        write_pd_curve(ROWS, tmp_path, x="rho")


def test_curve_logging_is_a_no_op_off_wandb(tmp_path):
    log_pd_curve(None, ROWS)
    log_pd_curve(CSVLogger(tmp_path), ROWS)
    assert list(tmp_path.iterdir()) == []


def test_curve_is_logged_as_wandb_line_plots(wandb_logger):
    log_pd_curve(wandb_logger, ROWS, key="pd")
    summary = dict(wandb_logger.experiment.summary)
    assert {"pd/psnr_vs_stop_t_table", "pd/swd_vs_stop_t_table", "pd/psnr_vs_swd_table"} <= set(summary)


def _fake_run(directory, stop_t, psnr):
    """A sweep job folder as Hydra and the evaluation leave it: overrides and a results CSV."""
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text(f"- sampler.stop_t={stop_t}\n- seed=1\n")
    results = {"dirac_po": {"psnr": psnr, "swd": 0.1 * psnr, "ssim": 0.7}, "measurement": {"psnr": 20.0, "swd": 0.5}}
    write_results(results, directory, notes=NOTES)
    return directory


def test_sweep_runs_are_combined_into_one_csv_and_plot(tmp_path):
    runs = [_fake_run(tmp_path / "0", 0.25, 26.0), _fake_run(tmp_path / "1", 0.5, 27.0)]
    paths = combine_sweep(runs, tmp_path / "summary")
    rows = read_csv(paths["sweep.csv"])
    assert [(row["run"], row["method"]) for row in rows] == [  # labelled by what differs; seed=1 is shared
        ("sampler.stop_t=0.25", "dirac_po"), ("sampler.stop_t=0.25", "measurement"),
        ("sampler.stop_t=0.5", "dirac_po"), ("sampler.stop_t=0.5", "measurement")]
    assert float(rows[2]["psnr"]) == 27.0 and rows[1]["lpips"] == ""
    with Image.open(paths["sweep.png"]) as image:
        assert image.format == "PNG"
    assert read_results(runs[0] / "results.csv")["dirac_po"]["psnr"] == 26.0


def test_sweep_without_results_names_the_run(tmp_path):
    (tmp_path / "0").mkdir()
    with pytest.raises(ValueError, match="results.csv"):
        combine_sweep([tmp_path / "0"], tmp_path)


def test_a_single_run_or_identical_runs_keep_distinct_labels(tmp_path):
    single = [_fake_run(tmp_path / "a" / "0", 0.25, 26.0)]
    assert run_labels(single) == ["sampler.stop_t=0.25,seed=1"]
    twins = [_fake_run(tmp_path / "b" / "0", 0.25, 26.0), _fake_run(tmp_path / "b" / "1", 0.25, 26.0)]
    assert run_labels(twins) == ["0", "1"]
