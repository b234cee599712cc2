"""The RGM loader: a trained RGM image module from its `rgm.ckpt`, read by the safe checkpoint loader (RGM-PnP's
prior, SPEC §2 Alg. 4)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dirac.checkpoints import load_checkpoint, module_from_checkpoint
from dirac.restorers.rgm_pnp import RGM_HINT


def load_rgm(path: str | Path | None) -> nn.Module:
    """The RGM image module stored at `path` (an `rgm.ckpt`), read by the safe checkpoint loader, frozen,
    in eval mode."""
    if path in (None, "") or not Path(path).expanduser().is_file():
        raise FileNotFoundError(f"RGM-PnP needs a trained RGM checkpoint, and there is none at {path}: {RGM_HINT}")
    module = module_from_checkpoint(load_checkpoint(Path(path).expanduser(), family="rgm"), family="rgm")
    if len(module.sample_shape) != 3:
        raise ValueError(f"the RGM checkpoint {path} makes {module.sample_shape} points, not images: RGM-PnP restores "
                         f"images ({RGM_HINT})")
    return module.eval().requires_grad_(False)
