"""The RGM-D VP chain: the reference's constants (rgm.md §1.2), the marginal by sampling, the posterior by the
Gaussian conditioning identities, the fidelity term's value."""

from __future__ import annotations

import pytest
import torch

from dirac.chains import VPChain


def test_constants_match_the_reference_table():
    chain = VPChain(4)
    torch.testing.assert_close(chain.betas, torch.tensor([1e-8, 0.47826, 0.84921, 0.95642, 0.98740]), atol=5e-5, rtol=0)
    torch.testing.assert_close(chain.abar, torch.tensor([1.0, 0.72232, 0.28049, 0.05856, 0.00657]), atol=5e-5, rtol=0)
    torch.testing.assert_close(chain.sigma_bar, torch.tensor([0.0, 0.69156, 0.95986, 0.99828, 0.99998]), atol=5e-5,
                               rtol=0)
    torch.testing.assert_close(VPChain(7).abar[1:4], torch.tensor([0.89594, 0.65546, 0.39156]), atol=5e-5, rtol=0)
    _, var = chain.posterior(torch.zeros(4, 2), torch.zeros(4, 2), torch.arange(1, 5))
    torch.testing.assert_close(var[:, 0], torch.tensor([0.0, 0.44082, 0.88420, 0.98406]), atol=5e-5, rtol=0)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_marginal_and_one_step_have_the_closed_form_mean_and_variance(k):
    torch.manual_seed(k)
    chain, n = VPChain(4), 200_000
    x0 = torch.tensor([[1.5, -0.5]]).expand(n, 2)
    levels = torch.full((n,), k)
    for x in (chain.marginal(x0, levels), chain.step(chain.marginal(x0, levels - 1), levels)):
        torch.testing.assert_close(x.mean(0), chain.abar[k] * x0[0], atol=0.01, rtol=0)
        torch.testing.assert_close(x.var(0), chain.sigma_bar[k].pow(2).expand(2), atol=0.01, rtol=0)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_posterior_is_the_gaussian_conditional_of_the_joint(k):
    chain = VPChain(4)
    x0, x_k = torch.tensor([[0.7, -1.2]]), torch.tensor([[0.3, 0.9]])
    a, s_prev, s_k = (1 - chain.betas[k]).sqrt(), chain.sigma_bar[k - 1], chain.sigma_bar[k]
    # joint: x_{k-1} ~ N(ā_{k-1} x0, s_prev²), x_k = a x_{k-1} + sqrt(β) ε  =>  Cov = a s_prev², Var x_k = s_k²
    gain = a * s_prev ** 2 / s_k ** 2
    mean = chain.abar[k - 1] * x0 + gain * (x_k - chain.abar[k] * x0)
    var = s_prev ** 2 - gain * a * s_prev ** 2
    got_mean, got_var = chain.posterior(x_k, x0, torch.tensor([k]))
    torch.testing.assert_close(got_mean, mean, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_var.flatten(), var.view(1), atol=1e-5, rtol=1e-4)


def test_fidelity_is_half_the_per_pixel_sum_of_std_scaled_residuals():
    chain = VPChain(4)
    x_k, x0_hat, k = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, -1.0]]), torch.tensor([2])
    expected = 0.5 * (((x_k - chain.abar[2] * x0_hat) / chain.sigma_bar[2]) ** 2).sum()
    torch.testing.assert_close(chain.fidelity(x_k, x0_hat, k), expected.view(1))
    beta = chain.betas[2]
    expected = 0.5 * (((x_k - (1 - beta).sqrt() * x0_hat) / beta.sqrt()) ** 2).sum()
    torch.testing.assert_close(chain.step_fidelity(x_k, x0_hat, k), expected.view(1))


def test_steps_must_be_positive():
    with pytest.raises(ValueError, match="steps"):
        VPChain(0)
