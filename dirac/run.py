"""The entry point: `python -m dirac.run experiment=<name> [mode=train|test] [overrides]` (Hydra main)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from dirac.config import register_resolvers


def finish_wandb() -> None:
    """Close the job's wandb run, if any, so the next job of a multirun gets its own run (SPEC §4)."""
    wandb = sys.modules.get("wandb")  # only present when a WandbLogger was built
    if wandb is not None and wandb.run is not None:
        wandb.finish()


@hydra.main(config_path="../conf", config_name="run", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Run the configured job and return the monitored value (test PSNR of Dirac-DO) for sweepers."""
    from dirac.pipeline import run  # heavy imports after Hydra has parsed the command line

    try:
        outcome = run(cfg)
    finally:
        finish_wandb()
    return outcome["results"].get("dirac_do", {}).get("psnr")


register_resolvers()

if __name__ == "__main__":
    main()
