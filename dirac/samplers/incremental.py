"""Incremental-reconstruction terms R of the Dirac reverse step (SPEC §1.3, paper App. G)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dirac.checks import check_choice
from dirac.degradations.base import Degradation
from dirac.samplers.grids import TIME_EPS

INCREMENTAL_VARIANTS = ("look_ahead", "small_look_ahead", "look_back", "small_look_back", "exact", "identity")

Variant = Callable[[Degradation, Tensor, Tensor, float, float, float], Tensor]


def _at(degradation: Degradation, x: Tensor, s: float) -> Tensor:
    """A_s(x) for one time `s` shared by the whole batch, without the checks of `forward`."""
    return degradation.apply(x, x.new_full((x.shape[0],), s))


def _look_ahead(
    degradation: Degradation, x0_hat: Tensor, y_hat: Tensor, t: float, dt: float, delta: float
) -> Tensor:
    """A_{t'}(x0_hat) - y_hat with t' = max(t - dt, 0)."""
    return _at(degradation, x0_hat, max(t - dt, 0.0)) - y_hat


def _small_look_ahead(
    degradation: Degradation, x0_hat: Tensor, y_hat: Tensor, t: float, dt: float, delta: float
) -> Tensor:
    """(A_{t-delta}(x0_hat) - y_hat) * dt / delta, with delta shrunk to t near t = 0."""
    step = min(delta, t)
    return (_at(degradation, x0_hat, t - step) - y_hat) * (dt / step)


def _look_back(
    degradation: Degradation, x0_hat: Tensor, y_hat: Tensor, t: float, dt: float, delta: float
) -> Tensor:
    """y_hat - A_{t+dt}(x0_hat); look-ahead while t + dt > 1 (the first step)."""
    if t + dt > 1.0 + TIME_EPS:
        return _look_ahead(degradation, x0_hat, y_hat, t, dt, delta)
    return y_hat - _at(degradation, x0_hat, min(t + dt, 1.0))


def _small_look_back(
    degradation: Degradation, x0_hat: Tensor, y_hat: Tensor, t: float, dt: float, delta: float
) -> Tensor:
    """(y_hat - A_{t+delta}(x0_hat)) * dt / delta; look-ahead while t + delta > 1 (the first step)."""
    if t + delta > 1.0 + TIME_EPS:
        return _look_ahead(degradation, x0_hat, y_hat, t, dt, delta)
    return (y_hat - _at(degradation, x0_hat, min(t + delta, 1.0))) * (dt / delta)


def _exact(
    degradation: Degradation, x0_hat: Tensor, y_hat: Tensor, t: float, dt: float, delta: float
) -> Tensor:
    """-dt * dA_t(x0_hat)/dt, the Jacobian-vector product in t (no input checks, no host sync)."""
    times = x0_hat.new_full((x0_hat.shape[0],), t)
    _, tangent = torch.func.jvp(lambda s: degradation.apply(x0_hat, s), (times,), (torch.ones_like(times),))
    return -dt * tangent


def _identity(
    degradation: Degradation, x0_hat: Tensor, y_hat: Tensor, t: float, dt: float, delta: float
) -> Tensor:
    """No incremental reconstruction: R = 0."""
    return torch.zeros_like(y_hat)


_VARIANTS: dict[str, Variant] = {
    "look_ahead": _look_ahead,
    "small_look_ahead": _small_look_ahead,
    "look_back": _look_back,
    "small_look_back": _small_look_back,
    "exact": _exact,
    "identity": _identity,
}


def incremental_reconstruction(
    variant: str,
    degradation: Degradation,
    x0_hat: Tensor,
    y_hat: Tensor,
    t: float,
    dt: float,
    small_delta: float = 0.005,
) -> Tensor:
    """R of one reverse step from t to max(t - dt, 0), given y_hat = A_t(x0_hat) (SPEC §1.3, App. G variants)."""
    check_choice("incremental reconstruction", variant, INCREMENTAL_VARIANTS)
    return _VARIANTS[variant](degradation, x0_hat, y_hat, t, dt, small_delta)
