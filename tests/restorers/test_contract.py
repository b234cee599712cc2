"""The restorer contract, run over every entry of the registry (conftest.py) as the operator tests run over every
degradation: y is left as it came, a batch restores as its images one by one, the same seeds give the same bytes,
parameters outside their bounds are refused naming the parameter, and the yaml's grids are the tuning source."""

from __future__ import annotations

import math

import pytest
import torch

from dirac.restorers import DiracSampler, Restorer

from .conftest import CONF, REGISTRY

pytestmark = pytest.mark.usefixtures("one_thread")


def measurement(degradation, count: int = 3) -> torch.Tensor:
    """y = A_1(x0) + 0.05 z for `count` seeded images."""
    generator = torch.Generator().manual_seed(3)
    x0 = torch.rand(count, degradation.channels, degradation.image_size, degradation.image_size, generator=generator)
    ones = torch.ones(count)
    return degradation.apply(x0, ones) + 0.05 * torch.randn(x0.shape, generator=generator)


def generators(first: int, count: int) -> list[torch.Generator]:
    """One seeded generator per image, image b seeded by first + b."""
    return [torch.Generator().manual_seed(first + index) for index in range(count)]


def test_every_restorer_yaml_has_a_registry_entry():
    yamls = {path.stem for path in (CONF / "baseline").glob("*.yaml")} | {path.stem for path in
                                                                          (CONF / "sampler").glob("*.yaml")}
    assert yamls == set(REGISTRY), (f"unregistered: {sorted(yamls - set(REGISTRY))}; "
                                    f"stale: {sorted(set(REGISTRY) - yamls)}")


def test_y_is_not_modified(case):
    _, restorer, degradation = case
    y = measurement(degradation)
    before = y.clone()
    out = restorer(y, degradation, generators(0, 3))
    assert torch.equal(y, before) and out.shape == y.shape and torch.isfinite(out).all()


def test_a_batch_restores_as_its_images_one_by_one(case):
    _, restorer, degradation = case
    y = measurement(degradation)
    batch = restorer(y, degradation, generators(0, 3))
    singles = torch.cat([restorer(y[i : i + 1], degradation, generators(i, 1)) for i in range(3)])
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=1e-4)


def test_the_same_seeds_reproduce_the_same_bytes(case):
    _, restorer, degradation = case
    y = measurement(degradation)
    assert torch.equal(restorer(y, degradation, generators(0, 3)), restorer(y, degradation, generators(0, 3)))


def test_every_step_reaches_the_callback(case):
    _, restorer, degradation = case
    steps = []
    restorer(measurement(degradation), degradation, generators(0, 3), callback=steps.append)
    assert [step.index for step in steps] == list(range(len(steps)))
    assert not steps or (steps[-1].is_last and all(step.estimate.shape == step.x.shape for step in steps))


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_parameters_outside_their_bounds_are_refused_naming_them(case, bad):
    _, restorer, _ = case
    for param in restorer.params:
        with pytest.raises(ValueError, match=param):
            restorer.with_params(**{param: bad})


def test_the_tuning_grids_come_from_the_yaml_and_lie_within_bounds(case):
    name, restorer, _ = case
    for param in restorer.tuned:
        values = restorer.grid(param)
        assert values and all(restorer.with_params(**{param: value}).params[param] == value for value in values)
    if isinstance(restorer, Restorer) and hasattr(restorer, "grids"):
        assert type(restorer)().grids == {}  # the class holds no grid of its own: the yaml is the one source
        assert restorer.grids or not restorer.params, f"{name}.yaml declares no grids"
    else:
        assert DiracSampler().guidance_grid == () and restorer.sampler.guidance_grid
