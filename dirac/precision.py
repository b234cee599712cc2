"""Mixed precision for the network only: operators, schedules and sampler arithmetic stay in float32 (issue 15, 5a);
the codec entirely in float32, so files written under a trainer's bf16-mixed decode bit for bit (issue 34 item 2)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TypeVar

import torch
from torch import Tensor

Network = Callable[..., Tensor]
F = TypeVar("F", bound=Callable)


@contextmanager
def autocast_network_only(device_type: str) -> Iterator[Callable[[Network], Network]]:
    """Turn autocast off inside the block; the yielded wrapper runs a network under the autocast that was active
    outside (e.g. Lightning's bf16-mixed) and returns its output in float32.

    The Dirac step subtracts two nearly equal operator outputs (R = A_t'(x0_hat) - A_t(x0_hat)); in bf16 their
    rounding error exceeds R itself, so only the network may run in reduced precision.
    """
    enabled = torch.is_autocast_enabled(device_type)
    dtype = torch.get_autocast_dtype(device_type)

    def under_outer_autocast(network: Network) -> Network:
        def call(*args: Tensor) -> Tensor:
            with torch.autocast(device_type, dtype=dtype, enabled=enabled):
                output = network(*args)
            return output.float()
        return call

    with torch.autocast(device_type, enabled=False):
        yield under_outer_autocast


@functools.cache
def cuda_present() -> bool:
    """torch.cuda.is_available(), asked once per process (each call probes NVML: 0.3 ms where there is none)."""
    return torch.cuda.is_available()


@contextmanager
def autocast_off() -> Iterator[None]:
    """Autocast disabled on the CPU and, when present, on CUDA, inside the block."""
    with ExitStack() as stack:
        for device in ("cpu", "cuda") if cuda_present() else ("cpu",):
            stack.enter_context(torch.autocast(device, enabled=False))
        yield


def in_float32(function: F) -> F:
    """`function` run under `autocast_off` (model calls and PFR scoring in float32)."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        with autocast_off():
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]


def trackable(x: Tensor) -> Tensor:
    """`x`, or a normal copy of it when it is an inference tensor (Lightning validates under inference mode), which
    autograd cannot record: the guided samplers differentiate through the network there."""
    return x.clone() if x.is_inference() else x
