"""Checkpoints are data, never code (issues 15, 33): the archive is checked before `torch.load`, the stored config
is checked as closed data against an allowlist of classes, and the project's own builder makes the method from it."""

from dirac.checkpoints.archive import LIMIT_ENV, check_archive
from dirac.checkpoints.loading import (FORMAT_VERSION, METADATA_KEY, load_checkpoint, module_from_checkpoint,
                                       newest_last_checkpoint, read_metadata, resolve_checkpoint, save_checkpoint)
from dirac.checkpoints.stored import BUILDABLE, RECORDED, build, check_stored, with_schedule_contents

__all__ = ["BUILDABLE", "FORMAT_VERSION", "LIMIT_ENV", "METADATA_KEY", "RECORDED", "build", "check_archive",
           "check_stored", "load_checkpoint", "module_from_checkpoint", "newest_last_checkpoint", "read_metadata",
           "resolve_checkpoint", "save_checkpoint", "with_schedule_contents"]
