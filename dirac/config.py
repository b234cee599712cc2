"""Custom OmegaConf resolvers used by the configs under conf/."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def sweep_group(name: str) -> str:
    """The wandb group of a run: `<name>-<sweep folder>` inside a Hydra multirun, else `name`."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"{name}-{Path(HydraConfig.get().sweep.dir).name}"
    return name


def wandb_offline() -> bool:
    """True unless a wandb API key is set (or WANDB_MODE=online): runs stay offline without credentials."""
    return not (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") == "online")


def register_resolvers() -> None:
    """Register `${sweep_group:...}` and `${wandb_offline:}` once."""
    for name, resolver in (("sweep_group", sweep_group), ("wandb_offline", wandb_offline)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
