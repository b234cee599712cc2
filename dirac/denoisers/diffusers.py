"""Pretrained diffusers `UNet2DModel` + `DDPMScheduler` from a local directory, as a VE denoiser D(x, sigma)
(SPEC §1.5, §3).

`diffusers` is imported only inside the loader (install it with `pip install -e .[diffusers]`);
nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor, nn

from dirac.denoisers.vp import PREDICTION_TYPES, TimestepMode, VPDenoiser

MODEL_CONFIG = "config.json"
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
SCHEDULER_CONFIG = "scheduler_config.json"
EXPECTED = (f"{MODEL_CONFIG} and {' or '.join(WEIGHT_FILES)} (in the directory or its unet/ subfolder), and "
            f"{SCHEDULER_CONFIG} (in the directory or its scheduler/ subfolder)")


class UNetPrediction(nn.Module):
    """A diffusers UNet2DModel called as `model(x_t, timestep) -> prediction`, keeping the first `channels` outputs
    (a learned-variance model also outputs its variance channels)."""

    def __init__(self, unet: nn.Module, channels: int) -> None:
        super().__init__()
        self.unet, self.channels = unet, int(channels)

    def forward(self, x_t: Tensor, timestep: Tensor) -> Tensor:
        """The UNet's output sample at (possibly fractional) timesteps `(B,)`."""
        return self.unet(x_t, timestep).sample[:, : self.channels]


def find_file_dir(root: Path, subfolder: str, required: tuple[str, ...]) -> Path:
    """`root/subfolder` if it holds every file group of `required` (names separated by '|'), else `root` if it does."""
    for candidate in (root / subfolder, root):
        if all(any((candidate / name).is_file() for name in group.split("|")) for group in required):
            return candidate
    raise FileNotFoundError(f"{root} is not a diffusers model directory: expected {EXPECTED}")


def read_config(path: Path) -> dict:
    """A diffusers JSON config as a dict, or a ValueError naming the file."""
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the diffusers config {path}: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"the diffusers config {path} must hold a JSON object")
    return config


def check_model_config(config: dict, path: Path, image_size: int | None, channels: int | None) -> int:
    """Check a UNet2DModel config against the data (square sample size, channels); return the image channels."""
    if config.get("_class_name") != "UNet2DModel":
        raise ValueError(f"{path} holds a {config.get('_class_name')!r}, but the loader needs a diffusers UNet2DModel")
    size, in_channels = config.get("sample_size"), int(config.get("in_channels", 3))
    sizes = tuple(size) if isinstance(size, list | tuple) else (size, size)
    if image_size is not None and sizes != (image_size, image_size):
        raise ValueError(f"{path}: the model's sample_size is {size}, but the data is {image_size}x{image_size}")
    if channels is not None and in_channels != channels:
        raise ValueError(f"{path}: the model takes {in_channels} channels, but the data has {channels}")
    if int(config.get("out_channels", 3)) not in (in_channels, 2 * in_channels):
        raise ValueError(f"{path}: out_channels {config.get('out_channels')} must be in_channels ({in_channels}), "
                         "or twice that for a learned-variance model")
    return in_channels


def load_diffusers_denoiser(path: str | Path, image_size: int | None = None, channels: int | None = None,
                            timestep_mode: TimestepMode = "interpolate") -> VPDenoiser:
    """A pretrained diffusers UNet2DModel (unet/ or the directory itself) and its DDPMScheduler (scheduler/ or
    scheduler_config.json) from a local directory, as D(x, sigma) through the VP adapter; frozen, in eval mode."""
    try:
        import diffusers
    except ImportError as error:
        raise ImportError("loading a diffusers model needs the optional dependency: "
                          "pip install -e .[diffusers]") from error
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"diffusers model directory {root} does not exist: expected {EXPECTED}")
    unet_dir = find_file_dir(root, "unet", (MODEL_CONFIG, "|".join(WEIGHT_FILES)))
    scheduler_dir = find_file_dir(root, "scheduler", (SCHEDULER_CONFIG,))
    in_channels = check_model_config(read_config(unet_dir / MODEL_CONFIG), unet_dir, image_size, channels)
    scheduler_config = read_config(scheduler_dir / SCHEDULER_CONFIG)
    prediction_type = scheduler_config.get("prediction_type", "epsilon")
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"{scheduler_dir / SCHEDULER_CONFIG}: prediction_type {prediction_type!r} is not one of "
                         f"{PREDICTION_TYPES}")
    try:
        unet = diffusers.UNet2DModel.from_pretrained(unet_dir, local_files_only=True, low_cpu_mem_usage=False)
        scheduler = diffusers.DDPMScheduler.from_config(scheduler_config)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise ValueError(f"cannot load the diffusers model from {root} (expected {EXPECTED}): {error}") from error
    unet.eval().requires_grad_(False)
    denoiser = VPDenoiser(UNetPrediction(unet, in_channels), scheduler.alphas_cumprod,
                          prediction_type=prediction_type, timestep_mode=timestep_mode)
    return denoiser.eval()
