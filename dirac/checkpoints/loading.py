"""Checkpoint files: lookup, loading (archive checked, then weights_only), metadata in the current format, and the
method rebuilt from its stored config by the project's own builder (issues 15, 33)."""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path

import torch

from dirac.checkpoints.archive import check_archive
from dirac.checkpoints.stored import MAX_DEPTH, METHODS, TABULATED, TARGET, build, check_stored, replace_paths
from dirac.errors import CheckpointError
from dirac.reporting.files import atomic_path

log = logging.getLogger(__name__)

METADATA_KEY = "dirac"
FORMAT_VERSION = 2
# Format 1 (before methods and tasks were split): module paths that moved, and evaluation settings now the task's.
V1_TARGETS = {"dirac.models.DiracModule": "dirac.methods.dirac.DiracModule",
              "dirac.models.LookAheadLoss": "dirac.methods.dirac.LookAheadLoss"}
V1_EVALUATION_KEYS = ("metrics", "curve_every", "val_images", "save_images")
# Classes a checkpoint may name that moved since it was written (issue 32: the Dirac sampler's settings left
# dirac.samplers for dirac.restorers): old `_target_` -> today's, applied to every stored config before it is checked.
MOVED_TARGETS = {"dirac.samplers.DiracSampler": "dirac.restorers.DiracSampler"}


def newest_last_checkpoint(search_root: Path) -> Path | None:
    """The most recently written `last.ckpt` below `search_root`, or None."""
    candidates = [path for path in search_root.glob("**/checkpoints/last.ckpt") if path.is_file()]
    return max(candidates, key=lambda path: path.stat().st_mtime, default=None)


def resolve_checkpoint(ckpt_path: str | None, resume: bool, search_root: Path) -> Path | None:
    """The checkpoint to resume or evaluate: an explicit file,
    or with `last`/resume the newest last.ckpt of the experiment."""
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


def load_checkpoint(path: str | Path, family: str | None = None, limit: int | None = None) -> dict:
    """A dirac checkpoint: its archive checked against the size limits, read with `weights_only=True`, its metadata
    upgraded to the current format and its stored config checked as closed data; any bad file is a CheckpointError."""
    path = Path(path)
    check_archive(path, limit)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is truncated, corrupted or not a torch "
                              f"checkpoint ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
                              ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or METADATA_KEY not in checkpoint:
        raise CheckpointError(f"checkpoint {path} was not written by dirac (it lacks the 'state_dict' and "
                              "'dirac' entries)")
    if not isinstance(checkpoint["state_dict"], dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(checkpoint['state_dict']).__name__} as its state_dict")
    checkpoint[METADATA_KEY] = read_metadata(checkpoint, family)
    return checkpoint


def read_metadata(checkpoint: dict, family: str | None = None) -> dict:
    """The checkpoint's `dirac` entry in the current format (format 1 is upgraded), checked for family and safety."""
    stored = checkpoint.get(METADATA_KEY)
    if type(stored) is not dict:
        raise CheckpointError("the checkpoint was not written by dirac (no 'dirac' metadata entry)")
    if "format_version" not in stored and {"config", "stops", "signature"} <= set(stored):
        stored = upgrade_v1(stored)
    version = stored.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version!r} is not supported: this dirac reads format "
                              f"{FORMAT_VERSION} (and upgrades format 1); re-save it with the dirac that wrote it")
    missing = {"family", "config", "signature", "calibration"} - set(stored)
    if missing:
        raise CheckpointError(f"the checkpoint's dirac metadata lacks {sorted(missing)}")
    check_metadata_types(stored)
    if family is not None and stored["family"] != family:
        raise CheckpointError(f"this is a {stored['family']!r} checkpoint, but a {family!r} checkpoint is needed here")
    check_stored(stored["signature"], built=None)
    config = inline_schedules(_renamed(stored["config"], MOVED_TARGETS), stored["signature"])
    check_stored(config)
    return {**stored, "config": config}


