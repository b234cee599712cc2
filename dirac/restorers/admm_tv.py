"""ADMM-TV (SPEC §1.5): min_x 1/2 ||A x - y||^2 + lambda TV(x) by ADMM, classical (no network).

Splitting (C-SALSA, Afonso et al. 2011): v1 = x carries the data term, v2 = D x the total variation (D the forward
differences with Neumann boundary). Each iteration:

    x  = (I + D^T D)^{-1} [(v1 - u1) + D^T (v2 - u2)]      exact, the DCT-II diagonalises D^T D
    v1 = prox_{f/rho}(x + u1) = operator.prox_l2(x + u1, y, 1/rho)
    v2 = shrink(D x + u2, lambda/rho)                      soft-thresholding (anisotropic) or its group form (isotropic)
    u1 += x - v1;  u2 += D x - v2

Every step is batched over images; no host synchronisation inside the loop (the operator's prox is closed form for
families with an SVD; others use the operator's conjugate gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from dirac.checks import check_choice
from dirac.degradations.base import Degradation
from dirac.degradations.operators import LinearOperator
from dirac.restorers.baseline import BaselineRestorer, measurement_operator
from dirac.samplers.step import Step, StepCallback
from dirac.seeding import Generators

TV_KINDS = ("anisotropic", "isotropic")


def gradient(x: Tensor) -> Tensor:
    """D x: forward differences along H and W (zero at the last row/column, Neumann), stacked as `(B, 2, C, H, W)`."""
    dh = torch.zeros_like(x)
    dw = torch.zeros_like(x)
    dh[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    dw[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return torch.stack([dh, dw], dim=1)


def gradient_adjoint(g: Tensor) -> Tensor:
    """D^T g for `g` of shape `(B, 2, C, H, W)` (the negative divergence)."""
    dh, dw = g[:, 0], g[:, 1]
    out = torch.zeros_like(dh)
    out[..., :-1, :] -= dh[..., :-1, :]
    out[..., 1:, :] += dh[..., :-1, :]
    out[..., :, :-1] -= dw[..., :, :-1]
    out[..., :, 1:] += dw[..., :, :-1]
    return out


def total_variation(x: Tensor, kind: str = "anisotropic") -> Tensor:
    """TV(x) per image, `(B,)`: sum |D_h x| + |D_w x| (anisotropic) or sum sqrt(D_h x^2 + D_w x^2) (isotropic)."""
    g = gradient(x)
    per_pixel = g.abs().sum(dim=1) if kind == "anisotropic" else g.square().sum(dim=1).sqrt()
    return per_pixel.flatten(1).sum(dim=1)


def tv_objective(x: Tensor, y: Tensor, operator: LinearOperator, lam: float, kind: str = "anisotropic") -> Tensor:
    """The ADMM-TV objective 1/2 ||A x - y||^2 + lambda TV(x) per image, `(B,)` (SPEC §1.5)."""
    return 0.5 * (operator.A(x) - y).flatten(1).square().sum(dim=1) + lam * total_variation(x, kind)


def shrink(v: Tensor, threshold: float, kind: str) -> Tensor:
    """prox of threshold * ||.||_1 (soft-thresholding) or of the isotropic group norm over the two directions."""
    if kind == "anisotropic":
        return v.sign() * (v.abs() - threshold).clamp_min(0)
    norm = v.square().sum(dim=1, keepdim=True).sqrt()
    return v * (1 - threshold / norm.clamp_min(1e-12)).clamp_min(0)


def dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The orthonormal DCT-II matrix C (n x n): C[k, i] = a_k cos(pi (i + 1/2) k / n)."""
    k = torch.arange(n, dtype=torch.float64, device=device)[:, None]
    i = torch.arange(n, dtype=torch.float64, device=device)[None, :]
    matrix = torch.cos(math.pi * (i + 0.5) * k / n) * math.sqrt(2 / n)
    matrix[0] /= math.sqrt(2)
    return matrix.to(dtype)


class NeumannLaplacianSolver:
    """Solves (I + D^T D) x = b exactly: D^T D = C^T diag(2 - 2 cos(pi k / n) summed over both axes) C per plane."""

    def __init__(self, height: int, width: int, dtype: torch.dtype, device: torch.device) -> None:
        self.ch, self.cw = dct_matrix(height, dtype, device), dct_matrix(width, dtype, device)
        eh = 2 - 2 * torch.cos(math.pi * torch.arange(height, device=device, dtype=torch.float64) / height)
        ew = 2 - 2 * torch.cos(math.pi * torch.arange(width, device=device, dtype=torch.float64) / width)
        self.inverse = (1 / (1 + eh[:, None] + ew[None, :])).to(dtype)

    def __call__(self, b: Tensor) -> Tensor:
        """x = (I + D^T D)^{-1} b on every image plane."""
        spectrum = self.ch @ b @ self.cw.mT
        return self.ch.mT @ (spectrum * self.inverse) @ self.cw


@dataclass(frozen=True, eq=False)
class ADMMTV(BaselineRestorer):
    """ADMM-TV (SPEC §1.5): `iterations` ADMM steps on 1/2 ||A x - y||^2 + lam TV(x) with penalty `rho`, from x = y.

    Tunable: `lam` (the TV weight, the main parameter) and `rho` (the penalty; with a fixed iteration count it
    changes the result). `tv`: "anisotropic" or "isotropic". NFE 0 (no network).
    """

    PARAMS: ClassVar[tuple[str, ...]] = ("lam", "rho")
    METHOD: ClassVar[str] = "ADMM-TV"

    lam: float = 0.02
    rho: float = 0.2
    iterations: int = 100
    tv: str = "anisotropic"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("tv", self.tv, TV_KINDS)
        if int(self.iterations) < 1:
            raise ValueError(f"ADMM-TV needs iterations >= 1, got {self.iterations}")
        if self.rho <= 0:
            raise ValueError(f"ADMM-TV needs rho > 0, got {self.rho}")
        object.__setattr__(self, "iterations", int(self.iterations))

    def objective_value(self, x: Tensor, y: Tensor, degradation: Degradation) -> Tensor:
        """1/2 ||A_1 x - y||^2 + lam TV(x) per image (what the iterations decrease)."""
        return tv_objective(x, y, measurement_operator(degradation, y), self.lam, self.tv)

    @torch.no_grad()
    def restore(self, y: Tensor, degradation: Degradation, generator: Generators,
                callback: StepCallback | None) -> Tensor:
        """ADMM from x = v1 = y, v2 = D y, u = 0; returns x after `iterations` steps."""
        operator = measurement_operator(degradation, y)
        solve = NeumannLaplacianSolver(y.shape[-2], y.shape[-1], y.dtype, y.device)
        x, v1, v2 = y, y, gradient(y)
        previous = x
        u1, u2 = torch.zeros_like(v1), torch.zeros_like(v2)
        gamma, threshold = 1 / self.rho, self.lam / self.rho
        for index in range(self.iterations):
            x = solve((v1 - u1) + gradient_adjoint(v2 - u2))
            dx = gradient(x)
            v1 = operator.prox_l2(x + u1, y, gamma)
            v2 = shrink(dx + u2, threshold, self.tv)
            u1, u2 = u1 + x - v1, u2 + dx - v2
            if callback is not None:
                callback(Step(index, self.iterations, None, None, previous, x, x))
            previous = x
        return x
