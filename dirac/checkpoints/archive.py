"""A checkpoint file checked as a zip archive before `torch.load` reads any of it (issue 33): entry count and
uncompressed size against stated limits, so a crafted file cannot make the loader inflate gigabytes."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from dirac.errors import CheckpointError

# the flag that admits genuinely larger models, e.g. DIRAC_CHECKPOINT_LIMIT_GB=32
LIMIT_ENV = "DIRAC_CHECKPOINT_LIMIT_GB"
DEFAULT_LIMIT_GB = 8.0  # uncompressed bytes a checkpoint may hold (the largest reference model is ~1.3 GB)
MAX_ENTRIES = 65_536  # files in the archive (a state dict of N tensors has about N + 3)
MAX_EXPANSION = 4.0  # uncompressed / on-disk bytes: torch.save stores its entries uncompressed (ratio ~1)
SLACK_BYTES = 1 << 20  # uncompressed bytes any archive may hold beyond MAX_EXPANSION x its size (metadata, tiny files)


def size_limit() -> int:
    """The uncompressed bytes a checkpoint may hold: $DIRAC_CHECKPOINT_LIMIT_GB GiB, 8 by default."""
    text = os.environ.get(LIMIT_ENV, "")
    try:
        gigabytes = float(text) if text else DEFAULT_LIMIT_GB
    except ValueError:
        raise CheckpointError(f"{LIMIT_ENV}={text!r} is not a number of GiB") from None
    if not gigabytes > 0:
        raise CheckpointError(f"{LIMIT_ENV}={text!r} must be a positive number of GiB")
    return int(gigabytes * 2**30)


def check_archive(path: Path, limit: int | None = None) -> None:
    """Refuse a checkpoint that is not a zip archive, holds more than MAX_ENTRIES files, or whose entries would
    inflate beyond `limit` bytes (default `size_limit()`) or beyond MAX_EXPANSION x its size on disk."""
    limit = size_limit() if limit is None else limit
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is truncated, corrupted or not a torch "
                              f"checkpoint ({type(error).__name__}: {error})") from error
    if len(entries) > MAX_ENTRIES:
        raise CheckpointError(f"checkpoint {path} holds {len(entries)} archive entries, more than the "
                              f"{MAX_ENTRIES} a dirac checkpoint may hold, so it was not read")
    inflated, on_disk = sum(entry.file_size for entry in entries), path.stat().st_size
    if inflated > limit:
        raise CheckpointError(f"checkpoint {path} would inflate to {inflated / 2**30:.2f} GiB, above the "
                              f"{limit / 2**30:.2f} GiB limit; for a genuinely large model set {LIMIT_ENV}=<GiB>")
    if inflated > MAX_EXPANSION * on_disk + SLACK_BYTES:
        raise CheckpointError(f"checkpoint {path} would inflate from {on_disk} to {inflated} bytes (compressed "
                              f"entries; torch.save writes none), so it was not read: a decompression bomb")
