"""Dirac reverse process (SPEC §1.3): closed-form steps, oracle behaviour, NFE, guidance, batching, settings."""

import math

import pytest
import torch
from tests.toy_degradations import SmoothMask

from dirac.degradations.identity import Identity
from dirac.degradations.noise import ConstantNoise, GeometricNoise
from dirac.restorers import DiracSampler
from dirac.samplers import dirac_reverse, time_grid


def sigma(t: float) -> float:
    """The reference geometric schedule in closed form: 0.01 * 5 ** t."""
    return 0.01 * 5**t


def seeded(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_identity_steps_are_ve_denoising_steps(x0):
    """A_t = I: every step is y_t + (s_t^2 - s_t'^2)/s_t^2 (x0_hat - y_t) + sqrt(s_t^2 - s_t'^2) z."""
    y = x0 + 0.05 * torch.randn_like(x0)
    states, twin = [], seeded()
    out = dirac_reverse(lambda y_t, t: 0.8 * y_t + 0.1 * t.view(-1, 1, 1, 1), y, Identity(3, 8), GeometricNoise(),
                        time_grid(0.1), output="iterate", generator=seeded(), callback=states.append)
    assert len(states) == 10 and torch.equal(states[0].x, y) and states[-1].is_last and not states[-2].is_last
    for state in states:
        released = sigma(state.t) ** 2 - sigma(state.t_next) ** 2
        z = torch.randn(y.shape, generator=twin)
        expected = state.x + released / sigma(state.t) ** 2 * (state.estimate - state.x) + math.sqrt(released) * z
        torch.testing.assert_close(state.x_next, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(states[0].estimate, 0.8 * y + 0.1)
    assert torch.equal(out, states[-1].x_next)


def test_oracle_returns_x0_and_its_iterate_carries_sigma0_noise():
    """A perfect phi returns x0 exactly; the iterate ends at x0 plus noise whose recursion is known in closed form."""
    degradation = SmoothMask(3, 16)
    x0 = torch.rand(4, 3, 16, 16)
    y = degradation(x0, 1.0) + sigma(1) * torch.randn_like(x0)
    oracle = lambda y_t, t: x0.clone()  # noqa: E731
    assert torch.equal(dirac_reverse(oracle, y, degradation, GeometricNoise(), time_grid(0.02), generator=seeded()), x0)
    y_0 = dirac_reverse(oracle, y, degradation, GeometricNoise(), time_grid(0.02), output="iterate",
                        generator=seeded())
    error, twin = y - degradation(x0, 1.0), seeded()  # e_t = y_t - A_t(x0) obeys e' = s'^2/s^2 e + sqrt(s^2 - s'^2) z
    for t, t_next in time_grid(0.02):
        fresh = math.sqrt(sigma(t) ** 2 - sigma(t_next) ** 2) * torch.randn(x0.shape, generator=twin)
        error = sigma(t_next) ** 2 / sigma(t) ** 2 * error + fresh
    torch.testing.assert_close(y_0, x0 + error, atol=1e-5, rtol=1e-5)
    assert abs((y_0 - x0).std().item() / sigma(0) - 1) < 0.15  # sigma_0-level noise
    assert abs((y_0 - x0).mean().item()) < 0.1 * sigma(0)


def test_constant_noise_oracle_iterate_telescopes_to_x0_plus_measurement_noise(mask, x0):
    """With constant sigma, no denoising and no fresh noise: look-ahead R telescopes A_1(x0) to A_0(x0) = x0."""
    y = mask(x0, 1.0) + 0.05 * torch.randn_like(x0)
    y_0 = dirac_reverse(lambda y_t, t: x0, y, mask, ConstantNoise(0.05), time_grid(0.05), output="iterate")
    torch.testing.assert_close(y_0, x0 + (y - mask(x0, 1.0)), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("stop_t", "nfe"), [(0.25, 38), (0.0, 50), (1.0, 1), (0.26, 38), (0.3, 36)])
def test_nfe_follows_the_reference_count(fading, x0, stop_t, nfe):
    """NFE for dt = 0.02: floor((1 - stop_t)/dt) + 1 for stop_t > 0, and 1/dt for stop_t = 0."""
    calls = []
    phi = lambda y_t, t: calls.append(t) or y_t  # noqa: E731
    dirac_reverse(phi, fading(x0, 1.0), fading, GeometricNoise(), time_grid(0.02, stop_t))
    assert len(calls) == nfe == DiracSampler(stop_t=stop_t).nfe
    assert torch.equal(calls[0], torch.ones(2))


def test_one_shot_is_phi_of_the_measurement(fading, x0):
    y = fading(x0, 1.0)
    phi = lambda y_t, t: torch.tanh(y_t) * t.view(-1, 1, 1, 1)  # noqa: E731
    one_shot = DiracSampler(stop_t=1.0, guidance="std")(phi, y, fading, GeometricNoise())
    torch.testing.assert_close(one_shot, phi(y, torch.ones(2)))


@pytest.mark.parametrize("guidance", ["std", "error"])
def test_guidance_descends_the_measurement_residual(fading, x0, guidance):
    """phi = a y_t + b, A_1 = I/2: G = (s_1^2 - s_t'^2) eta a (y - A_1(x0_hat)), eta std- or error-scaled."""
    a, b, step = 0.9, 0.05, 0.7
    y = fading(x0, 1.0) + 0.05 * torch.randn_like(x0)
    phi = lambda y_t, t: a * y_t + b  # noqa: E731
    run = dict(output="iterate", guidance_step=step)
    grid = time_grid(0.02, 1.0)
    guided = dirac_reverse(phi, y, fading, GeometricNoise(), grid, guidance=guidance, generator=seeded(), **run)
    plain = dirac_reverse(phi, y, fading, GeometricNoise(), grid, generator=seeded(), **run)
    residual = y - 0.5 * (a * y + b)
    per_image = residual.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    eta = step * 0.5 / sigma(1) ** 2 if guidance == "std" else step / per_image
    expected = (sigma(1) ** 2 - sigma(0.98) ** 2) * eta * a * residual
    torch.testing.assert_close(guided - plain, expected, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(("guidance", "steps"), [("std", (0.5, 2.0)), ("error", (20.0, 100.0))])
def test_guidance_improves_data_consistency_of_a_biased_phi(fading, x0, guidance, steps):
    """||y - A_1(x0_hat)|| after a run shrinks as the guidance step grows from 0 (no guidance)."""
    y = fading(x0, 1.0) + 0.05 * torch.randn_like(x0)
    phi = lambda y_t, t: y_t / (1 - 0.5 * t.view(-1, 1, 1, 1)) + 0.1  # noqa: E731
    residuals = []
    for mode, step in [("none", 0.0)] + [(guidance, step) for step in steps]:
        x0_hat = dirac_reverse(phi, y, fading, GeometricNoise(), time_grid(0.05, 0.25), guidance=mode,
                               guidance_step=step, generator=seeded())
        residuals.append((y - fading(x0_hat, 1.0)).norm().item())
    assert residuals[2] < residuals[1] < 0.99 * residuals[0]


def test_guidance_works_under_inference_mode(mask, x0):
    """Lightning validates under torch.inference_mode; guidance still differentiates through phi there."""
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    phi = lambda y_t, t: y_t + conv(y_t) * t.view(-1, 1, 1, 1)  # noqa: E731
    y = mask(x0, 1.0)
    sampler = DiracSampler(dt=0.25, guidance="std", output="iterate")
    with torch.inference_mode():
        inferred = sampler(phi, y.clone(), mask, GeometricNoise(), seeded())
    torch.testing.assert_close(inferred, sampler(phi, y, mask, GeometricNoise(), seeded()))


def test_batch_equals_single_images_with_per_image_generators(mask, x0):
    def phi(y_t, t):
        return torch.nn.functional.avg_pool2d(torch.tanh(y_t), 3, 1, 1) + 0.1 * t.view(-1, 1, 1, 1)

    y = mask(x0, 1.0) + 0.05 * torch.randn_like(x0)
    run = dict(output="iterate", incremental="look_back", guidance="error", guidance_step=0.3)
    grid = time_grid(0.1)
    batch = dirac_reverse(phi, y, mask, GeometricNoise(), grid, generator=[seeded(1), seeded(2)], **run)
    singles = [dirac_reverse(phi, y[i : i + 1], mask, GeometricNoise(), grid, generator=[seeded(i + 1)], **run)
               for i in range(2)]
    torch.testing.assert_close(batch, torch.cat(singles), atol=1e-6, rtol=1e-5)


def test_same_generator_seed_reproduces_and_a_new_seed_differs(fading, x0):
    def run(seed):
        return DiracSampler(dt=0.25, output="iterate")(lambda y_t, t: y_t, x0, fading, GeometricNoise(), seeded(seed))

    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))


def test_with_stop_fixes_the_stop_and_keeps_the_other_settings():
    sampler = DiracSampler(stop_t=1.0, guidance="std", auto_stop=True)
    assert sampler.with_stop(0.4) == DiracSampler(stop_t=0.4, guidance="std", auto_stop=False)
    with pytest.raises(ValueError, match="stop_t"):
        sampler.with_stop(1.5)


@pytest.mark.parametrize(("settings", "message"), [
    (dict(dt=0.0), r"dt must lie in \(0"),
    (dict(dt=1.5), r"dt must lie in \(0"),
    (dict(stop_t=-0.1), r"stop_t must lie in \[0"),
    (dict(stop_t=1.01), r"stop_t must lie in \[0"),
    (dict(output="mean"), "choose one of: x0_hat, iterate"),
    (dict(incremental="look_sideways"), "look_ahead, small_look_ahead, look_back, small_look_back, exact, identity"),
    (dict(guidance="dps"), "choose one of: none, std, error"),
    (dict(guidance_step=-1.0), "guidance_step"),
    (dict(small_delta=0.0), "small_delta"),
    (dict(auto_stop="yes"), "auto_stop"),
])
def test_bad_settings_raise(settings, message):
    with pytest.raises(ValueError, match=message):
        DiracSampler(**settings)


def test_bad_inputs_raise(fading, x0):
    sampler = DiracSampler(dt=0.5)
    with pytest.raises(ValueError, match="built for images of shape"):
        sampler(lambda y_t, t: y_t, torch.rand(2, 3, 4, 4), fading, GeometricNoise())
    with pytest.raises(ValueError, match="3 generators for a batch of 2"):
        sampler(lambda y_t, t: y_t, x0, fading, GeometricNoise(), generator=[seeded()] * 3)
    with pytest.raises(ValueError, match="phi must return"):
        sampler(lambda y_t, t: y_t[:, :1], x0, fading, GeometricNoise())
    with pytest.raises(ValueError, match="dt"):
        time_grid(-0.1)
    with pytest.raises(ValueError, match="no gradient"):
        dirac_reverse(lambda y_t, t: x0, x0, fading, GeometricNoise(), time_grid(0.5), guidance="std")


def test_grid_times_are_clean_and_end_at_zero():
    grid = time_grid(0.02)
    assert grid[0] == (1.0, 0.98) and grid[37] == (0.26, 0.24) and grid[-1] == (0.02, 0.0)
    assert time_grid(0.3) == [(1.0, 0.7), (0.7, 0.4), (0.4, 0.1), (0.1, 0.0)]