def check_metadata_types(stored: dict) -> None:
    """Refuse metadata whose family is not a string, config or signature not a dict, or calibration not a
    restorer -> parameter -> number table."""
    calibration = stored["calibration"]
    numbers = (int, float)
    well_formed = (type(stored["family"]) is str and type(stored["config"]) is dict
                   and type(stored["signature"]) is dict and type(calibration) is dict
                   and all(type(name) is str and type(values) is dict
                           and all(type(key) is str and type(value) in numbers for key, value in values.items())
                           for name, values in calibration.items()))
    if not well_formed:
        raise CheckpointError("the checkpoint's dirac metadata is malformed: family must be a string, config and "
                              "signature dicts, calibration a restorer -> parameter -> number table")


def upgrade_v1(stored: dict) -> dict:
    """Format 1 metadata (config, stops, calibrated, signature of a Dirac run) in the current format."""
    config, stops, calibrated = stored["config"], stored["stops"], stored.get("calibrated", [])
    if type(config) is not dict or type(stops) is not dict or type(calibrated) is not list or \
            not all(type(preset) is str and type(stops.get(preset)) in (int, float) for preset in calibrated):
        raise CheckpointError("the checkpoint's format-1 metadata is malformed: config and stops must be dicts, "
                              "calibrated a list of presets with a numeric stop each")
    config = _renamed(config, V1_TARGETS)
    model = config.get("model")
    if type(model) is dict:
        if "eval_seed" in model:
            model["val_seed"] = model.pop("eval_seed")
        for key in V1_EVALUATION_KEYS:
            model.pop(key, None)
    calibration = {f"dirac_{preset}": {"stop_t": float(stops[preset])} for preset in calibrated}
    log.info("read a format-1 Dirac checkpoint (written before methods and tasks were split); upgraded in memory")
    return {"family": "dirac", "format_version": FORMAT_VERSION, "config": config,
            "signature": stored["signature"], "calibration": calibration}


def _renamed(value, targets: dict[str, str], depth: int = 0):
    """A copy of a stored config with every `_target_` named in `targets` replaced by its new name, down to MAX_DEPTH
    (deeper nesting is left as it is, for `check_stored` to refuse); nothing is imported or built."""
    if depth > MAX_DEPTH:
        return value
    if type(value) is dict:
        return {key: targets.get(item, item) if key == TARGET and type(item) is str
                else _renamed(item, targets, depth + 1) for key, item in value.items()}
    if type(value) is list:
        return [_renamed(item, targets, depth + 1) for item in value]
    return value


def inline_schedules(config: dict, signature: dict) -> dict:
    """The stored config with a schedule file path (written before issue 33) replaced by the knots the checkpoint's
    signature recorded, so no file is read; a path without recorded knots is left for `check_stored` to refuse."""
    recorded = signature.get("degradation", {})
    knots = recorded.get("schedule") if type(recorded) is dict else None
    if type(knots) is not dict or knots.get("kind") != "tabulated":
        return config
    table = {TARGET: TABULATED, "t_knots": knots.get("t"), "c_knots": knots.get("c")}
    return replace_paths(config, lambda path: dict(table))


def module_from_checkpoint(checkpoint: dict, family: str | None = None):
    """The method module a loaded checkpoint was trained as, built by `stored.build` from its checked `model`
    config, with its weights, calibration and run config (one loader for every family); a `model` that is not the
    family's method class is refused before anything is built."""
    stored = read_metadata(checkpoint, family)
    model = stored["config"].get("model")
    if type(model) is not dict or TARGET not in model:
        raise CheckpointError("the checkpoint stores no model config (checkpoint['dirac']['config']['model']), "
                              "so the module cannot be rebuilt from it alone")
    if METHODS.get(model[TARGET]) != stored["family"]:
        raise CheckpointError(f"the checkpoint's model config builds a {model[TARGET]}, not a "
                              f"{stored['family']!r} method")
    module = build(model)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError, KeyError) as error:
        raise CheckpointError(f"the checkpoint's weights do not fit the model its config builds: "
                              f"{str(error).splitlines()[0]}") from error
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
