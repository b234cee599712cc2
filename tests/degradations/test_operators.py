"""Operators of every linear degradation at fixed severities: A, A^T, A^+, prox_l2 and the SVD (SPEC §1.5,
ARCHITECTURE "Operator").

One list of (family, severities) cases; every operator goes through every check, in float64.
"""

import ast
from pathlib import Path

import pytest
import torch

from dirac.degradations import (
    BlockSuperResolution,
    BoxInpainting,
    Colorization,
    Degradation,
    GaussianBlur,
    GaussianInpainting,
    Identity,
)
from dirac.degradations import operators
from dirac.degradations.blur import reflect_pad_adjoint
from dirac.degradations.operators import LinearOperator

from .conftest import REGISTRY, SIZE

CLOSED_FORM = {
    "gaussian_blur": [0.0, 0.45, 1.0],
    "gaussian_inpainting": [0.0, 0.6, 1.0],
    "box_inpainting": [0.0, 0.37, 1.0],
    "superresolution": [0.0, 0.3, 0.5, 1.0],  # t = 0.5 is block level 1 exactly (c = 1)
    "colorization": [0.0, 0.6, 1.0],
    "denoising": [0.2, 1.0],
}
FACTORIES = {**REGISTRY, "strong_blur": lambda: GaussianBlur(3, SIZE, reference_size=SIZE)}  # std 3 px, kernel 31 px
CASES = [(name, severities, "closed") for name, severities in CLOSED_FORM.items()] + [
    ("strong_blur", [0.8, 1.0], "closed"),
    # the generic operator (autograd adjoint, CG pseudo-inverse and prox) on families with few distinct singular values
    ("box_inpainting", [0.37, 1.0], "fallback"),
    ("colorization", [0.6, 1.0], "fallback"),
    ("superresolution", [0.3, 1.0], "fallback"),
]
IDS = [f"{name}-{kind}" for name, _, kind in CASES]


class Case:
    """A degradation in float64, its severities, the operator under test and random inputs of the right shape."""

    def __init__(self, name, severities, kind):
        self.degradation = FACTORIES[name]().double()
        self.t = torch.tensor(severities, dtype=torch.float64)
        self.kind = kind
        self.op = self.make(self.t)
        shape = (len(severities), self.degradation.channels, SIZE, SIZE)
        self.x, self.y, self.z = (torch.randn(shape, dtype=torch.float64) for _ in range(3))

    def make(self, t):
        """The operator under test at severities t."""
        return self.degradation.operator(t) if self.kind == "closed" else LinearOperator(self.degradation, t,
                                                                                         cg_tol=1e-10)


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    return Case(*request.param)


def dot(a, b):
    return (a * b).sum().item()


def assert_close_in_norm(actual, expected, tol):
    """||actual - expected|| <= tol ||expected|| (for ill-conditioned pseudo-inverses, whose entries are huge)."""
    assert (actual - expected).norm().item() <= tol * expected.norm().item()


def test_A_is_the_degradation(case):
    torch.testing.assert_close(case.op.A(case.x), case.degradation.apply(case.x, case.t), atol=0, rtol=0)


def test_adjoint_passes_the_dot_product_test(case):
    lhs, rhs = dot(case.op.A(case.x), case.y), dot(case.x, case.op.A_adjoint(case.y))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-10)


def test_adjoint_matches_the_autograd_adjoint(case):
    torch.testing.assert_close(case.op.A_adjoint(case.y), case.degradation.adjoint(case.y, case.t), atol=1e-12,
                               rtol=1e-12)


def test_pseudo_inverse_satisfies_A_Apinv_A_equals_A(case):
    Ax = case.op.A(case.x)
    assert_close_in_norm(case.op.A(case.op.A_pinv(Ax)), Ax, 1e-8)


def test_pseudo_inverse_lies_in_the_row_space(case):
    # A^+ y is the minimum-norm solution: A^+ A A^+ y = A^+ y
    p = case.op.A_pinv(case.y)
    assert_close_in_norm(case.op.A_pinv(case.op.A(p)), p, 1e-6)


def test_prox_zeroes_the_gradient_of_its_objective(case):
    gamma = torch.linspace(0.3, 5.0, len(case.t), dtype=torch.float64)
    x = case.op.prox_l2(case.z, case.y, gamma)
    gradient = case.degradation.adjoint(case.op.A(x) - case.y, case.t) + (x - case.z) / gamma[:, None, None, None]
    assert gradient.abs().max().item() < 1e-7


def test_prox_with_a_float_step_matches_the_per_image_step(case):
    torch.testing.assert_close(case.op.prox_l2(case.z, case.y, 0.7),
                               case.op.prox_l2(case.z, case.y, torch.full_like(case.t, 0.7)), atol=1e-12, rtol=0)


