"""Toy RGM (MMD prior) trains under DDP with 2 CPU processes through `python -m dirac.run` and writes its outputs
once (slow: two processes start and rendezvous)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from dirac.checkpoints import load_checkpoint
from tests.framework.test_cli import environment, only, read_csv

DDP_TOY = ["experiment=toy_rgm_mmd", "logger=csv", "trainer.max_steps=10", "trainer.devices=2", "trainer.strategy=ddp",
           "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=5",
           "callbacks.model_checkpoint.every_n_train_steps=5", "task.num_samples=500", "task.scatter_points=100"]


@pytest.mark.slow
def test_toy_rgm_trains_under_ddp_on_two_cpu_processes_and_writes_outputs_once(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "dirac.run", *DDP_TOY], cwd=tmp_path, env=environment(tmp_path),
                          capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"exit code {done.returncode}:\n{log[-6000:]}"
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    run_dir = only(tmp_path.glob("outputs/*/*"))  # rank 1 runs in rank 0's folder
    assert (run_dir / "train_ddp_process_1.log").is_file()
    assert [row["model"] for row in read_csv(run_dir / "results.csv")] == ["samples"]
    assert (run_dir / "scatter.png").is_file() and (run_dir / "mode_counts.csv").is_file()
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 10  # G steps, not D steps
    assert load_checkpoint(run_dir / "checkpoints" / "rgm.ckpt", family="rgm")["dirac"]["family"] == "rgm"
    logged = [row for row in read_csv(run_dir / "csv" / "metrics.csv") if row.get("train/loss")]
    assert logged and all(math.isfinite(float(row["train/loss"])) for row in logged)
