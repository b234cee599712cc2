"""Fixtures of the reporting tests: an offline wandb logger writing into the test's folder."""

import pytest
from lightning.pytorch.loggers import WandbLogger


@pytest.fixture
def wandb_logger(tmp_path):
    """An offline WandbLogger whose run is finished after the test."""
    logger = WandbLogger(project="dirac-tests", save_dir=str(tmp_path), offline=True)
    yield logger
    logger.experiment.finish()
