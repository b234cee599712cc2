"""RGM trains under DDP with 2 CPU processes through `python -m dirac.run` and writes its outputs once; with every
prior that trains more than G (KLD, MMD on D's features, DSWD on D's features with its projection net) both processes
end with identical G, EMA, D and projection weights after training on different shards (slow: two processes start
and rendezvous per run)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from dirac.checkpoints import load_checkpoint
from tests.framework.test_cli import environment, only, read_csv

REPO = Path(__file__).resolve().parents[3]
DDP = ["logger=csv", "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu",
       "trainer.enable_progress_bar=false", "task.num_samples=500", "task.scatter_points=100"]
DDP_TOY = ["experiment=toy_rgm_mmd", "trainer.max_steps=10", "trainer.log_every_n_steps=5",
           "callbacks.model_checkpoint.every_n_train_steps=5", *DDP]


def parameters(module: L.LightningModule) -> dict[str, torch.Tensor]:
    """A copy of every parameter of the module (G, its EMA, D, the projection net), by name."""
    return {name: param.detach().clone() for name, param in module.named_parameters()}


class RankWeights(L.Callback):
    """Writes `rank<r>.pt` into `folder` per process: its first batch and its parameters before and after training."""

    def __init__(self, folder: str) -> None:
        self.folder, self.before, self.first = Path(folder), {}, None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.before = parameters(module)

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.first is None:
            self.first = batch.detach().clone()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        record = {"before": self.before, "after": parameters(module), "first": self.first}
        torch.save(record, self.folder / f"rank{trainer.global_rank}.pt")


def dirac_run_ddp(root: Path, *overrides: str) -> tuple[str, Path]:
    """Run `python -m dirac.run` on 2 CPU processes with RankWeights writing into `root`; (log, run folder)."""
    probe = [f"+callbacks.rank_weights._target_={__name__}.RankWeights", f"+callbacks.rank_weights.folder={root}"]
    env = environment(root)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))  # this module, in rank 1 too
    done = subprocess.run([sys.executable, "-m", "dirac.run", *overrides, *probe], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"exit code {done.returncode}:\n{log[-6000:]}"
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    return log, only(root.glob("outputs/*/*"))  # rank 1 runs in rank 0's folder


def assert_ranks_agree(root: Path, trained: tuple[str, ...]) -> None:
    """Both processes saw different batches, yet end with identical parameters; each of `trained` (name prefixes)
    moved."""
    ranks = [torch.load(root / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert not torch.equal(ranks[0]["first"], ranks[1]["first"])  # otherwise agreement would prove nothing
    after = [rank["after"] for rank in ranks]
    assert after[0].keys() == after[1].keys()
    differing = [name for name in after[0] if not torch.equal(after[0][name], after[1][name])]
    assert not differing, f"parameters differ between the ranks: {differing}"
    for prefix in trained:
        names = [name for name in after[0] if name.startswith(prefix)]
        assert names and any(not torch.equal(ranks[0]["before"][name], after[0][name]) for name in names), prefix


@pytest.mark.slow
def test_toy_rgm_trains_under_ddp_on_two_cpu_processes_and_writes_outputs_once(tmp_path: Path):
    _, run_dir = dirac_run_ddp(tmp_path, *DDP_TOY)
    assert (run_dir / "train_ddp_process_1.log").is_file()
    assert [row["model"] for row in read_csv(run_dir / "results.csv")] == ["samples"]
    assert (run_dir / "scatter.png").is_file() and (run_dir / "mode_counts.csv").is_file()
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 10  # G steps, not D steps
    assert load_checkpoint(run_dir / "checkpoints" / "rgm.ckpt", family="rgm")["dirac"]["family"] == "rgm"
    logged = [row for row in read_csv(run_dir / "csv" / "metrics.csv") if row.get("train/loss")]
    assert logged and all(math.isfinite(float(row["train/loss"])) for row in logged)
    assert_ranks_agree(tmp_path, ("generator.", "generator_ema."))


@pytest.mark.slow
@pytest.mark.parametrize(("experiment", "extra", "trained"), [
    ("toy_rgm_kld", [], ("generator.", "generator_ema.", "discriminator.")),
    ("toy_rgm_mmd", ["prior.on_features=true"], ("generator.", "generator_ema.", "discriminator.")),
    ("toy_rgm_dswd", [], ("generator.", "generator_ema.", "discriminator.", "prior.projection.")),
], ids=["kld", "mmd_features", "dswd_features"])
def test_every_prior_trains_under_ddp_with_identical_weights_on_both_ranks(tmp_path: Path, experiment, extra, trained):
    """The reported crash (`experiment=toy_rgm_kld trainer.strategy=ddp trainer.devices=2`); 4 iterations, R1 at 0."""
    _, run_dir = dirac_run_ddp(tmp_path, f"experiment={experiment}", *extra, "trainer.max_steps=4", *DDP)
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 4
    assert_ranks_agree(tmp_path, trained)
