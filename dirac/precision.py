"""Mixed precision for the network only: operators, schedules and sampler arithmetic stay in float32 (issue 15, 5a)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

Network = Callable[..., Tensor]


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
