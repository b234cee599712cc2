"""Training's random draws belong to the training batch (issue 30): validation's cadence never moves the weights."""

from __future__ import annotations

import pytest
import torch

from dirac.pipeline import build
from dirac.seeding import step_generator
from tests.framework.conftest import TINY, compose_config
from tests.tasks.test_denoising import DENOISER_TINY

SMALL = ["net.model_channels=8", "net.attn_resolutions=[]", "+trainer.limit_val_batches=2"]  # seconds, not minutes


def test_a_step_generator_is_fixed_by_seed_rank_epoch_and_batch():
    def draw(*key):
        return torch.rand(4, generator=step_generator(*key))

    assert torch.equal(draw(0, 0, 0, 3), draw(0, 0, 0, 3))
    others = [draw(1, 0, 0, 3), draw(0, 1, 0, 3), draw(0, 0, 1, 3), draw(0, 0, 0, 4)]
    assert all(not torch.equal(draw(0, 0, 0, 3), other) for other in others)


def trained_weights(cfg) -> torch.Tensor:
    """The flat parameters after fitting the configured run (no calibration, no test)."""
    run = build(cfg)
    run.trainer.fit(run.method, datamodule=run.datamodule)
    return torch.cat([parameter.detach().flatten() for parameter in run.method.parameters()])


@pytest.mark.parametrize("family", [TINY, DENOISER_TINY], ids=["dirac", "denoiser"])
def test_validation_cadence_does_not_change_the_trained_weights(tmp_path, family):
    """6 steps validated every 3 steps (loaders, previews, learning curve between steps) or only at the end: the
    same weights, because every training draw comes from its batch's own generator, not the global one."""
    common = [*family, *SMALL, "trainer.max_steps=6", "callbacks.model_checkpoint.every_n_train_steps=6"]
    often = compose_config([*common, "trainer.val_check_interval=3"], tmp_path / "often")
    once = compose_config([*common, "trainer.val_check_interval=6"], tmp_path / "once")
    assert torch.equal(trained_weights(often), trained_weights(once))


def test_the_train_seed_alone_moves_the_training_draws(tiny_config):
    """The run's `seed` sets `train_seed`; another train_seed under the same `seed` (the same initial weights) trains
    other weights, so the training draws come from it."""
    common = [*SMALL, "trainer.max_steps=4", "trainer.val_check_interval=4",
              "callbacks.model_checkpoint.every_n_train_steps=4"]
    first = tiny_config(*common, run="first")
    assert first.model.train_seed == first.seed
    reseeded = tiny_config(*common, "model.train_seed=43", run="reseeded")
    assert not torch.equal(trained_weights(first), trained_weights(reseeded))
