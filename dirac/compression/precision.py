"""The codec's arithmetic in float32 whatever autocast is active around it (issue 34 item 2): a trainer's bf16-mixed
must not change which candidate PFR picks nor the x_s the decoder rebuilds, so files written under it decode bit for
bit with `python -m dirac.decompress` (float32)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


@contextmanager
def autocast_off() -> Iterator[None]:
    """Autocast disabled on the CPU and, when present, on CUDA, inside the block."""
    with ExitStack() as stack:
        for device in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
            stack.enter_context(torch.autocast(device, enabled=False))
        yield


def in_float32(function: F) -> F:
    """`function` run under `autocast_off` (model calls and PFR scoring in float32)."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        with autocast_off():
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]
