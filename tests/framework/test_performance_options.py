"""The speed options through config, on CPU (issue 20): bf16-mixed with the operators in float32, channels-last,
torch.compile of the backbone with its fallback, gradient accumulation, loader workers and pinned memory;
the stated training budget."""

from __future__ import annotations

import logging
from functools import partial

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.demos.boring_classes import BoringModel

from dirac.data import EmbeddedSource, ImageDataModule
from dirac.degradations import GaussianBlur
from dirac.degradations.noise import GeometricNoise
from dirac.methods.base import Method
from dirac.methods.dirac import DiracModule, LookAheadLoss
from dirac.nets import NCSNpp
from dirac.performance import PerformanceOptions, TrainingBudget, TrainingBudgetError, compile_backbone
from dirac.restorers import DiracSampler
from tests.framework.conftest import TINY, compose_config


class RecordingBlur(GaussianBlur):
    """A Gaussian blur that records the dtype and autocast state it runs under."""

    seen: list

    def apply(self, x, t):
        self.seen.append((x.dtype, t.dtype, torch.is_autocast_enabled("cpu")))
        return super().apply(x, t)


def tiny_module(degradation=None) -> DiracModule:
    net = NCSNpp(3, 3, 16, model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=(), dropout=0.0)
    sampler = DiracSampler(dt=0.5, guidance="none")
    return DiracModule(net, degradation or GaussianBlur(3, 16, reference_size=32), GeometricNoise(), LookAheadLoss(0.0),
                       partial(torch.optim.Adam, lr=1e-3), sampler, sampler)


def fit(module: DiracModule, steps: int, **trainer) -> list[float]:
    data = ImageDataModule(partial(EmbeddedSource, downscale=8.0), image_size=16, batch_size=4, seed=0,
                           num_workers=trainer.pop("num_workers", 0), pin_memory=trainer.pop("pin_memory", False))
    losses: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    callbacks = [Record(), *trainer.pop("callbacks", [])]
    L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0, callbacks=callbacks, **trainer).fit(module, data)
    return losses


def test_bf16_mixed_runs_only_the_network_in_bf16():
    blur = RecordingBlur(3, 16, reference_size=32)
    blur.seen = []
    module = tiny_module(blur)
    net_autocast = []
    module.backbone().register_forward_hook(lambda *args: net_autocast.append(torch.is_autocast_enabled("cpu")))
    losses = fit(module, 2, precision="bf16-mixed")
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert blur.seen and all(state == (torch.float32, torch.float32, False) for state in blur.seen)
    assert net_autocast and all(net_autocast)


def test_channels_last_compile_and_gradient_accumulation_train(caplog):
    module = tiny_module()
    keys = set(module.state_dict())
    options = PerformanceOptions(channels_last=True, compile=True, compile_backend="aot_eager")
    with caplog.at_level(logging.INFO, logger="dirac.performance"):
        losses = fit(module, 2, callbacks=[options], accumulate_grad_batches=2, num_workers=1, pin_memory=True)
    assert options.compiled and "compiled NCSNpp" in caplog.text
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))  # 2 optimiser steps of 2 batches each
    weight = next(p for p in module.backbone().parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert set(module.state_dict()) == keys  # compiled in place: checkpoints keep their keys


def test_compile_without_a_backbone_says_so_and_stays_eager(caplog):
    class NoNetwork(Method):
        family = "none"

    with caplog.at_level(logging.WARNING, logger="dirac.performance"):
        assert compile_backbone(NoNetwork(), "inductor", None) is False
    assert "names no backbone" in caplog.text
    with pytest.raises(ValueError, match="matmul_precision"):
        PerformanceOptions(matmul_precision="fast")


def test_the_options_compose_from_config(tmp_path):
    cfg = compose_config([*TINY, "callbacks.performance.channels_last=true", "trainer.accumulate_grad_batches=2",
                          "data.pin_memory=true", "trainer.precision=bf16-mixed"], tmp_path / "run")
    options = instantiate(cfg.callbacks.performance)
    assert options.channels_last and not options.compile
    assert cfg.trainer.accumulate_grad_batches == 2 and instantiate(cfg.data).pin_memory


def budget_trainer(max_steps: int, budget: TrainingBudget) -> L.Trainer:
    return L.Trainer(max_steps=max_steps, callbacks=[budget], logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)


def test_a_step_count_over_the_stated_budget_stops_early_with_the_numbers():
    trainer = budget_trainer(10_000_000, TrainingBudget(minutes=0.05, probe_steps=12, warmup_steps=2))
    with pytest.raises(TrainingBudgetError,
                       match=r"max_steps=10000000 does not fit .* s per step .*budget.minutes=0.05"):
        trainer.fit(BoringModel())
    assert trainer.global_step == 12


def test_a_run_that_fits_its_budget_trains_every_step():
    trainer = budget_trainer(30, TrainingBudget(minutes=5, probe_steps=12, warmup_steps=2))
    trainer.fit(BoringModel())
    assert trainer.global_step == 30
    with pytest.raises(ValueError, match="positive minutes"):
        TrainingBudget(minutes=0)
