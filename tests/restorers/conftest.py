"""The registry of every restorer the tasks can call, each built from its own yaml (`conf/baseline/<name>.yaml`, or
`conf/sampler/<name>.yaml` for Dirac's settings: the one source of its settings and tuning grids) with small
stand-ins for the networks: a Gaussian denoiser, an untrained tiny RGM, a contracting Phi. Adding a restorer is one
file in dirac/restorers/, one yaml, and one entry here; `test_contract.py` runs the same tests over every entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn

from dirac.degradations import BlockSuperResolution, GaussianBlur, Identity
from dirac.degradations.base import Degradation
from dirac.degradations.noise import ConstantNoise
from dirac.denoisers import GaussianDenoiser
from dirac.restorers import DiracRestorer, Restorer

CONF = Path(__file__).resolve().parents[2] / "conf"
SIZE = 16
NOISE = ConstantNoise(0.05)


@dataclass(frozen=True)
class Case:
    """A registry entry: the yaml, the degradation it restores here, and the constructor arguments that replace the
    yaml's interpolations (networks, the task's noise) and its costliest settings (fewer steps)."""

    yaml: Path
    degradation: Callable[[], Degradation]
    arguments: Callable[[], dict]


def gaussian_denoiser() -> nn.Module:
    """An exact MMSE denoiser for a Gaussian source (no training)."""
    return GaussianDenoiser(torch.full((3, 1, 1), 0.5), torch.full((3, 1, 1), 0.04))


def tiny_rgm() -> nn.Module:
    """An untrained tiny 16 px RGM-KLD-D image module, composed from the experiment's config."""
    from tests.framework.conftest import compose_config

    overrides = ["experiment=cifar10_rgm_kld_d", "data=embedded", f"data.image_size={SIZE}",
                 "generator=ncsnpp_tiny", "discriminator=tiny"]
    cfg = compose_config(overrides, Path("unused"))
    GlobalHydra.instance().clear()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return instantiate(cfg.model).eval().requires_grad_(False)


def phi(y_t: Tensor, t: Tensor) -> Tensor:
    """A contracting stand-in for Dirac's trained Phi(y_t, t), differentiable for guidance."""
    return 0.9 * y_t + 0.05 * t.view(-1, 1, 1, 1)


def blur() -> Degradation:
    return GaussianBlur(3, SIZE, reference_size=64)


def baseline(name: str, degradation: Callable[[], Degradation], **arguments) -> Case:
    return Case(CONF / "baseline" / f"{name}.yaml", degradation, lambda: {
        key: value() if callable(value) and not isinstance(value, nn.Module) else value
        for key, value in arguments.items()})


REGISTRY: dict[str, Case] = {
    "admm_tv": baseline("admm_tv", blur, iterations=10),
    "ddrm": baseline("ddrm", blur, denoiser=gaussian_denoiser, noise=NOISE, steps=4),
    "dps": baseline("dps", blur, denoiser=gaussian_denoiser, steps=4),
    "pf_ode": baseline("pf_ode", lambda: Identity(3, SIZE), denoiser=gaussian_denoiser, noise=NOISE, steps=4),
    "pinv": baseline("pinv", lambda: BlockSuperResolution(3, SIZE, factor=2)),
    "pnp_admm": baseline("pnp_admm", blur, denoiser=gaussian_denoiser, iterations=4),
    "rgm_pnp": baseline("rgm_pnp", lambda: BlockSuperResolution(3, SIZE, factor=2), rgm=tiny_rgm, iterations=2),
    "dirac_do": Case(CONF / "sampler" / "dirac_do.yaml", blur, lambda: {"dt": 0.25}),
    "dirac_po": Case(CONF / "sampler" / "dirac_po.yaml", blur, lambda: {"dt": 0.25}),
}


def build(name: str) -> tuple[Restorer, Degradation]:
    """The registered restorer `name` from its yaml, and the degradation it restores in the tests."""
    case = REGISTRY[name]
    degradation = case.degradation()
    built = instantiate(OmegaConf.load(case.yaml), **case.arguments())
    if case.yaml.parent.name == "sampler":  # Dirac's settings: the method's restorer runs them
        objective = "distortion" if name.endswith("_do") else "perception"
        built = DiracRestorer(phi, degradation, NOISE, built, objective)
    built.prepare(degradation)
    return built, degradation


@pytest.fixture(scope="module", params=sorted(REGISTRY))
def case(request) -> tuple[str, Restorer, Degradation]:
    """Each registered restorer in turn: (name, restorer, degradation)."""
    restorer, degradation = build(request.param)
    return request.param, restorer, degradation
