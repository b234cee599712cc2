"""The entry point: `python -m dirac.run experiment=<name> [mode=train|test] [overrides]` (Hydra main)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from dirac.config import register_resolvers
from dirac.errors import reports_user_errors


@hydra.main(config_path="../conf", config_name="run", version_base="1.3")
@reports_user_errors
def main(cfg: DictConfig) -> float | None:
    """Run the configured job and return the task's monitored value (e.g. Dirac-DO's test PSNR) for sweepers."""
    from dirac.pipeline import finish_wandb, run  # heavy imports after Hydra has parsed the command line

    try:
        outcome = run(cfg)
    finally:
        finish_wandb()
    return outcome["monitored"]


register_resolvers()

if __name__ == "__main__":
    main()
