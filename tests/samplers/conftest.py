"""Fixtures for the sampler tests: tiny 3x8x8 images and test-local degradations."""

import pytest
import torch
from tests.toy_degradations import Fading, SmoothMask
from torch import Tensor


@pytest.fixture
def fading() -> Fading:
    return Fading(3, 8)


@pytest.fixture
def mask() -> SmoothMask:
    return SmoothMask(3, 8)


@pytest.fixture
def x0() -> Tensor:
    return torch.rand(2, 3, 8, 8)
