"""The generic algebra of linear degradations at fixed severities: A, A^T, A^+, the l2 prox and an SVD (SPEC §1.5,
ARCHITECTURE "Operator").

`degradation.operator(t)` (t a float or a `(B,)` tensor, each image its own severity; a single
severity broadcasts over any batch) returns one of these. Every operator has `A(x)` (exactly
`degradation(x, t)`), `A_adjoint(y)`, `A_pinv(y)` and `prox_l2(z, y, gamma)`; families with an
efficient SVD also have `svd()`, an `SVD` whose products `V_T`, `V`, `U`, `U_T` are cheap and whose
singular values `s` broadcast against the spectral tensor (the image's shape: every family here maps
(B, C, H, W) to (B, C, H, W)). Without closed forms the adjoint is the autograd VJP and the pseudo-inverse
and prox are batched conjugate gradients. Everything runs in the dtype of `t` (float32 by default);
inputs must match it. This module holds what every family shares (the CG solver, `LinearOperator`,
`SVDOperator`, the diagonal/mask operator); each family's closed-form operator and SVD live beside it
(blur.py, superresolution.py, colorization.py). It imports no degradation: `LinearFamily` is what an
operator needs of one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import torch
from torch import Tensor


class LinearFamily(Protocol):
    """What an operator needs of its degradation (`dirac.degradations.base.Degradation` provides it)."""

    linear: bool
    channels: int
    image_size: int

    def __call__(self, x: Tensor, t: Tensor | float) -> Tensor:
        """A_t(x) (SPEC §1.1)."""

    def adjoint(self, y: Tensor, t: Tensor | float) -> Tensor:
        """A_t^T(y) (SPEC §1.5)."""

    def check_image(self, x: Tensor) -> None:
        """Raise when x is not a batch of the size the family was built for."""


def as_severities(t: Tensor | float) -> Tensor:
    """Severities as a 1-D floating tensor in [0, 1] (a scalar becomes one severity shared by every image)."""
    t = torch.as_tensor(t)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    t = t.reshape(1) if t.ndim == 0 else t
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"severities must be a scalar or a (B,) tensor, got shape {tuple(t.shape)}")
    if not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"severities must lie in [0, 1], got min {t.min().item():.4g}, max {t.max().item():.4g}")
    return t.detach()


def per_image(value: Tensor | float, like: Tensor) -> Tensor:
    """A float or a `(B,)` tensor (a prox step, a weight) as a `(B, 1, 1, 1)` tensor that broadcasts over `like`."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value.reshape(-1, 1, 1, 1) if value.ndim else value


def batch_dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-image inner products <a_i, b_i> as a `(B, 1, 1, 1)` tensor."""
    return (a * b).flatten(1).sum(dim=1).reshape(-1, 1, 1, 1)


def conjugate_gradient(apply, b: Tensor, x0: Tensor, iterations: int = 200, tol: float = 1e-6) -> Tensor:
    """Solve apply(x) = b image by image for a symmetric positive (semi)definite `apply` (Hestenes & Stiefel 1952).

    Stops when every image's residual is below `tol * ||b_i||`; an image that has converged (or whose
    search direction has no curvature, e.g. b in the null space) is frozen.
    """
    x, r = x0, b - apply(x0)
    p, rs = r, batch_dot(r, r)
    threshold = (tol**2) * batch_dot(b, b)
    for _ in range(iterations):
        active = rs > threshold
        if not bool(active.any()):
            break
        Ap = apply(p)
        curvature = batch_dot(p, Ap)
        alpha = torch.where(active & (curvature > 0), rs / torch.where(curvature > 0, curvature, 1), 0)
        x, r = x + alpha * p, r - alpha * Ap
        rs_next = batch_dot(r, r)
        p = r + torch.where(rs > 0, rs_next / torch.where(rs > 0, rs, 1), 0) * p
        rs = rs_next
    return x


def default_rtol(like: Tensor) -> float:
    """Relative cut-off for the pseudo-inverse's singular values: max(H, W) * eps, as torch.linalg.pinv."""
    return max(like.shape[-2:]) * torch.finfo(like.dtype).eps


