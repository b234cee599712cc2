"""The speed options GPU users reach for, as one Lightning callback: channels-last memory, torch.compile of the
method's backbone (with a clear message and an eager fallback), float32 matmul precision (TF32 on Ampere+)."""

from __future__ import annotations

import logging

import lightning as L
import torch

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
