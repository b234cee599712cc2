"""The reverse process on the project's Gaussian blur (SPEC §1.1, §1.3), at 8 px with stds up to 1.5 px."""

import torch

from dirac.degradations import GaussianBlur, GeometricNoise, LinearSeverity
from dirac.restorers import DiracSampler
from dirac.samplers import TrajectoryRecorder, incremental_reconstruction


def reconstruction(variant, blur, x, t, dt, delta=0.005):
    y_hat = blur.apply(x, x.new_full((x.shape[0],), t))
    return incremental_reconstruction(variant, blur, x, y_hat, t, dt, delta)


def test_exact_variant_matches_finite_differences_on_the_reference_schedule():
    """Mid-way between two knots of the tabulated schedule, -dt dA_t/dt is a central difference."""
    blur, h, t = GaussianBlur(3, 8, reference_size=16).double(), 1e-6, 50.5 / 101
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    times = torch.full((2,), t, dtype=torch.float64)
    central = (blur.apply(x, times + h) - blur.apply(x, times - h)) / (2 * h)
    assert central.abs().max() > 1e-3
    torch.testing.assert_close(reconstruction("exact", blur, x, t, 0.02), -0.02 * central, rtol=1e-6, atol=1e-9)


def test_look_ahead_and_look_back_agree_with_exact_to_second_order():
    blur = GaussianBlur(3, 8, reference_size=16, schedule=LinearSeverity(0.3, 3.0)).double()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    for variant in ("look_ahead", "look_back"):
        gaps = [(reconstruction(variant, blur, x, 0.6, dt) - reconstruction("exact", blur, x, 0.6, dt)).norm().item()
                for dt in (0.04, 0.02, 0.01)]
        assert all(3.5 < coarse / fine < 4.5 for coarse, fine in zip(gaps, gaps[1:]))


def test_oracle_on_blur_keeps_consistency_at_the_noise_floor():
    blur, x0 = GaussianBlur(3, 8, reference_size=16), torch.rand(2, 3, 8, 8)
    z = torch.randn_like(x0)
    y = blur(x0, 1.0) + 0.05 * z
    recorder = TrajectoryRecorder(x0, y, blur, {}, every=5)
    oracle = lambda y_t, t: x0 + 0 * y_t  # noqa: E731  (depends on y_t, so guidance can differentiate it)
    out = DiracSampler(dt=0.05, guidance="std")(oracle, y, blur, GeometricNoise(), callback=recorder)
    assert torch.equal(out, x0)
    floor = (0.05 * z).flatten(1).norm(dim=1).mean().item()
    assert all(abs(row["x0_hat/data_consistency"] / floor - 1) < 1e-5 for row in recorder.rows())