class SVD(ABC):
    """A = U diag(s) V^T for a square operator on images; spectral tensors have the image's shape (DDRM eq. 3).

    Subclasses implement the four orthogonal products; `s` is non-negative and broadcasts against the
    spectral tensor, one set of singular values per image (or one shared by all).
    """

    def __init__(self, s: Tensor) -> None:
        self.s = s

    @abstractmethod
    def V_T(self, x: Tensor) -> Tensor:
        """Spectral coefficients V^T x of an image batch."""

    @abstractmethod
    def V(self, z: Tensor) -> Tensor:
        """The image V z of spectral coefficients (inverse of V_T)."""

    @abstractmethod
    def U(self, z: Tensor) -> Tensor:
        """The measurement U z of spectral coefficients."""

    @abstractmethod
    def U_T(self, y: Tensor) -> Tensor:
        """Spectral coefficients U^T y of a measurement (inverse of U)."""

    def A(self, x: Tensor) -> Tensor:
        """A x = U diag(s) V^T x."""
        return self.U(self.s * self.V_T(x))

    def s_pinv(self, rtol: float) -> Tensor:
        """1/s where s > rtol * max(s) of its image, 0 elsewhere (the pseudo-inverse's singular values)."""
        batch = self.s.shape[0]
        largest = self.s.reshape(batch, -1).amax(dim=1).reshape(batch, *[1] * (self.s.ndim - 1))
        keep = self.s > rtol * largest
        return torch.where(keep, 1 / torch.where(keep, self.s, 1), 0)

    def pinv(self, y: Tensor, rtol: float | None = None) -> Tensor:
        """A^+ y = V diag(s^+) U^T y (Moore-Penrose, small singular values cut at `rtol`)."""
        return self.V(self.s_pinv(default_rtol(y) if rtol is None else rtol) * self.U_T(y))

    def prox_l2(self, z: Tensor, y: Tensor, gamma: Tensor | float) -> Tensor:
        """argmin_x 1/2 ||A x - y||^2 + ||x - z||^2 / (2 gamma) = V (s U^T y + V^T z / gamma) / (s^2 + 1 / gamma)."""
        inverse = 1 / per_image(gamma, z)
        return self.V((self.s * self.U_T(y) + inverse * self.V_T(z)) / (self.s**2 + inverse))


class SymmetricSVD(SVD):
    """An eigendecomposition A = V diag(s) V^T with s >= 0, so U = V."""

    def U(self, z: Tensor) -> Tensor:
        """U z = V z."""
        return self.V(z)

    def U_T(self, y: Tensor) -> Tensor:
        """U^T y = V^T y."""
        return self.V_T(y)


class DiagonalSVD(SymmetricSVD):
    """A diagonal operator (a mask): U = V = I and s the mask values (DDRM App. D, inpainting)."""

    def V_T(self, x: Tensor) -> Tensor:
        """V^T x = x."""
        return x

    def V(self, z: Tensor) -> Tensor:
        """V z = z."""
        return z


