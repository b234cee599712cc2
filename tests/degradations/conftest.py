"""Registry of every degradation family at a small size, for the parametrised operator tests."""

import pytest

from dirac.degradations import (
    BlockSuperResolution,
    BoxInpainting,
    Colorization,
    GaussianBlur,
    GaussianInpainting,
    Identity,
)

SIZE = 32
# Blur at reference_size 64 so that its std reaches 1.5 px at 32 px (at the default 256 it would stay below 0.4 px).
REGISTRY = {
    "gaussian_blur": lambda: GaussianBlur(3, SIZE, reference_size=64),
    "gaussian_inpainting": lambda: GaussianInpainting(3, SIZE),
    "box_inpainting": lambda: BoxInpainting(3, SIZE),
    "superresolution": lambda: BlockSuperResolution(3, SIZE, factor=4),
    "colorization": lambda: Colorization(3, SIZE),
    "denoising": lambda: Identity(3, SIZE),
}


@pytest.fixture(params=sorted(REGISTRY))
def degradation(request):
    """Each registered degradation in turn."""
    return REGISTRY[request.param]()
