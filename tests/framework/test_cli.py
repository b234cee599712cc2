"""`python -m dirac.run` as a user runs it, in subprocesses: a multirun sweep with its summary and wandb grouping,
DDP on CPU, and resuming a killed training run (SPEC §4)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import pytest
from omegaconf import OmegaConf

from dirac.checkpoints import load_checkpoint
from tests.framework.conftest import TINY

# TINY with one validation and one test batch of 4 images: a job takes seconds, not minutes, on 2 loaded cores.
FAST = [*TINY, "data.eval_batch_size=4", "task.save_images=2",
        "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1"]
METHODS = {"measurement", "dirac_do", "dirac_po"}
T = TypeVar("T")


def overrides(*extra: str) -> list[str]:
    """FAST with `extra` appended; an extra override of a key FAST sets replaces FAST's."""
    merged = {item.split("=", 1)[0].lstrip("+"): item for item in (*FAST, *extra)}
    return list(merged.values())


def environment(root: Path) -> dict[str, str]:
    """The caller's environment with outputs, sweeps and temporary files under `root`, wandb offline, one thread."""
    env = {key: value for key, value in os.environ.items() if key != "WANDB_API_KEY"}
    (root / "tmp").mkdir(exist_ok=True)
    env.update(DIRAC_OUTPUTS=str(root / "outputs"), DIRAC_MULTIRUN=str(root / "multirun"), TMPDIR=str(root / "tmp"),
               OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true")
    return env


def command(*args: str) -> list[str]:
    """The command line of `python -m dirac.run`, with flags (e.g. `-m`) first and FAST overrides merged in."""
    flags = [arg for arg in args if arg.startswith("-")]
    return [sys.executable, "-m", "dirac.run", *flags, *overrides(*(arg for arg in args if not arg.startswith("-")))]


def dirac_run(root: Path, *args: str, timeout: float = 300) -> str:
    """Run the CLI in `root` to completion, assert exit code 0 (showing the log's tail if not), return the log."""
    done = subprocess.run(command(*args), cwd=root, env=environment(root), capture_output=True, text=True,
                          timeout=timeout)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"exit code {done.returncode}:\n{log[-6000:]}"
    return log


def only(paths: Iterable[Path]) -> Path:
    """The single path of an iterable, failing with the list otherwise."""
    paths = list(paths)
    assert len(paths) == 1, f"expected exactly one path, found {paths}"
    return paths[0]


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header."""
    with path.open() as handle:
        return list(csv.DictReader(handle))


def results(path: Path) -> dict[str, float]:
    """method -> PSNR of a results.csv."""
    return {row["method"]: float(row["psnr"]) for row in read_csv(path)}


def sweep_jobs(root: Path) -> tuple[Path, list[Path]]:
    """The single sweep folder `multirun/<name>/<time>` below `root` and its job folders in job order."""
    sweep = only(root.glob("multirun/*/*"))
    return sweep, sorted((path for path in sweep.iterdir() if path.is_dir()), key=lambda path: int(path.name))


def wandb_run_record(path: Path):
    """The run record (run_id, run_group, job_type) that wandb writes first into an offline `run-<id>.wandb` log.

    The log is wandb's LevelDB-style record file: a 7-byte header, then records of a 4-byte checksum, a 2-byte
    little-endian length, a 1-byte type and a serialised `wandb_internal_pb2.Record`.
    """
    from wandb.proto.wandb_internal_pb2 import Record

    data, offset = path.read_bytes(), 7
    while offset + 7 <= len(data):
        length = int.from_bytes(data[offset + 4 : offset + 6], "little")
        record = Record.FromString(data[offset + 7 : offset + 7 + length])
        if record.HasField("run"):
            return record.run
        offset += 7 + length
    raise AssertionError(f"no run record in {path}")


def test_multirun_writes_one_folder_per_job_and_a_sweep_summary_of_both(tmp_path):
    dirac_run(tmp_path, "-m", "sampler.po.auto_stop=false", "sampler.po.stop_t=0.25,0.5", "trainer.max_steps=6")
    sweep, jobs = sweep_jobs(tmp_path)
    assert [job.name for job in jobs] == ["0", "1"]
    per_job = {}
    for job, stop_t in zip(jobs, (0.25, 0.5)):
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        assert config.sampler.po.stop_t == stop_t and config.trainer.max_steps == 6
        per_job[stop_t] = results(job / "results.csv")
        assert set(per_job[stop_t]) == METHODS
    # Only the PO stop differs between the jobs: same seed, same training, same measurements and DO output.
    assert per_job[0.25]["measurement"] == per_job[0.5]["measurement"]
    assert per_job[0.25]["dirac_do"] == pytest.approx(per_job[0.5]["dirac_do"], abs=1e-6)
    assert per_job[0.25]["dirac_po"] != per_job[0.5]["dirac_po"]
    summary = read_csv(sweep / "sweep.csv")
    assert len(summary) == 2 * len(METHODS)
    for stop_t, psnrs in per_job.items():
        rows = [row for row in summary if f"sampler.po.stop_t={stop_t}" in row["run"].split(",")]
        assert {row["method"]: float(row["psnr"]) for row in rows} == pytest.approx(psnrs)
    assert (sweep / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep / "sweep.png").stat().st_size > 5000


def test_multirun_with_wandb_gives_each_job_its_own_offline_run_in_one_group(tmp_path):
    dirac_run(tmp_path, "-m", "logger=wandb", "sampler.po.stop_t=0.25,0.5", "trainer.max_steps=2")
    sweep, jobs = sweep_jobs(tmp_path)
    assert len(jobs) == 2
    name = OmegaConf.load(jobs[0] / ".hydra" / "config.yaml").name
    group = f"{name}-{sweep.name}"
    records = [wandb_run_record(only(job.glob("wandb/offline-run-*/run-*.wandb"))) for job in jobs]
    assert [record.run_group for record in records] == [group, group]
    assert [(record.display_name, record.job_type) for record in records] == [(name, "train")] * 2
    assert records[0].run_id != records[1].run_id
    for job in jobs:
        assert (job / "csv" / "metrics.csv").is_file() and (job / "results.csv").is_file()
    assert (sweep / "sweep.csv").is_file()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_and_writes_outputs_once(tmp_path):
    log = dirac_run(tmp_path, "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu")
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    run_dir = only(tmp_path.glob("outputs/*/*"))  # rank 1 runs in rank 0's folder, not a folder of its own
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs", "tmp"]
    assert (run_dir / "train_ddp_process_1.log").is_file()  # rank 1 logged there, without its own .hydra
    assert set(results(run_dir / "results.csv")) == METHODS
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 24
    calibration = load_checkpoint(run_dir / "checkpoints" / "dirac.ckpt")["dirac"]["calibration"]
    assert sorted(calibration) == ["dirac_do", "dirac_po"]
    test_rows = [row for row in read_csv(run_dir / "csv" / "metrics.csv") if row.get("test/dirac_do/psnr")]
    assert len(test_rows) == 1


def poll(process: subprocess.Popen, found: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call `found()` every 0.2 s until it returns something other than None while `process` still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"training exited ({process.returncode}) before {what}"
        value = found()
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"no {what} after {timeout} s")


def saved_step(path: Path, min_step: int) -> int | None:
    """The global_step of the checkpoint at `path` when it exists and is at least `min_step`, else None."""
    step = load_checkpoint(path)["global_step"] if path.is_file() else -1
    return step if step >= min_step else None


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(tmp_path):
    run = ("trainer.max_steps=200", "callbacks.model_checkpoint.every_n_train_steps=10")
    with (tmp_path / "killed.log").open("w") as log:
        process = subprocess.Popen(command(*run), cwd=tmp_path, env=environment(tmp_path), stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            killed_dir = poll(process, lambda: next(iter(tmp_path.glob("outputs/*/*")), None), 240, "a run folder")
            last = killed_dir / "checkpoints" / "last.ckpt"
            poll(process, lambda: saved_step(last, 10), 240, "a checkpoint at step >= 10")
        finally:
            process.kill()
            process.wait()
    checkpoints = list((killed_dir / "checkpoints").glob("*.ckpt"))
    killed_at = {path.name: load_checkpoint(path)["global_step"] for path in checkpoints}  # none truncated
    step = killed_at["last.ckpt"]
    assert step >= 10 and step % 10 == 0 and step < 200 and not (killed_dir / "results.csv").exists()

    total = step + 10
    resume_log = dirac_run(tmp_path, *run, "resume=true", f"trainer.max_steps={total}")
    resumed_dir = only(path for path in tmp_path.glob("outputs/*/*") if path != killed_dir)
    assert f"Restoring states from the checkpoint path at {killed_dir / 'checkpoints' / 'last.ckpt'}" in resume_log
    assert load_checkpoint(resumed_dir / "checkpoints" / "last.ckpt")["global_step"] == total
    logged_steps = [int(row["step"]) for row in read_csv(resumed_dir / "csv" / "metrics.csv")]
    assert logged_steps and min(logged_steps) >= step  # training went on from the checkpoint, not from step 0
    assert set(results(resumed_dir / "results.csv")) == METHODS
