"""RGM's image networks (SPEC §2; rgm.md §3): the NCSN++ generator with z by adaptive group norm, the
time-conditioned discriminators (logits, features, R1), the refusals of 2-D points, and the net configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from dirac.nets import NCSNppGenerator, TimeDiscriminator, ToyDiscriminator, ToyGenerator
from dirac.nets.generator import AdaptiveGroupNorm
from dirac.priors import r1_penalty

CONF = Path(__file__).resolve().parents[2] / "conf"


pytestmark = pytest.mark.usefixtures("one_thread")


def from_config(group: str, name: str, image_size: int = 16, channels: int = 3):
    cfg = OmegaConf.create({"data": {"channels": channels, "image_size": image_size}, "chain": {"steps": 4},
                            group: OmegaConf.load(CONF / group / f"{name}.yaml")})
    return instantiate(cfg[group])


def randomised(net: nn.Module) -> nn.Module:
    """Ordinary weights for the near-zero-initialised output layers, so that every input matters visibly."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
    return net


def test_generator_restores_images_in_range_and_depends_on_z_and_k():
    g = randomised(from_config("generator", "ncsnpp_tiny"))
    x, z, k = torch.randn(3, 3, 16, 16), torch.randn(3, 8), torch.tensor([1, 2, 3])
    out = g(x, z, k)
    assert out.shape == x.shape and out.abs().max() < 1 and g.sample_shape == (3, 16, 16) and g.nz == 8
    assert not torch.allclose(out, g(x, torch.randn(3, 8), k), atol=1e-4)
    assert not torch.allclose(out, g(x, z, torch.tensor([4, 4, 4])), atol=1e-4)
    norms = [m for m in g.modules() if isinstance(m, AdaptiveGroupNorm)]
    assert norms and all(not m.norm.affine for m in norms)
    assert torch.equal(norms[0].style.bias[:norms[0].norm.num_channels], torch.ones(norms[0].norm.num_channels))
    out.mean().backward()
    assert all(p.grad is not None for p in g.mapping.parameters())


def test_discriminator_gives_logits_features_and_an_r1_gradient():
    d = from_config("discriminator", "tiny")
    x, k = torch.randn(6, 3, 16, 16, requires_grad=True), torch.tensor([1, 2, 3, 4, 1, 2])  # 6: stddev groups of 2
    logit = d(x, x, k)
    assert logit.shape == (6,) and d.features(x, x, k).shape == (6, d.feature_dim) and d.feature_dim == 32 * 4 * 4
    penalty = r1_penalty(logit, x)
    assert torch.isfinite(penalty) and penalty > 0
    penalty.backward()
    assert d.stem.weight.grad is not None and d.stem.weight.grad.abs().sum() > 0
    conditional = TimeDiscriminator(3, 16, 8, (2, 4), 4, 32, conditional=True)
    assert conditional.stem.in_channels == 6 and conditional(x, x, k).shape == (6,)


def test_image_networks_refuse_points_and_toy_networks_refuse_images():
    points, k = torch.randn(4, 2), torch.ones(4, dtype=torch.long)
    with pytest.raises(ValueError, match="toy generator"):
        NCSNppGenerator(3, 16, 16, (1, 2), 1, (), nz=8, z_emb=32, n_mlp=1)(points, torch.randn(4, 8), k)
    with pytest.raises(ValueError, match="toy discriminator"):
        TimeDiscriminator(3, 16, 8, (2, 4), 4, 32)(points, points, k)
    with pytest.raises(ValueError, match="image generator"):
        ToyGenerator(nz=8)(torch.randn(4, 3, 8, 8), torch.randn(4, 8), k)
    with pytest.raises(ValueError, match="final_resolution"):
        TimeDiscriminator(3, 48, 8, (2, 4), 4, 32)


def test_paper_configs_have_the_reference_geometry():
    with torch.device("meta"):
        g32, g256 = from_config("generator", "ncsnpp_32", 32), from_config("generator", "ncsnpp_256", 256)
        small, large = from_config("discriminator", "small", 32), from_config("discriminator", "large", 256)
    assert 48e6 < sum(p.numel() for p in g32.parameters()) < 49e6 and g256.levels == 6 and g256.sample_shape[1] == 256
    assert small.feature_dim == large.feature_dim == 512 * 4 * 4  # the reference's 8192-d DSWD features
    assert len(large.blocks) == 6 and not small.blocks[0].down.__class__.__name__ == "Resample"
    assert isinstance(from_config("generator", "toy"), ToyGenerator)
    assert isinstance(from_config("discriminator", "toy"), ToyDiscriminator)
