"""Checkpoints are data, never code: safe lookup, loading (weights_only), format upgrades and an allowlist of the
classes a stored config may build (issue 15)."""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path

import torch
from hydra.utils import get_object, instantiate

from dirac.errors import CheckpointError
from dirac.reporting.files import atomic_path

log = logging.getLogger(__name__)

METADATA_KEY = "dirac"
FORMAT_VERSION = 2
# Classes outside dirac.* that a stored config may name: the optimisers and schedules of the method configs.
ALLOWED_EXTERNAL = frozenset({"torch.optim.Adam", "torch.optim.AdamW", "torch.optim.SGD", "torch.optim.RAdam",
                              "torch.optim.lr_scheduler.OneCycleLR", "torch.optim.lr_scheduler.CosineAnnealingLR"})
# Format 1 (before methods and tasks were split): module paths that moved, and evaluation settings now the task's.
V1_TARGETS = {"dirac.models.DiracModule": "dirac.methods.dirac.DiracModule",
              "dirac.models.LookAheadLoss": "dirac.methods.dirac.LookAheadLoss"}
V1_EVALUATION_KEYS = ("metrics", "curve_every", "val_images", "save_images")


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


def load_checkpoint(path: str | Path, family: str | None = None) -> dict:
    """A dirac checkpoint read with `weights_only=True`, its metadata upgraded to the current format and its stored
    config checked against the allowlist; a truncated, foreign, unsafe or other-family file gets a CheckpointError."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is truncated, corrupted or not a torch "
                              f"checkpoint ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
                              ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or METADATA_KEY not in checkpoint:
        raise CheckpointError(f"checkpoint {path} was not written by dirac (it lacks the 'state_dict' and 'dirac' entries)")
    checkpoint[METADATA_KEY] = read_metadata(checkpoint, family)
    return checkpoint


def read_metadata(checkpoint: dict, family: str | None = None) -> dict:
    """The checkpoint's `dirac` entry in the current format (format 1 is upgraded), checked for family and safety."""
    stored = checkpoint.get(METADATA_KEY)
    if not isinstance(stored, dict):
        raise CheckpointError("the checkpoint was not written by dirac (no 'dirac' metadata entry)")
    if "format_version" not in stored and {"config", "stops", "signature"} <= set(stored):
        stored = upgrade_v1(stored)
    version = stored.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version!r} is not supported: this dirac reads format "
                              f"{FORMAT_VERSION} (and upgrades format 1); re-save it with the dirac that wrote it")
    missing = {"family", "config", "signature", "calibration"} - set(stored)
    if missing:
        raise CheckpointError(f"the checkpoint's dirac metadata lacks {sorted(missing)}")
    if family is not None and stored["family"] != family:
        raise CheckpointError(f"this is a {stored['family']!r} checkpoint, but a {family!r} checkpoint is needed here")
    check_allowed(stored["config"])
    return stored


def upgrade_v1(stored: dict) -> dict:
    """Format 1 metadata (config, stops, calibrated, signature of a Dirac run) in the current format."""
    config = _renamed(stored["config"])
    model = config.get("model", {})
    if "eval_seed" in model:
        model["val_seed"] = model.pop("eval_seed")
    for key in V1_EVALUATION_KEYS:
        model.pop(key, None)
    calibration = {f"dirac_{preset}": {"stop_t": float(stored["stops"][preset])}
                   for preset in stored.get("calibrated", [])}
    log.info("read a format-1 Dirac checkpoint (written before methods and tasks were split); upgraded in memory")
    return {"family": "dirac", "format_version": FORMAT_VERSION, "config": config,
            "signature": stored["signature"], "calibration": calibration}


def _renamed(value):
    """A copy of a stored config with the format-1 module paths replaced by today's."""
    if isinstance(value, dict):
        return {key: V1_TARGETS.get(item, item) if key == "_target_" else _renamed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item) for item in value]
    return value


def check_allowed(config, where: str = "config") -> None:
    """Refuse a stored config that names any `_target_` other than the project's own classes (or the allowed
    optimisers), anywhere in it, or that holds an interpolation; nothing is built before the whole config passes."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "_target_":
                check_target(value, where)
            else:
                check_allowed(value, f"{where}.{key}")
    elif isinstance(config, list):
        for index, value in enumerate(config):
            check_allowed(value, f"{where}[{index}]")
    elif isinstance(config, str) and "${" in config:
        raise CheckpointError(f"the checkpoint's stored config holds an interpolation at {where} ({config!r}); "
                              "stored configs are resolved, so this file was not written by dirac")


def check_target(target, where: str) -> None:
    """Allow a `_target_` only when it names a class defined in the dirac package (a network, operator, schedule,
    sampler, data module, loss or training severity) or one of the allowed optimisers."""
    if target in ALLOWED_EXTERNAL:
        return
    refusal = CheckpointError(f"the checkpoint's stored config asks to build {target!r} at {where}; only dirac's own "
                              "classes (and torch optimisers) may be built from a checkpoint, so it was refused")
    if not isinstance(target, str) or not target.startswith("dirac."):
        raise refusal
    try:
        obj = get_object(target)
    except Exception as error:  # an unknown path: refuse it rather than let Hydra import something else
        raise refusal from error
    if not (isinstance(obj, type) and obj.__module__.startswith("dirac.") and issubclass(obj, _buildable())):
        raise refusal


def _buildable() -> tuple[type, ...]:
    """The base classes of the objects a stored config may build."""
    import lightning as L
    from torch import nn

    from dirac.data.source import ImageSource
    from dirac.methods.dirac.severity import TiltedSeverity
    from dirac.samplers.reverse import DiracSampler

    return nn.Module, L.LightningDataModule, ImageSource, DiracSampler, TiltedSeverity


def module_from_checkpoint(checkpoint: dict, family: str | None = None):
    """The method module a loaded checkpoint was trained as, built from its stored (allowlisted) `model` config,
    with its weights, calibration and run config (one loader for every family)."""
    from dirac.methods.base import Method

    stored = read_metadata(checkpoint, family)
    model = stored["config"].get("model")
    if model is None:
        raise CheckpointError("the checkpoint stores no model config (checkpoint['dirac']['config']['model']), "
                              "so the module cannot be rebuilt from it alone")
    module = instantiate(model)
    if not isinstance(module, Method) or module.family != stored["family"]:
        raise CheckpointError(f"the checkpoint's model config builds a {type(module).__name__}, not a "
                              f"{stored['family']!r} method")
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint({**checkpoint, METADATA_KEY: stored})
    module.run_config = stored["config"]
    return module


def save_checkpoint(module, path: str | Path, global_step: int = 0) -> Path:
    """Write `<family>.ckpt`: the weights, the method's metadata and the step, atomically (tmp file + rename)."""
    import lightning as L

    checkpoint = {"state_dict": module.state_dict(), METADATA_KEY: module.metadata(), "global_step": int(global_step),
                  "pytorch-lightning_version": L.__version__}
    with atomic_path(path) as temporary:
        torch.save(checkpoint, temporary)
    return Path(path)
