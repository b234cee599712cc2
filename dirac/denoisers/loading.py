"""A pretrained denoiser D(x, sigma) from disk: a `denoiser.ckpt` of the denoiser method, or a diffusers directory."""

from __future__ import annotations

from pathlib import Path

from dirac.denoisers.base import DenoiserModule


def load_denoiser(path: str | Path, image_size: int | None = None, channels: int | None = None) -> DenoiserModule:
    """The frozen, eval-mode denoiser stored at `path`: a file is read as a denoiser-family checkpoint
    (`python -m dirac.run experiment=denoiser_embedded` writes one), a directory as a local diffusers model."""
    path = Path(path).expanduser()
    if path.is_dir():
        from dirac.denoisers.diffusers import load_diffusers_denoiser

        return load_diffusers_denoiser(path, image_size=image_size, channels=channels)
    if not path.is_file():
        raise FileNotFoundError(f"no denoiser at {path}: pass the checkpoints/denoiser.ckpt of a "
                                "`python -m dirac.run experiment=denoiser_embedded` run, or a local diffusers "
                                "directory (config.json + weights, scheduler_config.json)")
    from dirac.checkpoints import load_checkpoint, module_from_checkpoint

    method = module_from_checkpoint(load_checkpoint(path, family="denoiser"))
    denoiser = method.denoiser.eval().requires_grad_(False)
    geometry = {"image_size": (image_size, getattr(method, "image_size", None)),
                "channels": (channels, getattr(method, "channels", None))}
    wrong = [f"{key}: data {want} vs model {have}" for key, (want, have) in geometry.items()
             if want is not None and have is not None and want != have]
    if wrong:
        raise ValueError(f"the denoiser checkpoint {path} does not fit the data ({'; '.join(wrong)})")
    return denoiser
