"""Data-parallel gradients for RGM (SPEC §4 "DDP"): G, D and the DSWD projection net step separately, each after its
own backward, which DDP's one-backward-per-forward reducer cannot follow (unused parameters in the D step, a second
ready mark in the next one). RGMModule therefore runs every backward outside the reducer and averages the gradients
of the network about to step here, explicitly: one all_reduce per optimiser step and per dtype."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """grad ← (1/W) Σ_processes grad for every parameter that requires one (a missing gradient counts as zero, so
    every process sends the same layout): the gradient of the mean of the per-process losses, as DDP computes it."""
    params = [param for param in parameters if param.requires_grad]
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        groups.setdefault((param.grad.dtype, param.grad.device), []).append(param.grad)
    world = dist.get_world_size()
    for grads in groups.values():
        flat = torch.cat([grad.reshape(-1) for grad in grads])
        dist.all_reduce(flat)
        flat.div_(world)
        for grad, chunk in zip(grads, flat.split([grad.numel() for grad in grads])):
            grad.copy_(chunk.view_as(grad))