def test_svd_reproduces_A_with_orthogonal_factors(case):
    if case.kind == "fallback":
        with pytest.raises(NotImplementedError, match=type(case.degradation).__name__):
            case.op.svd()
        return
    svd = case.op.svd()
    torch.testing.assert_close(svd.U(svd.s * svd.V_T(case.x)), case.op.A(case.x), atol=1e-12, rtol=1e-12)
    for forward, inverse in ((svd.V_T, svd.V), (svd.U_T, svd.U)):
        torch.testing.assert_close(inverse(forward(case.x)), case.x, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(forward(inverse(case.x)), case.x, atol=1e-12, rtol=1e-12)
    assert bool((svd.s >= 0).all())


def test_batched_severities_match_one_image_at_a_time(case):
    def methods(op, i):
        x, y, z = (v[i : i + 1] if i is not None else v for v in (case.x, case.y, case.z))
        out = [op.A(x), op.A_adjoint(y), op.A_pinv(y), op.prox_l2(z, y, 0.5)]
        return out + ([op.svd().U_T(y) * op.svd().s] if case.kind == "closed" else [])

    batched = methods(case.op, None)
    singles = [methods(case.make(case.t[i : i + 1]), i) for i in range(len(case.t))]
    for index, result in enumerate(batched):
        torch.testing.assert_close(result, torch.cat([single[index] for single in singles]), atol=1e-9, rtol=1e-9)


def test_a_single_severity_broadcasts_over_the_batch(case):
    op = case.make(case.t[-1:])
    t = case.t[-1].expand(len(case.t))
    torch.testing.assert_close(op.A(case.x), case.degradation(case.x, t), atol=0, rtol=0)
    torch.testing.assert_close(op.A_adjoint(case.y), case.degradation.adjoint(case.y, t), atol=1e-12, rtol=1e-12)


def test_wrong_batch_dtype_or_shape_is_a_clear_error(case):
    with pytest.raises(ValueError, match="built for 2 images"):
        case.make(case.t[:1].repeat(2)).A(case.x[:1].repeat(3, 1, 1, 1))
    with pytest.raises(ValueError, match="float64"):
        case.op.A_pinv(case.y.float())
    with pytest.raises(ValueError, match="shape"):
        case.op.A_adjoint(case.y[:, :, :-1])


SMALL = {
    "blur": lambda: GaussianBlur(3, 8, kernel_size=5, reference_size=8),
    "gaussian_inpainting": lambda: GaussianInpainting(3, 8, reference_size=32),
    "box_inpainting": lambda: BoxInpainting(3, 8),
    "superresolution": lambda: BlockSuperResolution(3, 8, factor=4),
    "colorization": lambda: Colorization(3, 8),
    "denoising": lambda: Identity(3, 8),
}


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("t", [0.3, 0.75, 1.0])
def test_singular_values_match_the_dense_matrix(name, t):
    degradation = SMALL[name]().double()
    t = torch.tensor([t], dtype=torch.float64)
    dense = torch.autograd.functional.jacobian(lambda v: degradation(v.reshape(1, 3, 8, 8), t).flatten(),
                                               torch.zeros(3 * 64, dtype=torch.float64))
    s = degradation.operator(t).svd().s.expand(1, 3, 8, 8).flatten()
    torch.testing.assert_close(s.sort(descending=True).values, torch.linalg.svdvals(dense), atol=1e-10, rtol=1e-10)


def test_float32_operators_match_apply():
    for name, severities in CLOSED_FORM.items():
        degradation, t = REGISTRY[name](), torch.tensor(severities)
        x = torch.rand(len(severities), degradation.channels, SIZE, SIZE)
        op = degradation.operator(t)
        torch.testing.assert_close(op.svd().A(x), degradation(x, t), atol=2e-5, rtol=1e-4)
        assert op.A_pinv(op.A(x)).dtype == torch.float32


def test_reflect_pad_adjoint_folds_the_mirrored_border_back():
    signal = torch.arange(1.0, 7.0)  # reflect pad 2: [3, 2, 1, 2, 3, 4, 5, 6, 5, 4]
    padded_weights = torch.arange(10.0)
    expected = torch.tensor([2.0, 3 + 1, 4 + 0, 5 + 9, 6 + 8, 7])
    torch.testing.assert_close(reflect_pad_adjoint(padded_weights, 2), expected)
    padded = torch.nn.functional.pad(signal[None], (2, 2), mode="reflect")[0]
    assert dot(padded, padded_weights) == pytest.approx(dot(signal, expected))


class Squaring(Degradation):
    """A nonlinear family for the error test."""

    linear = False

    def apply(self, x, t):
        return x**2


def test_a_nonlinear_family_has_no_operator():
    with pytest.raises(TypeError, match="Squaring is not linear"):
        Squaring(1, 8).operator(0.5)


def test_severities_outside_the_unit_interval_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        GaussianBlur(3, SIZE).operator(torch.tensor([0.5, 1.5]))


def test_the_operator_algebra_imports_no_degradation():
    """operators.py is the generic algebra: the families and the Degradation base import it, it imports none of them."""
    tree = ast.parse(Path(operators.__file__).read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not [name for name in modules if name and name.startswith("dirac")]
