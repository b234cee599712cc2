"""The codec's model from disk: a denoiser-family checkpoint or a local diffusers directory, with the geometry it
accepts (SPEC §3: "a pretrained diffusion model, no retraining")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from dirac.compression.errors import CodecError
from dirac.errors import USER_ERRORS


@dataclass(frozen=True)
class CodecModel:
    """A frozen denoiser D(x, sigma) with the channels it takes and the number its image sides must be multiples of
    (2^(levels - 1) for a U-Net that halves the image levels - 1 times; the net is convolutional, so any such size
    works, not only the size it was trained at), None if unknown."""

    denoiser: nn.Module
    channels: int | None
    size_multiple: int | None


def load_codec_model(path: str | Path) -> CodecModel:
    """The denoiser at `path` (a `denoiser.ckpt` of `python -m dirac.run experiment=denoiser_embedded`, or a local
    diffusers directory) and its geometry; a missing or unusable model is a CodecError."""
    path = Path(path).expanduser()
    try:
        if path.is_dir():
            return _diffusers_model(path)
        if not path.is_file():
            raise FileNotFoundError(f"no denoiser at {path}: pass a denoiser.ckpt or a local diffusers directory")
        from dirac.checkpoints import load_checkpoint, module_from_checkpoint

        method = module_from_checkpoint(load_checkpoint(path, family="denoiser"))
        denoiser = method.denoiser.eval().requires_grad_(False)
        levels = getattr(denoiser.net, "levels", None)
        return CodecModel(denoiser, getattr(method, "channels", None), None if levels is None else 2 ** (levels - 1))
    except CodecError:
        raise
    except USER_ERRORS as error:
        raise CodecError(f"cannot use the model {path}: {error}") from error


def _diffusers_model(path: Path) -> CodecModel:
    """A diffusers UNet2DModel directory as a CodecModel, the side multiple from its config's down-sampling levels."""
    from dirac.denoisers.diffusers import (MODEL_CONFIG, WEIGHT_FILES, find_file_dir, load_diffusers_denoiser,
                                          read_config)

    config = read_config(find_file_dir(path, "unet", (MODEL_CONFIG, "|".join(WEIGHT_FILES))) / MODEL_CONFIG)
    levels = config.get("block_out_channels")
    multiple = 2 ** (len(levels) - 1) if isinstance(levels, list) and levels else None
    return CodecModel(load_diffusers_denoiser(path), int(config.get("in_channels", 3)), multiple)
