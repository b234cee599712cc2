"""The speed options GPU users reach for, as one Lightning callback: channels-last memory, torch.compile of the
method's backbone (with a clear message and an eager fallback), float32 matmul precision (TF32 on Ampere+);
and a stated training-time budget that is checked, never silently truncated."""

from __future__ import annotations

import logging
import time

import lightning as L
import torch

from dirac.errors import UserError

log = logging.getLogger(__name__)
MATMUL_PRECISIONS = ("highest", "high", "medium")


class PerformanceOptions(L.Callback):
    """Apply the configured speed options when a run starts (cudnn.benchmark is the Trainer's own `benchmark`).

    `compile` compiles the method's `backbone()` in place (state-dict keys unchanged, so checkpoints stay
    loadable); `compile_backend` is torch.compile's backend ("inductor" by default; "aot_eager" traces without
    code generation). Where dynamo is unsupported the run says so and stays eager; a graph that fails to compile
    falls back to eager with dynamo's warning instead of stopping the run.
    """

    def __init__(self, channels_last: bool = False, compile: bool = False, compile_mode: str | None = None,
                 compile_backend: str = "inductor", matmul_precision: str = "highest") -> None:
        if matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, got {matmul_precision!r}")
        self.channels_last, self.compile = bool(channels_last), bool(compile)
        self.compile_mode, self.compile_backend = compile_mode, compile_backend
        self.matmul_precision = matmul_precision
        self.compiled = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        torch.set_float32_matmul_precision(self.matmul_precision)
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.compile and not self.compiled:
            self.compiled = compile_backbone(pl_module, self.compile_backend, self.compile_mode)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.channels_last and isinstance(batch, dict) and batch.get("image") is not None:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)


def compile_backbone(pl_module: L.LightningModule, backend: str, mode: str | None) -> bool:
    """torch.compile the method's backbone in place; False (with a warning naming why) where it cannot."""
    backbone = pl_module.backbone() if hasattr(pl_module, "backbone") else None
    if backbone is None:
        log.warning("compile=true, but %s names no backbone network to compile; running eagerly",
                    type(pl_module).__name__)
        return False
    if not torch._dynamo.is_dynamo_supported():
        log.warning("torch.compile is not supported on this Python/platform; running the network eagerly")
        return False
    torch._dynamo.config.suppress_errors = True  # a graph that fails to compile runs eagerly, with a warning
    backbone.compile(backend=backend, mode=mode)
    log.info("compiled %s with torch.compile(backend=%r, mode=%r)", type(backbone).__name__, backend, mode)
    return True


class TrainingBudget(L.Callback):
    """A stated wall-clock limit on training, kept honestly: after `probe_steps` optimisation steps the run
    projects its total training time from the measured step rate and stops with an error naming the numbers if
    the configured `max_steps` would not fit into `minutes`, and it stops the same way if training ever passes
    the limit; a run is never silently cut short (the last checkpoint written stays on disk)."""

    def __init__(self, minutes: float | None = None, probe_steps: int = 20, warmup_steps: int = 5) -> None:
        if minutes is not None and minutes <= 0:
            raise ValueError(f"the training budget must be positive minutes (or null for none), got {minutes}")
        if not 0 <= warmup_steps < probe_steps:
            raise ValueError(f"need 0 <= warmup_steps < probe_steps, got {warmup_steps} and {probe_steps}")
        self.seconds = None if minutes is None else 60.0 * float(minutes)
        self.probe_steps, self.warmup_steps = int(probe_steps), int(warmup_steps)
        self.started: float | None = None
        self.warm: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started, self.first_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.seconds is None or self.started is None:
            return
        done, now = trainer.global_step - self.first_step, time.perf_counter()
        if done == self.warmup_steps:
            self.warm = now
        if done == self.probe_steps and self.warm is not None and trainer.max_steps > 0:
            per_step = (now - self.warm) / (self.probe_steps - self.warmup_steps)
            projected = (now - self.started) + per_step * (trainer.max_steps - trainer.global_step)
            if projected > self.seconds:
                raise TrainingBudgetError(
                    f"trainer.max_steps={trainer.max_steps} does not fit the stated training budget: at the measured "
                    f"{per_step:.3g} s per step training would take about {projected / 60:.1f} min, over "
                    f"callbacks.budget.minutes={self.seconds / 60:g}; lower trainer.max_steps or raise the budget")
        if now - self.started > self.seconds:
            raise TrainingBudgetError(
                f"training passed its stated budget of {self.seconds / 60:g} min at step {trainer.global_step} of "
                f"{trainer.max_steps} (the machine slowed down?); the last checkpoint is in the run's checkpoints/ "
                "folder: resume with resume=true and a larger callbacks.budget.minutes")


class TrainingBudgetError(UserError):
    """A configured training length that does not fit the run's stated time budget."""
