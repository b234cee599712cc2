"""The codec's own error: every problem with an image, a file or a model that the codec refuses (SPEC §3)."""

from __future__ import annotations

from dirac.errors import UserError


class CodecError(UserError, ValueError):
    """An image, a .drc file or a model the codec cannot use (wrong size, other version or model, corrupt data)."""
