"""`python -m dirac.restore ckpt=<file> input=<folder or image> output=<folder>`: restore one's own measurements
with a trained Dirac checkpoint (SPEC §1.3 reverse process; SPEC §4 framework)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torch import Tensor
from tqdm import tqdm

from dirac.checkpoints import load_checkpoint, module_from_checkpoint
from dirac.compression.files import check_outputs
from dirac.config import register_resolvers
from dirac.errors import reports_user_errors
from dirac.methods.base import Method
from dirac.data.source import IMAGE_SUFFIXES, scan_images
from dirac.data.transforms import read_rgb, to_channels, to_float
from dirac.metrics import data_consistency
from dirac.reporting import save_png
from dirac.reporting.files import csv_text, write_text
from dirac.samplers.step import StepCallback
from dirac.tasks.restoration import restoration_generators

log = logging.getLogger(__name__)
TABLE = "data_consistency.csv"


@dataclass(frozen=True)
class RestoreReport:
    """What `restore` did: ||A_1(x0_hat) - y|| per restored file, the reason per skipped file, the CSV written."""

    consistency: dict[str, float]
    skipped: dict[str, str]
    table: Path


def select_device(name: str) -> torch.device:
    """`auto` (CUDA when available, else CPU) or an explicit torch device name such as `cpu` or `cuda:1`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:<index>") from error


