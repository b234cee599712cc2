"""CLI: greedy degradation scheduling on data images (paper App. B, Alg. 2; SPEC §1.1).

    python -m dirac.schedule degradation=gaussian_blur budget=50 out=path.txt

writes a "t c" schedule file that a degradation loads with `degradation.schedule=path.txt`.
"""

from __future__ import annotations

import logging

import hydra
import torch
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig

from dirac.degradations.scheduled import ScheduledDegradation
from dirac.degradations.scheduling import GreedySchedule, greedy_schedule

log = logging.getLogger(__name__)


def training_images(data_cfg: DictConfig, count: int) -> torch.Tensor:
    """`count` train images of the configured DataModule, evenly spread over the dataset, as a `(N, C, H, W)` batch."""
    datamodule = instantiate(data_cfg)
    datamodule.setup("fit")
    dataset = datamodule.dataset("train")
    if count < 1 or len(dataset) == 0:
        raise ValueError(f"need at least one image; asked for {count} from a train split of {len(dataset)}")
    indices = torch.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().long().unique()
    return torch.stack([dataset[index]["image"] for index in indices.tolist()])


def schedule_from_config(cfg: DictConfig) -> GreedySchedule:
    """Run greedy scheduling for `cfg.degradation` on `cfg.images` train images and save the schedule to `cfg.out`."""
    degradation = instantiate(cfg.degradation)
    if not isinstance(degradation, ScheduledDegradation):
        raise ValueError(f"{type(degradation).__name__} has no severity to schedule; pick a scheduled degradation")
    images = training_images(cfg.data, cfg.images)
    result = greedy_schedule(
        degradation, images, instantiate(cfg.distance), budget=cfg.budget, candidates=cfg.candidates,
        batch_size=cfg.batch_size
    )
    result.severity.save(to_absolute_path(cfg.out))
    return result


@hydra.main(config_path="../conf", config_name="schedule", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Entry point of `python -m dirac.schedule`."""
    result = schedule_from_config(cfg)
    log.info("largest consecutive distance with 2..%d points: %s", cfg.budget,
             ", ".join(f"{d:.4g}" for d in result.max_distance))
    log.info("wrote %d-point schedule to %s", cfg.budget, to_absolute_path(cfg.out))


if __name__ == "__main__":
    main()
