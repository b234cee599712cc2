"""Tests of the NCSN++ U-Net, its layers, the residual denoiser wrapper and the net configs (SPEC §1.2)."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dirac.nets import NCSNpp, ResidualX0
from dirac.nets.layers import FourierEmbedding, Resample, SelfAttention, group_norm

CONF = Path(__file__).resolve().parents[2] / "conf" / "net"
TINY = dict(model_channels=32, channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=(8,), dropout=0.0)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These nets are tiny: a second OpenMP thread only spins, and collapses throughput on a loaded 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def net_from_config(name: str, channels: int = 3, image_size: int = 32):
    """Instantiate conf/net/<name>.yaml with the data keys it interpolates."""
    cfg = OmegaConf.create({"data": {"channels": channels, "image_size": image_size},
                            "net": OmegaConf.load(CONF / f"{name}.yaml")})
    return instantiate(cfg.net)


def tiny(in_channels: int = 3, out_channels: int = 3, image_size: int = 16, **overrides) -> NCSNpp:
    """The tiny U-Net of conf/net/tiny.yaml at a test-sized resolution, with keyword overrides."""
    return NCSNpp(in_channels, out_channels, image_size, **{**TINY, **overrides})


def randomised(net: NCSNpp) -> NCSNpp:
    """Give the near-zero-initialised layers (residual branches, attention output, head) ordinary weights."""
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.xavier_uniform_(module.weight)
    return net.eval()


def num_params(module: torch.nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("name", "image_size", "expected"), [
    ("base", 256, 67_745_027), ("large", 256, 520_915_459),  # the reference Dirac counts
    ("tiny", 32, 1_284_035), ("small", 64, 10_104_387),  # the counts documented in the configs
])
def test_config_parameter_counts(name, image_size, expected):
    with torch.device("meta"):
        net = net_from_config(name, image_size=image_size)
    assert isinstance(net, NCSNpp) and num_params(net) == expected


def test_configs_take_channels_from_the_data():
    net = net_from_config("tiny", channels=1)
    assert (net.in_channels, net.out_channels, net.image_size) == (1, 1, 32)
    assert num_params(net) == num_params(NCSNpp(1, 1, 32, **TINY))


def test_adaptive_scale_doubles_the_embedding_projections():
    plain, scaled = tiny(), tiny(adaptive_scale=True)
    projections = sum(m.out_features * (m.in_features + 1) for n, m in plain.named_modules() if n.endswith("affine"))
    assert num_params(scaled) - num_params(plain) == projections


@pytest.mark.parametrize("variant", [{}, dict(embedding="positional", encoder="standard"),
                                     dict(channel_mult=(2, 1, 3), adaptive_scale=True)])
def test_forward_shape_and_dtype(variant):
    net = tiny(3, 5, **variant)
    out = net(torch.rand(2, 3, 16, 16), torch.tensor([0.01, 0.05]))
    assert out.shape == (2, 5, 16, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_residual_wrapper_starts_near_identity():
    x = torch.rand(2, 3, 16, 16)
    out = ResidualX0(tiny())(x, torch.tensor([0.01, 0.05]))
    assert out.dtype == torch.float32
    assert (out - x).abs().max() < 1e-3


def test_output_depends_on_sigma():
    net = randomised(tiny())
    x = torch.rand(1, 3, 16, 16).expand(2, -1, -1, -1)
    out = net(x, torch.tensor([0.01, 0.05]))
    assert (out[0] - out[1]).abs().mean() > 0.05 * out.abs().mean()


def test_samples_do_not_interact_within_a_batch():
    net = randomised(tiny())
    x, sigma = torch.rand(3, 3, 16, 16), torch.tensor([0.01, 0.03, 0.05])
    torch.testing.assert_close(net(x, sigma)[1:2], net(x[1:2], sigma[1:2]), rtol=1e-4, atol=1e-5)


def test_gradient_reaches_every_parameter_and_the_input():
    net = tiny()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    net(x, torch.tensor([0.01, 0.05])).square().sum().backward()
    dead = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead
    assert x.grad.abs().sum() > 0


def test_tiny_net_overfits_one_denoising_batch():
    model = ResidualX0(tiny(image_size=8))
    ramp = torch.linspace(0, 1, 8)
    x0 = torch.stack([(ramp[:, None] * ramp).expand(3, 8, 8), ramp.expand(3, 8, 8),
                      (1 - ramp)[:, None].expand(3, 8, 8), torch.full((3, 8, 8), 0.5)])
    sigma = torch.tensor([0.1, 0.2, 0.3, 0.2])
    y = x0 + sigma[:, None, None, None] * torch.randn_like(x0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = (model(y, sigma) - x0).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    assert losses[-1] < losses[0] / 10


def test_bf16_autocast_forward_on_cpu():
    model = ResidualX0(tiny())
    x = torch.rand(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        raw = model.net(x, torch.tensor([0.01, 0.05]))
        out = model(x, torch.tensor([0.01, 0.05]))
    assert raw.dtype == torch.bfloat16
    assert out.dtype == torch.float32 and out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(image_size=18), "divisible by 4"),
    (dict(attn_resolutions=(8, 3)), r"attn_resolutions \[3\] do not exist"),
    (dict(channel_mult=()), "channel_mult"),
    (dict(dropout=1.0), "dropout"),
    (dict(embedding="learned"), "embedding"),
    (dict(encoder="skip"), "encoder"),
    (dict(resample_filter=(1, 2, 1)), "even number of taps"),
    (dict(model_channels=0), "model_channels"),
])
def test_bad_construction_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**{"image_size": 16, **kwargs})


@pytest.mark.parametrize(("x_shape", "sigma_shape", "message"), [
    ((2, 3, 16), (2,), "expected images"),
    ((2, 1, 16, 16), (2,), "expected images"),
    ((2, 3, 18, 16), (2,), "divisible by 4"),
    ((2, 3, 16, 16), (), "sigma must have shape"),
    ((2, 3, 16, 16), (2, 1), "sigma must have shape"),
])
def test_bad_inputs_are_rejected(x_shape, sigma_shape, message):
    with pytest.raises(ValueError, match=message):
        tiny()(torch.rand(x_shape), torch.rand(sigma_shape))


def test_residual_wrapper_rejects_bad_shapes():
    model = ResidualX0(tiny())
    with pytest.raises(ValueError, match="sigma must have shape"):
        model(torch.rand(2, 3, 16, 16), torch.tensor(0.05))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.rand(3, 16, 16), torch.rand(3))


@pytest.mark.parametrize("mode", ["up", "down"])
def test_fir_resampling_preserves_constants_away_from_the_border(mode):
    out = Resample(mode)(torch.full((2, 3, 8, 8), 0.7))
    assert out.shape == ((2, 3, 16, 16) if mode == "up" else (2, 3, 4, 4))
    torch.testing.assert_close(out[..., 1:-1, 1:-1], torch.full_like(out[..., 1:-1, 1:-1], 0.7))


def test_fir_downsampling_matches_the_closed_form_filter():
    x = torch.zeros(1, 2, 8, 8)
    x[0, 1, 4, 4] = 1.0
    out = Resample("down")(x)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    expected = torch.zeros(4, 4)
    expected[1:3, 1:3] = torch.outer(taps[[3, 1]], taps[[3, 1]])  # pixel 4 -> output 1 (tap 3) and 2 (tap 1)
    torch.testing.assert_close(out[0, 1], expected)
    assert out[0, 0].abs().max() == 0


def test_fourier_embedding_closed_form():
    embed = FourierEmbedding(8, scale=16)
    features = embed(torch.tensor([0.0, 0.03]))
    torch.testing.assert_close(features[0], torch.cat([torch.ones(4), torch.zeros(4)]))
    phase = 0.03 * embed.freqs
    torch.testing.assert_close(features[1], torch.cat([phase.cos(), phase.sin()]))
    assert embed.freqs.std() > 2 * torch.pi * 4


def test_group_norm_uses_at_most_32_groups_of_at_least_4_channels():
    assert [group_norm(c).num_groups for c in (3, 32, 50, 128, 512)] == [1, 8, 10, 32, 32]


def test_self_attention_is_equivariant_to_pixel_permutations():
    attention = SelfAttention(8)
    torch.nn.init.normal_(attention.proj.weight, std=0.3)
    x = torch.randn(2, 8, 4, 4)
    perm = torch.randperm(16)
    permuted = attention(x.flatten(2)[..., perm].reshape(2, 8, 4, 4))
    torch.testing.assert_close(permuted.flatten(2), attention(x).flatten(2)[..., perm])


def test_self_attention_with_zero_queries_averages_values_over_pixels():
    attention = SelfAttention(8)
    channels = torch.eye(8)[:, :, None, None]
    with torch.no_grad():
        attention.qkv.weight.zero_()
        attention.qkv.weight[16:] = channels
        attention.proj.weight.copy_(channels)
    x = torch.randn(2, 8, 4, 4)
    expected = (x + attention.norm(x).mean(dim=(2, 3), keepdim=True)) * 0.5 ** 0.5
    torch.testing.assert_close(attention(x), expected)