def list_measurements(source: Path, output: Path) -> tuple[Path, list[Path], dict[str, str]]:
    """The folder that output names are relative to, the image files of `source` (one file, or a folder searched
    recursively without `output`) and the reason each other file there was skipped (no image suffix, a symbolic
    link: never followed), each named in a warning (SPEC §4)."""
    if not source.exists():
        raise FileNotFoundError(f"input {source} does not exist: pass input=<folder of measurements or one image file>")
    base = source if source.is_dir() else source.parent
    if output.resolve() == base.resolve():
        raise ValueError(f"output {output} is the folder of the measurements; the restored images would replace them")
    if not source.is_dir():
        return base, [source], {}
    files, skipped = scan_images([source], exclude=[output], verify=False)
    reasons = {path.relative_to(base).as_posix(): reason for path, reason in sorted(skipped.items())}
    for name, reason in reasons.items():
        log.warning("skipping %s: %s", name, reason)
    if not files:
        raise FileNotFoundError(f"no image files under {source} (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    return base, files, reasons


def output_names(files: Sequence[Path], base: Path, target: Path) -> list[Path]:
    """Each file's path relative to `base` with a `.png` suffix, refusing two inputs that would share an output
    (names compared case-insensitively) and an output in `target` that would replace an input."""
    names = [file.relative_to(base).with_suffix(".png") for file in files]
    check_outputs({file: [target / name] for file, name in zip(files, names)}, tables=[target / TABLE])
    return names


def read_measurement(path: Path, channels: int, image_size: int) -> Tensor:
    """A measurement y (SPEC §1.1) read from a file as a `(channels, S, S)` tensor in [0, 1] (values / 255), never
    resized: a file of another size gets a ValueError naming it and both sizes."""
    image = to_channels(to_float(read_rgb(path)), channels)
    height, width = image.shape[-2:]
    if (height, width) != (image_size, image_size):
        raise ValueError(f"{path} is {width}x{height} pixels but the model restores {image_size}x{image_size} "
                         "measurements; it is not resized, since resizing would change the measurement operator")
    return image


def pick_restorer(method: Method, name: str) -> str:
    """The restorer `name` names among the method's: an exact name (`dirac_do`) or the part after the family
    prefix (`do`); anything else is refused, listing the names offered."""
    offered = list(method.restorers())
    matches = [full for full in offered if full == name or full == f"{method.family}_{name}"]
    if not matches:
        raise ValueError(f"unknown restorer {name!r}; the checkpoint's {method.family!r} method offers "
                         f"{', '.join(offered)} (short names: "
                         f"{', '.join(n.removeprefix(method.family + '_') for n in offered)})")
    return matches[0]


def restore_batch(method: Method, restorer: str, y: Tensor, names: Sequence[str], seed: int = 0,
                  params: dict[str, float] | None = None, callback: StepCallback | None = None) -> Tensor:
    """The restoration x0_hat (unclipped) of measurements y by one of the method's restorers, its noise drawn per
    image from (seed, name) exactly as the restoration task draws it, so restoring a test split's y reproduces
    that test output; every sampler step's `Step` goes to `callback`."""
    chosen = method.restorers()[restorer].with_params(**(params or {}))
    return chosen(y, method.degradation, restoration_generators(seed, names, y.device), callback)


def restore(ckpt: str | Path, source: str | Path, output: str | Path, preset: str = "do", stop_t: float | None = None,
            batch_size: int = 8, device: str = "auto", seed: int = 0, progress: bool = True) -> RestoreReport:
    """Restore every measurement under `source` with one of the checkpoint's restorers (`preset`: do, po or a full
    name; SPEC §1.3); write the outputs as PNGs (same relative names) and data_consistency.csv
    (||A_1(x0_hat) - y|| per file) into `output`. Symbolic links in the folder are skipped (in the report); clashing
    output names, or an output that would replace an input, are refused before the checkpoint is read."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    source, target, ckpt = Path(source).expanduser(), Path(output).expanduser(), Path(ckpt).expanduser()
    base, files, skipped = list_measurements(source, target)
    names = output_names(files, base, target)
    method = load_method(ckpt, select_device(device))
    restorer = pick_restorer(method, preset)
    params = {} if stop_t is None else {"stop_t": stop_t}
    warn_uncalibrated(method, restorer, params)
    consistency: dict[str, float] = {}
    degradation = method.degradation
    steps = method.restorers()[restorer].with_params(**params).nfe  # sampler steps per batch
    with tqdm(total=math.ceil(len(files) / batch_size) * steps, unit="step", disable=not progress) as bar:
        for start in range(0, len(files), batch_size):
            chunk = list(zip(files[start : start + batch_size], names[start : start + batch_size]))
            usable = _read_chunk(chunk, base, degradation.channels, degradation.image_size, skipped)
            if usable:
                consistency.update(_restore_chunk(method, restorer, usable, target, params, seed,
                                                  lambda step: bar.update(1)))
            bar.update((start // batch_size + 1) * steps - bar.n)  # a batch of skipped files takes no steps
            bar.set_postfix(images=f"{min(start + batch_size, len(files))}/{len(files)}")
    if not consistency:
        raise ValueError(f"no measurement under {source} could be restored: " + "; ".join(skipped.values()))
    return RestoreReport(consistency, skipped, _write_table(target, consistency))


def load_method(ckpt: Path, device: torch.device) -> Method:
    """The checkpoint's method (weights, operators, noise, calibration; SPEC §4) on `device` in eval mode."""
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint file {ckpt} does not exist")
    method = module_from_checkpoint(load_checkpoint(ckpt)).to(device).eval()
    if not method.restorers():
        raise ValueError(f"the checkpoint holds a {method.family!r} method, which offers no restorers")
    return method


def warn_uncalibrated(method: Method, restorer: str, params: dict[str, float]) -> None:
    """Warn when a parameter the restorer tunes on validation data was never tuned (and is not given)."""
    chosen = method.restorers()[restorer]
    for param in chosen.tuned:
        if param not in params and param not in method.calibration.get(restorer, {}):
            log.warning("the checkpoint's %s %s was never calibrated; using %s=%.3f", restorer, param, param,
                        chosen.params[param])


def _read_chunk(chunk: Sequence[tuple[Path, Path]], base: Path, channels: int, image_size: int,
                skipped: dict[str, str]) -> list[tuple[str, Path, Tensor]]:
    """(input name, output name, image) of the usable files of a chunk; the others are logged and added to `skipped`."""
    usable = []
    for file, name in chunk:
        try:
            usable.append((file.relative_to(base).as_posix(), name, read_measurement(file, channels, image_size)))
        except ValueError as error:
            log.warning("skipping: %s", error)
            skipped[file.relative_to(base).as_posix()] = str(error)
    return usable


def _restore_chunk(method: Method, restorer: str, usable: Sequence[tuple[str, Path, Tensor]], target: Path,
                   params: dict[str, float], seed: int, callback: StepCallback) -> dict[str, float]:
    """Restore one batch of (input name, output name, y), write its PNGs atomically into `target` and return
    ||A_1(x0_hat) - y|| per input name (each image's noise from (seed, its input name)); steps go to `callback`."""
    inputs, outputs, images = zip(*usable)
    y = torch.stack(images).to(method.device)
    x0_hat = restore_batch(method, restorer, y, inputs, seed, params, callback).clamp(0.0, 1.0)
    distances = data_consistency(method.degradation.apply(x0_hat, y.new_ones(y.shape[0])), y)
    for image, name in zip(x0_hat.cpu(), outputs):
        save_png(image, target / name)
    return dict(zip(inputs, distances.tolist()))


def _write_table(target: Path, consistency: dict[str, float]) -> Path:
    """data_consistency.csv: one row (file, data_consistency) per restored input file, written atomically."""
    rows = [{"file": file, "data_consistency": f"{value:.6g}"} for file, value in consistency.items()]
    return write_text(target / TABLE, csv_text(["file", "data_consistency"], rows))


@hydra.main(config_path="../conf", config_name="restore", version_base="1.3")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    """Run `restore` with the command line's settings and log what was written and what was skipped."""
    report = restore(cfg.ckpt, cfg.input, cfg.output, preset=cfg.preset, stop_t=cfg.stop_t,
                     batch_size=cfg.batch_size, device=cfg.device, seed=cfg.seed, progress=cfg.progress)
    log.info("restored %d image(s) into %s (data consistency in %s); skipped %d: %s", len(report.consistency),
             cfg.output, report.table, len(report.skipped), ", ".join(report.skipped) or "none")


register_resolvers()

if __name__ == "__main__":
    main()
