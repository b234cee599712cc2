"""Argument checks shared by the samplers and restorers: clear `ValueError`s naming the bad setting."""

from __future__ import annotations

import math
from collections.abc import Sequence


def check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    """Raise a `ValueError` listing `allowed` when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def check_interval(name: str, value: float, low: float, high: float, *, open_low: bool = False) -> None:
    """Raise a `ValueError` when `value` is not a finite number in [low, high] (or (low, high] with `open_low`)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    above_low = is_number and (value > low if open_low else value >= low)
    if not (above_low and value <= high):
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")


def check_types(**parts: tuple[object, type]) -> None:
    """Raise a `TypeError` naming each part (name=(value, expected class)) that is not an instance of its class."""
    wrong = [f"{name} must be a {kind.__name__}, got {type(value).__name__}"
             for name, (value, kind) in parts.items() if not isinstance(value, kind)]
    if wrong:
        raise TypeError("; ".join(wrong))
