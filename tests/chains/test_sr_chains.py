"""The RGM-SR and naive RGM-SR chains: the reference's level stds (rgm.md §1.3–1.4), marginals against composed
forward steps (closed-form mean and variance, block structure), endpoints, fidelity (the level's likelihood, or the
reference RGM-SR's 4^d times larger full-size sum), refusals and configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dirac.chains import NaiveSRChain, SRChain, VPChain
from dirac.degradations.superresolution import block_average

CONF = Path(__file__).resolve().parents[2] / "conf" / "chain"
CHAINS = {"sr": lambda: SRChain(7), "sr_naive": lambda: NaiveSRChain(3)}


def levels(k: int, count: int) -> torch.Tensor:
    return torch.full((count,), k, dtype=torch.long)


def reference_down(x: torch.Tensor, d: int) -> torch.Tensor:
    """Up^d Down^d by bilinear x0.5 (align_corners=False, the reference) and nearest upsampling."""
    for _ in range(d):
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    return F.interpolate(x, scale_factor=2 ** d, mode="nearest")


def test_level_stds_match_the_reference_tables():
    sr = SRChain(7)
    torch.testing.assert_close(sr.std, torch.tensor([0, 1.38312, 0.69156, 1.91971, 0.95986, 1.99657, 0.99828, 1.99996]),
                               atol=5e-5, rtol=0)
    assert sr.depth.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and sr.prior_std == 2.0
    torch.testing.assert_close(sr.abar[[1, 3, 5, 7]], torch.tensor([0.72232, 0.28049, 0.05856, 0.00657]), atol=5e-5,
                               rtol=0)
    naive = NaiveSRChain(3)
    torch.testing.assert_close(naive.std, torch.tensor([0, 0.41268, 0.24860, 0.12500]), atol=5e-5, rtol=0)
    torch.testing.assert_close(naive.abar, VPChain(3).abar)
    assert naive.depth.tolist() == [0, 1, 2, 3] and naive.prior_std == 2 ** -3


def test_block_average_is_the_reference_down_up_per_image():
    x = torch.randn(4, 3, 16, 16)
    depth = torch.tensor([0, 1, 3, 2])
    got = block_average(x, depth, 3)
    for b, d in enumerate(depth.tolist()):
        torch.testing.assert_close(got[b:b + 1], reference_down(x[b:b + 1], d), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="divisible by 8"):
        block_average(torch.zeros(1, 1, 12, 12), depth[:1], 3)


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_marginal_matches_composed_steps_in_mean_variance_and_block_structure(name):
    torch.manual_seed(0)
    chain, n = CHAINS[name](), 20_000
    x0 = torch.linspace(-1, 1, 64).view(1, 1, 8, 8).expand(n, 1, 8, 8)
    composed = x0
    for k in range(1, chain.steps + 1):
        composed = chain.step(composed, levels(k, n))
        marginal = chain.marginal(x0, levels(k, n))
        d, size = int(chain.depth[k]), 2 ** int(chain.depth[k])
        mean = chain.abar[k] * reference_down(x0[:1], d)[0]
        for x in (marginal, composed):
            assert x.shape == x0.shape
            torch.testing.assert_close(x.mean(0), mean, atol=0.05 * float(chain.std[k]) + 1e-6, rtol=0)
            torch.testing.assert_close(x.var(0), chain.std[k].pow(2).expand(1, 8, 8),
                                       atol=0.05 * float(chain.std[k]) ** 2, rtol=0)
            if size > 1:  # pixels of one block are the same draw; neighbouring blocks are independent
                assert torch.equal(x[:, :, 0, 0], x[:, :, size - 1, size - 1])
            if size < 8:
                a, b = x[:, 0, 0, 0] - x[:, 0, 0, 0].mean(), x[:, 0, 0, size] - x[:, 0, 0, size].mean()
                assert abs(float((a * b).mean() / (a.std() * b.std()))) < 0.05


def test_endpoints_level_zero_is_clean_and_level_n_is_the_prior():
    torch.manual_seed(1)
    for chain in (SRChain(7), NaiveSRChain(3)):
        x0 = torch.rand(3, 3, 32, 32)
        torch.testing.assert_close(chain.marginal(x0, levels(0, 3)), x0)
        prior = chain.prior_sample((500, 3, 32, 32))
        assert prior.shape == (500, 3, 32, 32) and torch.equal(prior[..., :1, :1], prior[..., 3:4, 3:4])
        assert float(prior.std()) == pytest.approx(chain.prior_std, rel=0.02)
        assert float(chain.std[-1]) == pytest.approx(chain.prior_std, rel=1e-3)
        assert float(chain.abar[-1]) == pytest.approx(0.00657, abs=5e-5)
        generator = torch.Generator().manual_seed(5)
        again = chain.prior_sample((2, 3, 32, 32), generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(chain.prior_sample((2, 3, 32, 32), generator=generator), again)


def test_sr_steps_alternate_noise_and_block_averaging():
    chain, x = SRChain(7), torch.randn(2, 3, 16, 16)
    for k in (2, 4, 6):  # into an even level: block-average only, deterministic
        torch.testing.assert_close(chain.step(x, levels(k, 2)), reference_down(x, int(chain.depth[k])), atol=1e-6,
                                   rtol=0)
    for k in (1, 3, 5, 7):  # into an odd level: same resolution, fresh noise
        assert int(chain.depth[k]) == int(chain.depth[k - 1]) and chain.step_std[k] > 0


def test_fidelity_is_half_the_full_size_sum_of_std_scaled_residuals():
    for chain in (SRChain(7), NaiveSRChain(3)):
        x_k, x0_hat, k = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.tensor([2, 3])
        expected = torch.stack([0.5 * (((x_k[b] - chain.abar[j]
                                         * reference_down(x0_hat[b:b + 1], int(chain.depth[j]))[0])
                                        / chain.fidelity_std[j]) ** 2).sum() for b, j in enumerate(k.tolist())])
        torch.testing.assert_close(chain.fidelity(x_k, x0_hat, k), expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(NaiveSRChain(3).fidelity_std, VPChain(3).sigma_bar)


def level_nll(chain, x_k: torch.Tensor, x0_hat: torch.Tensor, k: int) -> torch.Tensor:
    """½ Σ over the level's own H/2^d grid of ((Down^d x_k − ā_k Down^d x̂_0) / s_k)²: the Gaussian NLL of x_k."""
    size = 2 ** int(chain.depth[k])
    residual = F.avg_pool2d(x_k, size) - chain.abar[k] * F.avg_pool2d(x0_hat, size)
    return 0.5 * (residual / chain.std[k]).pow(2).flatten(1).sum(dim=1)


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_fidelity_weighs_the_levels_likelihood_on_both_chains_and_the_reference_sr_term_4_to_the_d_times(name):
    torch.manual_seed(2)
    kind = {"sr": SRChain, "sr_naive": NaiveSRChain}[name]
    default, likelihood = CHAINS[name](), kind(fidelity="likelihood")
    x0, x0_hat = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    for k in range(1, default.steps + 1):
        x_k = default.marginal(x0, levels(k, 3))
        expected = level_nll(default, x_k, x0_hat, k)
        torch.testing.assert_close(likelihood.fidelity(x_k, x0_hat, levels(k, 3)), expected, rtol=1e-5, atol=1e-4)
        gain = 4.0 ** int(default.depth[k]) if name == "sr" else 1.0  # the reference RGM-SR's full-size sum
        torch.testing.assert_close(default.fidelity(x_k, x0_hat, levels(k, 3)), gain * expected, rtol=1e-5, atol=1e-3)
    assert default.fidelity_weighting == {"sr": "full_size", "sr_naive": "likelihood"}[name]
    with pytest.raises(ValueError, match="chain.fidelity must be one of"):
        kind(fidelity="mean")


def test_refusals_and_configs():
    assert not SRChain.gaussian_markov and not NaiveSRChain.gaussian_markov and not hasattr(SRChain, "posterior")
    with pytest.raises(ValueError, match="divisible by 8"):
        SRChain(7).check_shape((3, 20, 20))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        NaiveSRChain(3).check_shape((2,))
    SRChain(7).check_shape((3, 32, 32))
    with pytest.raises(ValueError, match="steps"):
        NaiveSRChain(0)
    for name, kind in (("sr", SRChain), ("sr_naive", NaiveSRChain), ("vp", VPChain)):
        chain = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
        assert type(chain) is kind and chain.signature()["steps"] == {"sr": 7, "sr_naive": 3, "vp": 4}[name]
    chain = instantiate(OmegaConf.merge(OmegaConf.load(CONF / "sr.yaml"), {"fidelity": "likelihood"}))
    assert chain.fidelity_weighting == "likelihood" and "fidelity=likelihood" in repr(chain)
