"""Image grids and image logging: layout, clipping, PNG files, loggers."""

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from dirac.reporting import image_grid, log_images, save_grid
from dirac.reporting.images import LABEL_HEIGHT, PADDING


def test_grid_places_columns_and_rows_and_clips():
    target, output = torch.rand(2, 3, 8, 8), torch.full((2, 3, 8, 8), 2.0)
    grid = image_grid([target, output], None)
    assert grid.shape == (3, 2 * (8 + PADDING) + PADDING, 2 * (8 + PADDING) + PADDING)
    second_row = PADDING + 8 + PADDING
    assert torch.equal(grid[:, second_row:second_row + 8, PADDING:PADDING + 8], target[1])
    assert torch.equal(grid[:, PADDING:PADDING + 8, 2 * PADDING + 8:2 * PADDING + 16], torch.ones(3, 8, 8))


def test_named_grid_has_a_header_and_fits_grey_and_small_columns():
    grid = image_grid([torch.rand(1, 3, 16, 16), torch.rand(1, 1, 8, 8)], ["target", "measurement"])
    assert grid.shape == (3, LABEL_HEIGHT + PADDING + 16 + 2 * PADDING, 2 * (16 + PADDING) + PADDING)
    assert grid[:, :LABEL_HEIGHT].min() < 0.5
    with pytest.raises(ValueError, match="one name per column"):
        image_grid([torch.rand(1, 3, 8, 8)], ["a", "b"])


def test_saved_grid_is_a_png_of_the_grid(tmp_path):
    columns = [torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)]
    path = save_grid(tmp_path / "grids" / "a.png", columns, ["x", "y"])
    with Image.open(path) as image:
        pixels = pil_to_tensor(image).float() / 255
    assert torch.allclose(pixels, image_grid(columns, ["x", "y"]), atol=1 / 255)


def test_images_go_to_the_run_folder_of_a_csv_logger_and_nowhere_without_logger(tmp_path):
    logger = CSVLogger(tmp_path)
    paths = log_images(logger, "val/reconstruction", [torch.rand(3, 8, 8), torch.rand(2, 1, 8, 8)],
                       ["ground truth", "Dirac-PO"], step=7)
    assert [path.name for path in paths] == ["val_reconstruction-step0000007-0-ground_truth.png",
                                             "val_reconstruction-step0000007-1-Dirac-PO.png"]
    assert all(path.is_file() and path.parent.parent == tmp_path / "lightning_logs" / "version_0" for path in paths)
    assert log_images(None, "val", [torch.rand(3, 8, 8)], ["a"]) == []
    with pytest.raises(ValueError, match="caption"):
        log_images(logger, "val", [torch.rand(3, 8, 8)], [])


def test_images_are_logged_to_wandb(wandb_logger):
    log_images(wandb_logger, "val/reconstruction", [torch.rand(3, 8, 8), torch.rand(2, 3, 8, 8)], ["a", "b"], step=1)
    assert "val/reconstruction" in dict(wandb_logger.experiment.summary)