class LinearOperator:
    """A linear degradation at fixed severities (ARCHITECTURE "Operator"): A = degradation(., t), autograd adjoint,
    pseudo-inverse and prox by batched conjugate gradients; no SVD.

    `cg_iterations` and `cg_tol` bound the solver (per image, relative residual).
    """

    def __init__(self, degradation: LinearFamily, t: Tensor | float, cg_iterations: int = 200,
                 cg_tol: float = 1e-6) -> None:
        if not degradation.linear:
            raise TypeError(f"{type(degradation).__name__} is not linear and has no operator (A^T, A^+, prox, SVD)")
        self.degradation = degradation
        self.t = as_severities(t)
        self.cg_iterations, self.cg_tol = int(cg_iterations), float(cg_tol)

    @property
    def family(self) -> str:
        """The degradation family's class name (for error messages)."""
        return type(self.degradation).__name__

    def severities(self, x: Tensor) -> Tensor:
        """The `(B,)` severities for batch `x` after checking its shape, batch size and dtype."""
        self.degradation.check_image(x)
        if len(self.t) not in (1, x.shape[0]):
            raise ValueError(f"{self.family} operator was built for {len(self.t)} images, got a batch of {x.shape[0]}")
        if x.dtype != self.t.dtype:
            raise ValueError(f"{self.family} operator was built in {self.t.dtype} (the dtype of t), got a "
                             f"{x.dtype} batch")
        return self.t.expand(x.shape[0])

    def A(self, x: Tensor) -> Tensor:
        """A_t x, exactly the degradation's `forward(x, t)` (SPEC §1.1)."""
        return self.degradation(x, self.severities(x))

    def A_adjoint(self, y: Tensor) -> Tensor:
        """A_t^T y as the vector-Jacobian product of A_t (exact for a linear family)."""
        return self.degradation.adjoint(y, self.severities(y))

    def normal(self, x: Tensor, damping: Tensor | float = 0.0) -> Tensor:
        """(A^T A + damping I) x, the normal-equations operator of the least-squares problems."""
        return self.A_adjoint(self.A(x)) + damping * x

    def A_pinv(self, y: Tensor) -> Tensor:
        """A^+ y, the minimum-norm least-squares solution of A x = y (CG on A^T A x = A^T y from 0)."""
        rhs = self.A_adjoint(y)
        return conjugate_gradient(self.normal, rhs, torch.zeros_like(rhs), self.cg_iterations, self.cg_tol)

    def prox_l2(self, z: Tensor, y: Tensor, gamma: Tensor | float) -> Tensor:
        """argmin_x 1/2 ||A x - y||^2 + ||x - z||^2 / (2 gamma) (PnP-ADMM's x-step, SPEC §1.5), by CG on
        (A^T A + I / gamma) x = A^T y + z / gamma; gamma a float or one per image."""
        inverse = 1 / per_image(gamma, z)
        return conjugate_gradient(lambda x: self.normal(x, inverse), self.A_adjoint(y) + inverse * z, z,
                                  self.cg_iterations, self.cg_tol)

    def svd(self) -> SVD:
        """A = U diag(s) V^T; only families with an efficient form have one."""
        raise NotImplementedError(f"{self.family} has no efficient SVD; use A_pinv / prox_l2 (conjugate gradients)")


class SVDOperator(LinearOperator, ABC):
    """An operator with an efficient SVD: the pseudo-inverse and prox are closed-form in the spectral domain."""

    def __init__(self, degradation: LinearFamily, t: Tensor | float) -> None:
        super().__init__(degradation, t)
        self._svd: SVD | None = None

    @abstractmethod
    def build_svd(self) -> SVD:
        """Compute the family's SVD (called once, then cached)."""

    def svd(self) -> SVD:
        """A = U diag(s) V^T, computed on first use (DDRM eq. 3)."""
        if self._svd is None:
            self._svd = self.build_svd()
        return self._svd

    def A_pinv(self, y: Tensor) -> Tensor:
        """A^+ y = V diag(s^+) U^T y (singular values below max(H, W) * eps of the largest are cut)."""
        self.severities(y)
        return self.svd().pinv(y)

    def prox_l2(self, z: Tensor, y: Tensor, gamma: Tensor | float) -> Tensor:
        """argmin_x 1/2 ||A x - y||^2 + ||x - z||^2 / (2 gamma), in closed form through the SVD."""
        self.severities(z)
        return self.svd().prox_l2(z, y, gamma)


class SymmetricOperator(SVDOperator):
    """An operator with A^T = A (masks, blends of orthogonal projectors): the adjoint is A itself."""

    def A_adjoint(self, y: Tensor) -> Tensor:
        """A^T y = A y."""
        return self.A(y)


class DiagonalOperator(SVDOperator):
    """A x = m ⊙ x with a per-image mask m `(B|1, 1, H, W)` (inpainting; all ones for the identity); SVD U = V = I,
    s = m."""

    def __init__(self, degradation: LinearFamily, t: Tensor | float, mask: Tensor) -> None:
        super().__init__(degradation, t)
        self.mask = mask

    def A_adjoint(self, y: Tensor) -> Tensor:
        """A^T y = m ⊙ y."""
        self.severities(y)
        return self.mask * y

    def build_svd(self) -> SVD:
        """U = V = I, s = the mask."""
        return DiagonalSVD(self.mask)
