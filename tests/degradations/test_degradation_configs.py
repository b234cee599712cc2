"""The degradation and noise config groups instantiate the classes they name (SPEC §4, Hydra config groups)."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dirac.degradations import Degradation, GaussianInpainting, NoiseSchedule, ScheduledDegradation

CONF = Path(__file__).resolve().parents[2] / "conf"
DEGRADATIONS = sorted(path.stem for path in (CONF / "degradation").glob("*.yaml"))


def test_every_expected_degradation_config_exists():
    assert DEGRADATIONS == sorted(
        ["box_inpainting", "colorization", "denoising", "gaussian_blur", "gaussian_inpainting",
         "gaussian_inpainting_imagenet", "superresolution"]
    )


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradation_config_takes_its_sizes_from_the_data_group(name):
    loaded = OmegaConf.load(CONF / "degradation" / f"{name}.yaml")
    cfg = OmegaConf.create({"data": {"channels": 3, "image_size": 32}, "degradation": loaded})
    degradation = instantiate(cfg.degradation)
    assert isinstance(degradation, Degradation) and (degradation.channels, degradation.image_size) == (3, 32)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(degradation(x, 0.0), x, atol=1e-6, rtol=0)
    assert name == "denoising" or isinstance(degradation, ScheduledDegradation)


def test_imagenet_inpainting_uses_the_smaller_mask():
    cfg = OmegaConf.create({"data": {"channels": 3, "image_size": 32},
                            "degradation": OmegaConf.load(CONF / "degradation" / "gaussian_inpainting_imagenet.yaml")})
    inpainting = instantiate(cfg.degradation)
    assert isinstance(inpainting, GaussianInpainting) and inpainting.s_max == 30.0


@pytest.mark.parametrize(("name", "sigma_0", "sigma_1"), [("geometric", 0.01, 0.05), ("constant", 0.05, 0.05)])
def test_noise_configs(name, sigma_0, sigma_1):
    noise = instantiate(OmegaConf.load(CONF / "noise" / f"{name}.yaml"))
    assert isinstance(noise, NoiseSchedule)
    torch.testing.assert_close(noise.sigma(torch.tensor([0.0, 1.0])), torch.tensor([sigma_0, sigma_1]))
