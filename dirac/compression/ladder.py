"""The decreasing noise ladder s_0 > s_1 > ... > s_{L-1} of the progressive encoder (SPEC §3, DiffC-style)."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from dirac.compression.errors import CodecError


def as_float32(value: float) -> float:
    """`value` rounded to the float32 a format-1 header stores, so encoder and decoder build the same ladder."""
    return struct.unpack("<f", struct.pack("<f", float(value)))[0]


def as_float16(value: float) -> float:
    """`value` rounded to the float16 a format-2 header stores (11 significant bits; inf beyond 65504)."""
    try:
        return struct.unpack("<e", struct.pack("<e", float(value)))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


@dataclass(frozen=True)
class Ladder:
    """Geometric noise levels s_i = s_max (s_min / s_max)^(i / (L - 1)), i = 0..L-1, in [0, 1] image units."""

    sigma_max: float = 2.0
    sigma_min: float = 0.01
    levels: int = 32

    def __post_init__(self) -> None:
        """Round the end points to float32 and refuse a ladder that is not strictly decreasing."""
        object.__setattr__(self, "sigma_max", as_float32(self.sigma_max))
        object.__setattr__(self, "sigma_min", as_float32(self.sigma_min))
        valid = (math.isfinite(self.sigma_max) and 0 < self.sigma_min < self.sigma_max and 2 <= self.levels < 2**16)
        if not valid:
            raise CodecError(f"invalid noise ladder sigma_max={self.sigma_max}, sigma_min={self.sigma_min}, "
                             f"levels={self.levels}: need 0 < sigma_min < sigma_max and 2 <= levels < 65536")

    def in_float16(self) -> Ladder:
        """This ladder with its end points rounded to float16, as a format-2 file stores them."""
        return Ladder(as_float16(self.sigma_max), as_float16(self.sigma_min), self.levels)

    def sigmas(self) -> list[float]:
        """s_0 .. s_{L-1}, geometric from sigma_max to sigma_min."""
        ratio = self.sigma_min / self.sigma_max
        return [self.sigma_max * ratio ** (i / (self.levels - 1)) for i in range(self.levels)]
