"""Images and .drc files on disk for the compress / decompress entry points (SPEC §3, §4): reading an image for the
model without converting it, listing inputs (symbolic links skipped), output names that never collide or
replace an input, atomic writes."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from dirac.compression.errors import CodecError
from dirac.data.source import LINK_SKIPPED, listing, walk_files
from dirac.reporting.files import atomic_path

log = logging.getLogger(__name__)
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def read_image(path: Path) -> Tensor:
    """An image file as a float32 `(C, H, W)` tensor in [0, 1] (values / 255): grey modes 1 channel, others RGB;
    never resized or converted to another channel count; an unreadable file is a CodecError."""
    try:
        with Image.open(path) as image:
            grey = image.mode in GREY_MODES
            array = np.asarray(image.convert("L" if grey else "RGB"))
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as error:
        raise CodecError(f"{path} is not a readable image: {error}") from error
    tensor = torch.from_numpy(array.copy())
    tensor = tensor[None] if grey else tensor.permute(2, 0, 1)
    return tensor.to(torch.float32) / 255.0


@dataclass(frozen=True)
class Inputs:
    """What an entry point reads: the folder output names are relative to, the input files, and the symbolic links
    inside an input folder that were skipped (never followed)."""

    base: Path
    files: list[Path]
    links: list[Path]

    def skipped_links(self) -> dict[str, str]:
        """The skipped links by name relative to `base`, with the reason (for an entry point's report)."""
        return {link.relative_to(self.base).as_posix(): LINK_SKIPPED for link in self.links}


def scan_inputs(source: Path, output: Path, suffixes: Sequence[str] | None = None) -> Inputs:
    """`source` itself, or the regular files under the folder `source` (recursive; hidden files, `output` and symbolic
    links left out, the links named in a warning; only `suffixes` when given), sorted."""
    if not source.exists():
        raise CodecError(f"input {source} does not exist: pass input=<file or folder>")
    if source.is_file():
        return Inputs(source.parent, [source], [])
    if output.resolve() == source.resolve():
        raise CodecError(f"output {output} is the input folder; write the results elsewhere")
    files, links = walk_files(source, exclude=[output])
    if links:
        log.warning("skipping %d symbolic link(s) in %s, not followed: %s", len(links), source, listing(links))
    files = [path for path in files if suffixes is None or path.suffix.lower() in suffixes]
    if not files:
        raise CodecError(f"no input files under {source}")
    return Inputs(source, files, links)


def check_outputs(plan: Mapping[Path, Sequence[Path]], tables: Sequence[Path] = ()) -> None:
    """Refuse, before anything is written, two inputs of `plan` (input -> its output paths) whose outputs share a name
    and any output (or report table) that is an input file; paths are compared resolved and case-insensitively, as
    a case-insensitive file system (macOS, Windows) would see them."""
    inputs = {_same_file_key(file): file for file in plan}
    owners: dict[str, Path | None] = {}
    pairs = [(file, output) for file, outputs in plan.items() for output in outputs]
    for file, output in [*pairs, *((None, table) for table in tables)]:
        key = _same_file_key(output)
        writer = "the report table" if file is None else str(file)
        if key in inputs:
            raise CodecError(f"{writer} would be written to {output}, over the input file {inputs[key]}; "
                             "give output= a folder apart from the inputs")
        if owners.setdefault(key, file) != file:
            raise CodecError(f"{owners[key]} and {file} would both be written to {output} (output names are "
                             "compared case-insensitively); rename one of them")


def _same_file_key(path: Path) -> str:
    """The resolved path, case-folded: two paths with one key are one file on a case-insensitive file system."""
    return str(Path(path).expanduser().resolve()).casefold()


def write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary name and a rename, so an interrupted run leaves no partial file."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return path
