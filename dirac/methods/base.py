"""The base of every method family's LightningModule: what is trained, and what a checkpoint says about it."""

from __future__ import annotations

import math
from typing import ClassVar

import lightning as L
import torch
from torch import nn

from dirac.checkpoints import FORMAT_VERSION, METADATA_KEY, read_metadata
from dirac.errors import CheckpointError
from dirac.restorers.base import Restorer
from dirac.seeding import step_generator


class Method(L.LightningModule):
    """A trainable method (SPEC §4): it trains, and offers tasks what it can do (e.g. named restorers).

    Every checkpoint a method writes carries `{"dirac": {"family", "format_version", "config", "signature",
    "calibration"}}`: the family name, the resolved run configuration (data only, never code), the operator
    signature the weights are only valid for, and the parameters a task tuned on validation data
    (restorer name -> parameter -> value).
    """

    family: ClassVar[str] = ""

    def __init__(self, train_seed: int = 0) -> None:
        super().__init__()
        self.train_seed = int(train_seed)
        self.run_config: dict = {}
        self.calibration: dict[str, dict[str, float]] = {}

    def training_generator(self, batch_idx: int, device: torch.device) -> torch.Generator:
        """The generator of this training batch's random draws (`dirac.seeding.step_generator` of `train_seed`)."""
        return step_generator(self.train_seed, self.global_rank, self.current_epoch, batch_idx, device)

    def signature(self) -> dict:
        """What the weights are only valid for (operators, noise, image geometry); empty by default."""
        return {}

    def optimization(self, parameters) -> torch.optim.Optimizer | dict:
        """The configured optimiser over `parameters` and, when `scheduler_factory` is set, its learning-rate
        schedule stepped every optimisation step (e.g. OneCycleLR over trainer.max_steps)."""
        optimizer = self.optimizer_factory(parameters)
        scheduler = getattr(self, "scheduler_factory", None)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler(optimizer), "interval": "step"}}

    def backbone(self) -> nn.Module | None:
        """The network whose speed options apply (channels-last, torch.compile); None when there is none."""
        return None

    def restorers(self) -> dict[str, Restorer]:
        """The restorers this method offers the restoration task, by name, with tuned parameters applied."""
        return {}

    def on_train_batch_end(self, outputs: dict, batch: dict, batch_idx: int) -> None:
        """Stop on a non-finite training loss (every family), checked every `log_every_n_steps`: the step itself
        never waits for the device."""
        if (self.global_step % max(1, self.trainer.log_every_n_steps)) == 0:
            value = float(outputs["loss"].detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {self.global_step}; "
                                         "lower the learning rate or check the data for NaNs")

    def tune(self, restorer: str, param: str, value: float) -> None:
        """Record a parameter of one of this method's restorers tuned on validation data (stored in checkpoints)."""
        self.calibration.setdefault(restorer, {})[param] = float(value)

    def metadata(self) -> dict:
        """The checkpoint's `dirac` entry of this method."""
        return {"family": self.family, "format_version": FORMAT_VERSION, "config": self.run_config,
                "signature": self.signature(), "calibration": {name: dict(values)
                                                                for name, values in self.calibration.items()}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the method's metadata beside Lightning's state (issue 15: checkpoints are data)."""
        checkpoint[METADATA_KEY] = self.metadata()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse another family's or an incompatible checkpoint; take its calibration."""
        stored = read_metadata(checkpoint, self.family)
        check_signature(stored["signature"], self.signature())
        self.calibration = {name: dict(values) for name, values in stored.get("calibration", {}).items()}
        self._check_schedule_length(checkpoint)

    def _check_schedule_length(self, checkpoint: dict) -> None:
        """Refuse to resume a fixed-length learning-rate schedule (one-cycle) with another trainer.max_steps."""
        trainer = self._trainer
        planned = trainer.max_steps if trainer is not None and trainer.state.fn == "fit" else None
        for state in checkpoint.get("lr_schedulers", []) if planned else []:
            if "total_steps" in state and state["total_steps"] != planned:
                raise CheckpointError(
                    f"the checkpoint's learning-rate schedule runs {state['total_steps']} steps but trainer.max_steps "
                    f"is {planned}: resume with trainer.max_steps={state['total_steps']}, or start a new run from "
                    "its weights")


def check_signature(stored: dict, current: dict) -> None:
    """Raise a CheckpointError listing every field in which a checkpoint's signature differs from the current one."""
    differences = [f"{part}.{key}: checkpoint {stored.get(part, {}).get(key)!r} vs config {current[part].get(key)!r}"
                   for part in current if isinstance(current[part], dict)
                   for key in sorted(set(stored.get(part, {})) | set(current[part]))
                   if stored.get(part, {}).get(key) != current[part].get(key)]
    if differences:
        raise CheckpointError("checkpoint is incompatible with the configured model: " + "; ".join(differences))
