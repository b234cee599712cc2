"""Pretrained networks for LPIPS and FID read from local files only (SPEC §4 "Metrics", framework §2)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lpips
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3

WEIGHTS_ENV = "DIRAC_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightFile:
    """A pretrained-weight file a metric needs and the URL it is published at."""

    file: str
    url: str


LPIPS_BACKBONES = {
    "vgg": WeightFile("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "alex": WeightFile("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
}
INCEPTION = WeightFile(
    "weights-inception-2015-12-05-6726825d.pth",
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
)


class MissingWeightsError(FileNotFoundError):
    """A pretrained-weight file is absent; the message names the file, where it belongs and how to get it."""

    def __init__(self, file: str, directory: Path, how_to_get: str) -> None:
        self.file, self.directory, self.how_to_get = file, Path(directory), how_to_get
        super().__init__(
            f"missing pretrained weights '{file}' in {self.directory}. Put the file there, or point "
            f"{WEIGHTS_ENV} (or TORCH_HOME, which gives $TORCH_HOME/hub/checkpoints) at a folder that holds it. "
            f"To obtain it on a machine with internet: {how_to_get}"
        )


def weights_dir() -> Path:
    """The folder pretrained metric weights are read from: $DIRAC_WEIGHTS_DIR, else torch.hub.get_dir()/checkpoints."""
    override = os.environ.get(WEIGHTS_ENV)
    return Path(override) if override else Path(torch.hub.get_dir()) / "checkpoints"


def require_weights(weight: WeightFile, directory: str | Path | None = None) -> Path:
    """The path of `weight` in `directory` (default `weights_dir()`); MissingWeightsError (no download) if absent."""
    folder = Path(directory) if directory is not None else weights_dir()
    path = folder / weight.file
    if not path.is_file():
        raise MissingWeightsError(weight.file, folder, f"`curl -LO {weight.url}`, then copy the file there")
    return path


class FrozenNetwork(nn.Module):
    """Calls a pretrained evaluation network that follows device moves but stays out of `state_dict` and `parameters`.

    Metric weights therefore never enter training checkpoints, a checkpoint loads whether or not the
    metric weights are present on the machine, and the network stays in evaluation mode.
    """

    def __init__(self, net: nn.Module, num_features: int | None = None) -> None:
        super().__init__()
        object.__setattr__(self, "net", net.eval().requires_grad_(False))
        if num_features is not None:
            self.num_features = num_features

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> FrozenNetwork:  # type: ignore[override]
        """Apply device/dtype moves to the hidden network as well."""
        self.net._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, *args: Tensor, **kwargs: object) -> Tensor:
        """The wrapped network's output."""
        return self.net(*args, **kwargs)


def load_lpips(net: str = "vgg", weights_dir: str | Path | None = None) -> lpips.LPIPS:
    """An LPIPS module (SPEC §1.3b) whose backbone is read from `vgg16-397923af.pth` / `alexnet-owt-7be5be79.pth`.

    The linear heads ship with the `lpips` package. Call it as `model(x, y, normalize=True)` on [0, 1] images.
    """
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_BACKBONES)}, got {net!r}")
    path = require_weights(LPIPS_BACKBONES[net], weights_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    features = torch.load(path, map_location="cpu", weights_only=True)
    backbone = {key: features["features." + key.split(".", 1)[1]] for key in model.net.state_dict()}
    model.net.load_state_dict(backbone)
    return model.eval().requires_grad_(False)


def load_inception(weights_dir: str | Path | None = None) -> NoTrainInceptionV3:
    """The FID Inception-v3 (2048-d pool features, uint8 input) from `weights-inception-2015-12-05-6726825d.pth`."""
    path = require_weights(INCEPTION, weights_dir)
    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                              feature_extractor_weights_path=str(path))


def load_fid(weights_dir: str | Path | None = None) -> FrechetInceptionDistance:
    """A torchmetrics FID (SPEC §1.3b) on 2048-d Inception features, weights read from the local weights folder."""
    path = require_weights(INCEPTION, weights_dir)
    return FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path))
