"""The degradation interface of the stochastic degradation process (SPEC §1.1)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from dirac.degradations.operators import LinearOperator


class Degradation(nn.Module, ABC):
    """A severity-parameterised operator family `A_t`, with `A_0 = I` and `A_1` the measurement operator.

    Subclasses implement `apply(x, t)` for a batch `x` of shape `(B, C, H, W)` and severities `t` of
    shape `(B,)`; the operator must be differentiable in `x` and in `t`. Linear families set
    `linear = True` and get `adjoint` (exact, by autograd) for free.
    """

    linear: bool = True

    def __init__(self, channels: int, image_size: int) -> None:
        super().__init__()
        self.channels = int(channels)
        self.image_size = int(image_size)

    @abstractmethod
    def apply(self, x: Tensor, t: Tensor) -> Tensor:
        """A_t(x) for a checked batch `x` and severities `t` of shape `(B,)` (SPEC §1.1)."""

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """A_t(x) (SPEC §1.1) after checking shapes and severities; `t` is a float or a `(B,)` tensor."""
        t = self.severities(t, x)
        self.check_image(x)
        return self.apply(x, t)

    def severities(self, t: Tensor | float, x: Tensor) -> Tensor:
        """Broadcast `t` to a `(B,)` tensor on x's device and check that it lies in [0, 1]."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.repeat(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"severities must have shape ({x.shape[0]},) or be a scalar, got {tuple(t.shape)}")
        if not torch.compiler.is_compiling() and not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError(f"severities must lie in [0, 1], got min {t.min().item():.4g}, max {t.max().item():.4g}")
        return t

    def check_image(self, x: Tensor) -> None:
        """Raise a clear error when `x` is not a `(B, C, H, W)` batch of the size this degradation was built for."""
        expected = (self.channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{type(self).__name__} was built for images of shape (B, {', '.join(map(str, expected))}), "
                f"got a tensor of shape {tuple(x.shape)}"
            )

    def adjoint(self, y: Tensor, t: Tensor | float) -> Tensor:
        """A_t^T(y) for a linear family, computed exactly as the vector-Jacobian product of A_t."""
        if not self.linear:
            raise TypeError(f"{type(self).__name__} is not linear and has no adjoint")
        with torch.enable_grad():
            x = torch.zeros_like(y, requires_grad=True)
            (grad,) = torch.autograd.grad(self(x, t), x, grad_outputs=y)
        return grad

    def operator(self, t: Tensor | float) -> LinearOperator:
        """A_t at fixed severities `t` (float or `(B,)`) as an operator: A, A^T, A^+, prox (ARCHITECTURE "Operator").

        This generic one uses autograd and conjugate gradients; families with closed forms override it.
        """
        return LinearOperator(self, t)

    def time_derivative(self, x: Tensor, t: Tensor | float) -> Tensor:
        """dA_t(x)/dt, the Jacobian-vector product in t (SPEC §1.3, exact-derivative reconstruction)."""
        t = self.severities(t, x)
        self.check_image(x)
        _, tangent = torch.func.jvp(lambda s: self.apply(x, s), (t,), (torch.ones_like(t),))
        return tangent

    def signature(self) -> dict:
        """What a checkpoint must agree on to be used with this degradation (class, sizes, parameters)."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", **self.extra_signature(),
                "channels": self.channels, "image_size": self.image_size}

    def extra_signature(self) -> dict:
        """Constructor parameters that change the operator; overridden by degradations that have any."""
        return {}
