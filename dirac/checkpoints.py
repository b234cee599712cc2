"""Safe checkpoint lookup and loading (weights_only) with clear errors for missing, truncated or foreign files."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate


def newest_last_checkpoint(search_root: Path) -> Path | None:
    """The most recently written `last.ckpt` below `search_root`, or None."""
    candidates = [path for path in search_root.glob("**/checkpoints/last.ckpt") if path.is_file()]
    return max(candidates, key=lambda path: path.stat().st_mtime, default=None)


def resolve_checkpoint(ckpt_path: str | None, resume: bool, search_root: Path) -> Path | None:
    """The checkpoint to resume or evaluate: an explicit file, or with `last`/resume the newest last.ckpt of the experiment."""
    if resume or ckpt_path == "last":
        found = newest_last_checkpoint(search_root)
        if found is None:
            raise FileNotFoundError(f"resume requested but no checkpoints/last.ckpt exists below {search_root}; "
                                    "start without resume=true, or pass ckpt_path=<file>")
        return found
    if not ckpt_path:
        return None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a dirac checkpoint with `weights_only=True`; a truncated, corrupted or foreign file gets a clear ValueError."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"cannot read checkpoint {path}: the file is truncated, corrupted or not a torch checkpoint "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "dirac" not in checkpoint:
        raise ValueError(f"checkpoint {path} was not written by dirac (it lacks the 'state_dict' and 'dirac' entries)")
    return checkpoint


def module_from_checkpoint(checkpoint: dict, **overrides) -> L.LightningModule:
    """The LightningModule a loaded dirac checkpoint was trained as (SPEC §4): built from its stored `model` config
    (`overrides` replace arguments, e.g. `metrics=None`), with its weights and stored state (stop times)."""
    stored = checkpoint["dirac"].get("config", {})
    if "model" not in stored:
        raise ValueError("the checkpoint stores no model config (checkpoint['dirac']['config']['model']), "
                         "so the module cannot be rebuilt from it alone")
    module = instantiate(stored["model"], **overrides)
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    module.run_config = stored
    return module
