"""A pretrained denoiser D(x, sigma) from disk (a `denoiser.ckpt` of the denoiser method, or a diffusers directory),
and the network a restorer shares: loaded once, before any work, frozen (SPEC §1.5)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from dirac.denoisers.base import DenoiserModule

TRAIN_HINT = ("train one with `python -m dirac.run experiment=denoiser_embedded` and pass "
              "denoiser.path=outputs/denoiser_embedded/<time>/checkpoints/denoiser.ckpt, or point denoiser.path at a "
              "local diffusers directory (denoiser=diffusers)")


class SharedDenoiser:
    """The unconditional denoiser D(x, sigma) of a baseline (SPEC §1.5): a module, or a zero-argument loader (a Hydra
    `_partial_` of `dirac.denoisers.loading.load_denoiser`) called once, frozen, and moved to the data's device.
    `what`, `key` and `hint` name the network, its path setting and how to get one (another network: RGM-PnP's
    prior)."""

    def __init__(self, source: nn.Module | Callable[[], nn.Module], what: str = "a denoiser D(x, sigma)",
                 key: str = "denoiser.path", hint: str = TRAIN_HINT) -> None:
        self.source = source
        self.module: nn.Module | None = source if isinstance(source, nn.Module) else None
        self.what, self.key, self.hint = what, key, hint

    def load(self, method: str) -> nn.Module:
        """The network, loaded on first use without drawing from the global random generator (so a comparison run
        trains Dirac exactly as the run without baselines); a loader without a path is refused with the way to get
        one."""
        if self.module is None:
            keywords = self.source.keywords if isinstance(self.source, functools.partial) else {}
            if "path" in keywords and keywords["path"] in (None, ""):
                raise FileNotFoundError(f"the {method} baseline needs {self.what} but {self.key} is not "
                                        f"set: {self.hint}")
            with torch.random.fork_rng(devices=[]):  # building the network leaves the run's random stream alone
                self.module = self.source().eval().requires_grad_(False)
        return self.module

    def on(self, device: torch.device, method: str) -> nn.Module:
        """The denoiser on `device` (moved once)."""
        module = self.load(method)
        reference = next(iter(module.parameters()), None)
        reference = next(iter(module.buffers()), None) if reference is None else reference
        if reference is not None and reference.device != device:
            module.to(device)
        return module


def as_shared(denoiser: SharedDenoiser | nn.Module | Callable[[], nn.Module] | None) -> SharedDenoiser | None:
    """A baseline's denoiser argument as a SharedDenoiser (copies of a restorer share one)."""
    if denoiser is None or isinstance(denoiser, SharedDenoiser):
        return denoiser
    return SharedDenoiser(denoiser)


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
