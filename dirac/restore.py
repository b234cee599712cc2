"""`python -m dirac.restore ckpt=<file> input=<folder or image> output=<folder>`: restore one's own measurements
with a trained Dirac checkpoint (SPEC §1.3 reverse process; SPEC §4 framework)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor
from tqdm import tqdm

from dirac.checkpoints import load_checkpoint, module_from_checkpoint
from dirac.config import register_resolvers
from dirac.data.source import list_images
from dirac.data.transforms import read_rgb, to_channels, to_float
from dirac.metrics import data_consistency
from dirac.reporting import save_png
from dirac.reporting.files import csv_text, write_text
from dirac.samplers.reverse import Generators, StepCallback

log = logging.getLogger(__name__)
PRESETS = ("do", "po")
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


def list_measurements(source: Path, output: Path) -> tuple[Path, list[Path]]:
    """The folder that output names are relative to, and the image files of `source`: one file, or a folder
    searched recursively without `output` (files without an image suffix are named in a warning) (SPEC §4)."""
    if not source.exists():
        raise FileNotFoundError(f"input {source} does not exist: pass input=<folder of measurements or one image file>")
    base = source if source.is_dir() else source.parent
    if output.resolve() == base.resolve():
        raise ValueError(f"output {output} is the folder of the measurements; the restored images would replace them")
    files = list_images([source], exclude=[output], verify=False) if source.is_dir() else [source]
    return base, files


def output_names(files: Sequence[Path], base: Path) -> list[Path]:
    """Each file's path relative to `base` with a `.png` suffix, refusing two inputs that would share an output."""
    names = [file.relative_to(base).with_suffix(".png") for file in files]
    first: dict[Path, Path] = {}
    for file, name in zip(files, names):
        if first.setdefault(name, file) != file:
            raise ValueError(f"{first[name]} and {file} would both be restored to {name}; rename one of them")
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


def reconstruct_batch(module: L.LightningModule, y: Tensor, preset: str, stop_t: float | None,
                      callback: StepCallback | None = None, generator: Generators = None) -> tuple[Tensor, Tensor]:
    """The Dirac reconstruction x0_hat of measurements y clipped to [0, 1] (SPEC §1.3) and its per-image data
    consistency ||A_1(x0_hat) - y||, shape `(B,)`."""
    x0_hat = module.reconstruct(y, preset, callback=callback, stop_t=stop_t, generator=generator).clamp(0.0, 1.0)
    return x0_hat, data_consistency(module.degradation.apply(x0_hat, y.new_ones(y.shape[0])), y)


def restore(ckpt: str | Path, source: str | Path, output: str | Path, preset: str = "do", stop_t: float | None = None,
            batch_size: int = 8, device: str = "auto", seed: int = 0, progress: bool = True) -> RestoreReport:
    """Restore every measurement under `source` with the checkpoint's Dirac reverse process (SPEC §1.3); write the
    outputs as PNGs (same relative names) and data_consistency.csv (||A_1(x0_hat) - y|| per file) into `output`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose do (distortion-optimised) or po (perception-optimised)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    source, target, ckpt = Path(source).expanduser(), Path(output).expanduser(), Path(ckpt).expanduser()
    base, files = list_measurements(source, target)
    names = output_names(files, base)
    module = load_module(ckpt, select_device(device), preset, stop_t)
    consistency: dict[str, float] = {}
    skipped: dict[str, str] = {}
    with tqdm(total=len(files), unit="image", disable=not progress) as bar:
        for start in range(0, len(files), batch_size):
            chunk = list(zip(files[start : start + batch_size], names[start : start + batch_size]))
            usable = _read_chunk(chunk, base, module.degradation.channels, module.degradation.image_size, skipped)
            if usable:
                consistency.update(_restore_chunk(module, usable, target, preset, stop_t, seed, _step_postfix(bar)))
            bar.update(len(chunk))
    if not consistency:
        raise ValueError(f"no measurement under {source} could be restored: " + "; ".join(skipped.values()))
    return RestoreReport(consistency, skipped, _write_table(target, consistency))


def load_module(ckpt: Path, device: torch.device, preset: str, stop_t: float | None) -> L.LightningModule:
    """The checkpoint's module (weights, operators, noise, stops; SPEC §4) on `device` in eval mode, without metrics;
    warns when a preset is asked for whose automatic stop was never calibrated."""
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint file {ckpt} does not exist")
    module = module_from_checkpoint(load_checkpoint(ckpt), metrics=None).to(device).eval()
    if stop_t is None and preset in module.auto_presets - module.calibrated_presets:
        log.warning("the checkpoint's Dirac-%s stop was never calibrated; using stop_t=%.3f", preset.upper(),
                    module.stops[preset])
    return module


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


def _restore_chunk(module: L.LightningModule, usable: Sequence[tuple[str, Path, Tensor]], target: Path, preset: str,
                   stop_t: float | None, seed: int, callback: StepCallback) -> dict[str, float]:
    """Reconstruct one batch of (input name, output name, y), write its PNGs atomically into `target` and return
    ||A_1(x0_hat) - y|| per input name. Each image draws its noise from its own generator, seeded by `seed` and
    its name, so its output does not depend on which other files share its batch."""
    inputs, outputs, images = zip(*usable)
    generators = [image_generator(seed, name, module.device) for name in inputs]
    x0_hat, distances = reconstruct_batch(module, torch.stack(images).to(module.device), preset, stop_t, callback,
                                          generators)
    for image, name in zip(x0_hat.cpu(), outputs):
        save_png(image, target / name)
    return dict(zip(inputs, distances.tolist()))


def image_generator(seed: int, name: str, device: torch.device) -> torch.Generator:
    """A generator seeded by the run seed and a stable hash of the image's name."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def _step_postfix(bar: tqdm) -> StepCallback:
    """A sampler callback showing the current reverse step and time in the progress bar's postfix."""
    return lambda state: bar.set_postfix_str(f"step {state.index + 1}, t={state.t:.2f}")


def _write_table(target: Path, consistency: dict[str, float]) -> Path:
    """data_consistency.csv: one row (file, data_consistency) per restored input file, written atomically."""
    rows = [{"file": file, "data_consistency": f"{value:.6g}"} for file, value in consistency.items()]
    return write_text(target / TABLE, csv_text(["file", "data_consistency"], rows))


@hydra.main(config_path="../conf", config_name="restore", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Run `restore` with the command line's settings and log what was written and what was skipped."""
    report = restore(cfg.ckpt, cfg.input, cfg.output, preset=cfg.preset, stop_t=cfg.stop_t,
                     batch_size=cfg.batch_size, device=cfg.device, seed=cfg.seed, progress=cfg.progress)
    log.info("restored %d image(s) into %s (data consistency in %s); skipped %d: %s", len(report.consistency),
             cfg.output, report.table, len(report.skipped), ", ".join(report.skipped) or "none")


register_resolvers()

if __name__ == "__main__":
    main()
