"""One-pass trajectory recording and the automatic stop (SPEC §1.3 early stopping, §4 curves)."""

import pytest
import torch

from dirac.degradations.noise import GeometricNoise
from dirac.restorers import DiracSampler
from dirac.samplers import TrajectoryRecorder, best_stop_t


def psnr(pred, target):
    return -10 * torch.log10((pred - target).square().flatten(1).mean(dim=1))


def blurry_phi(y_t, t):
    """An imperfect x0 predictor, per image."""
    return torch.nn.functional.avg_pool2d(y_t, 3, 1, 1) * (1 + 0.3 * t.view(-1, 1, 1, 1))


def seeded():
    return torch.Generator().manual_seed(11)


@pytest.fixture
def measured(mask, x0):
    return mask(x0, 1.0) + 0.05 * torch.randn_like(x0)


def test_one_pass_rows_match_separate_runs(mask, x0, measured):
    """Rows and kept outputs of one full pass equal separate runs stopped at 0.25 and 0.5, for both outputs."""
    base = DiracSampler(dt=0.05, guidance="std", incremental="look_back")
    recorder = TrajectoryRecorder(x0, measured, mask, {"psnr": psnr}, keep={0.25, 0.5})
    base(blurry_phi, measured, mask, GeometricNoise(), seeded(), callback=recorder)
    rows = recorder.rows()
    assert len(rows) == base.nfe == 20
    for stop_t in (0.25, 0.5):
        row = next(r for r in rows if r["nfe"] == base.with_stop(stop_t).nfe)
        for output in ("x0_hat", "iterate"):
            sampler = DiracSampler(dt=0.05, guidance="std", incremental="look_back", stop_t=stop_t, output=output)
            separate = sampler(blurry_phi, measured, mask, GeometricNoise(), seeded())
            torch.testing.assert_close(recorder.kept(stop_t, output), separate)
            assert row[f"{output}/psnr"] == pytest.approx(psnr(separate, x0).mean().item(), rel=1e-5)
            consistency = (mask(separate, 1.0) - measured).flatten(1).norm(dim=1).mean().item()
            assert row[f"{output}/data_consistency"] == pytest.approx(consistency, rel=1e-5)


def test_row_stop_t_reproduces_the_row_step(mask, x0, measured):
    recorder = TrajectoryRecorder(x0, measured, mask, {}, every=3)
    DiracSampler(dt=0.02)(blurry_phi, measured, mask, GeometricNoise(), callback=recorder)
    rows = recorder.rows()
    assert [row["step"] for row in rows] == list(range(0, 50, 3)) + [49]
    assert all(DiracSampler(dt=0.02, stop_t=row["stop_t"]).nfe == row["nfe"] for row in rows)
    assert rows[0]["stop_t"] == 1.0 and rows[-1]["t_next"] == 0.0


def test_kept_stop_zero_is_the_final_step_and_unreached_stops_raise(mask, x0, measured):
    partial = TrajectoryRecorder(x0, measured, mask, {}, keep=[0.0, 0.1])
    DiracSampler(dt=0.25, stop_t=0.5)(blurry_phi, measured, mask, GeometricNoise(), callback=partial)
    for stop_t in (0.0, 0.1):
        with pytest.raises(KeyError, match=f"no output kept for stop_t {stop_t}"):
            partial.kept(stop_t)
    full = TrajectoryRecorder(x0, measured, mask, {}, keep=[0.0])
    out = DiracSampler(dt=0.25)(blurry_phi, measured, mask, GeometricNoise(), callback=full)
    assert torch.equal(full.kept(0.0), out)


def test_oracle_consistency_stays_at_the_noise_floor(mask, x0):
    """A perfect phi keeps ||A_1(x0_hat) - y|| = ||sigma_1 z|| at every step of the trajectory."""
    z = torch.randn_like(x0)
    recorder = TrajectoryRecorder(x0, mask(x0, 1.0) + 0.05 * z, mask, {"psnr": psnr})
    DiracSampler(dt=0.1)(lambda y_t, t: x0, mask(x0, 1.0) + 0.05 * z, mask, GeometricNoise(), callback=recorder)
    floor = (0.05 * z).flatten(1).norm(dim=1).mean().item()
    assert all(row["x0_hat/data_consistency"] == pytest.approx(floor, rel=1e-5) for row in recorder.rows())
    assert all(row["x0_hat/psnr"] == float("inf") for row in recorder.rows())


def test_best_stop_t_picks_the_peak_and_the_earliest_tie():
    rows = [{"stop_t": 1.0, "x0_hat/psnr": 20.0, "x0_hat/lpips": 0.5},
            {"stop_t": 0.8, "x0_hat/psnr": 25.0, "x0_hat/lpips": 0.3},
            {"stop_t": 0.6, "x0_hat/psnr": 25.0, "x0_hat/lpips": 0.2},
            {"stop_t": 0.4, "x0_hat/psnr": 22.0, "x0_hat/lpips": 0.4}]
    assert best_stop_t(rows) == 0.8
    assert best_stop_t(rows, key="x0_hat/lpips", mode="min") == 0.6
    with pytest.raises(ValueError, match="choose one of: max, min"):
        best_stop_t(rows, mode="peak")
    with pytest.raises(ValueError, match="unknown row key"):
        best_stop_t(rows, key="iterate/fid")
    with pytest.raises(ValueError, match="at least one"):
        best_stop_t([])


def test_recorder_rejects_bad_arguments(mask, x0, measured):
    with pytest.raises(ValueError, match="one shape"):
        TrajectoryRecorder(x0, measured[:1], mask, {})
    with pytest.raises(ValueError, match="every"):
        TrajectoryRecorder(x0, measured, mask, {}, every=0)
    with pytest.raises(ValueError, match="kept stop_t"):
        TrajectoryRecorder(x0, measured, mask, {}, keep=[1.5])
    recorder = TrajectoryRecorder(x0, measured, mask, {"bad": lambda p, t: (p - t).mean()})
    with pytest.raises(ValueError, match="metric 'bad' must return one value per image"):
        DiracSampler(dt=0.5)(blurry_phi, measured, mask, GeometricNoise(), callback=recorder)
