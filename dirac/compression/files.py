"""Images and .drc files on disk for the compress / decompress entry points (SPEC §3, §4): reading an image for the
model without converting it, listing inputs, output names, atomic writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from dirac.compression.errors import CodecError
from dirac.reporting.files import atomic_path

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


def list_inputs(source: Path, output: Path, suffixes: Sequence[str] | None = None) -> tuple[Path, list[Path]]:
    """The folder output names are relative to, and the input files: `source` itself, or the files under the folder
    `source` (recursive, hidden files and `output` excluded; only `suffixes` when given), sorted."""
    if not source.exists():
        raise CodecError(f"input {source} does not exist: pass input=<file or folder>")
    if source.is_file():
        return source.parent, [source]
    if output.resolve() == source.resolve():
        raise CodecError(f"output {output} is the input folder; write the results elsewhere")
    files = sorted(path for path in source.rglob("*") if path.is_file()
                   and not any(part.startswith(".") for part in path.relative_to(source).parts)
                   and output.resolve() not in path.resolve().parents
                   and (suffixes is None or path.suffix.lower() in suffixes))
    if not files:
        raise CodecError(f"no input files under {source}")
    return source, files


def write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary name and a rename, so an interrupted run leaves no partial file."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return path
