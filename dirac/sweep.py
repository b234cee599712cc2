"""Hydra callback that summarises a multirun sweep in one perception–distortion plot (SPEC §4)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class CombineSweep(Callback):
    """On multirun end, combine every job's results.csv into `<sweep dir>/sweep.csv` and `sweep.png`."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from dirac.reporting import combine_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        run_dirs = sorted(path.parent for path in sweep_dir.glob("*/results.csv"))
        if not run_dirs:
            log.warning("no job of sweep %s wrote results.csv; nothing to combine", sweep_dir)
            return
        paths = combine_sweep(run_dirs, sweep_dir)
        log.info("sweep summary of %d runs: %s", len(run_dirs), ", ".join(map(str, paths.values())))
