"""Severity maps: the packaged reference blur schedule, linear and tabulated maps, schedule files (SPEC §1.1)."""

import pytest
import torch

from dirac.degradations import LinearSeverity, TabulatedSeverity, default_blur_schedule


def test_reference_blur_schedule_rows_endpoints_and_check_values():
    schedule = default_blur_schedule()
    assert len(schedule.t_knots) == 102
    torch.testing.assert_close(schedule.t_knots, torch.arange(102, dtype=torch.float64) / 101, atol=1e-8, rtol=0)
    assert schedule.endpoints() == (0.3, 3.0)
    assert bool((schedule.c_knots[1:] > schedule.c_knots[:-1]).all())
    t = torch.tensor([0.1, 0.25, 0.5, 0.7, 0.8, 0.9])
    expected = torch.tensor([0.4875, 0.6697, 1.1010, 1.5779, 1.9662, 2.4002])
    torch.testing.assert_close(schedule(t), expected, atol=1e-4, rtol=0)


def test_linear_map_is_exact_at_the_ends_and_has_constant_slope():
    linear = LinearSeverity(0.1, 50.0)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    values = linear(t)
    assert values[0].item() == 0.1 and values[2].item() == 50.0
    _, slope = torch.func.jvp(linear, (t,), (torch.ones_like(t),))
    torch.testing.assert_close(slope, torch.full_like(t, 49.9))


def test_tabulated_map_interpolates_piecewise_linearly_with_the_segment_slope():
    tabulated = TabulatedSeverity([0.0, 0.25, 1.0], [1.0, 2.0, 5.0])
    t = torch.tensor([0.0, 0.125, 0.25, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(tabulated(t), torch.tensor([1.0, 1.5, 2.0, 3.0, 5.0], dtype=torch.float64))
    inner = torch.tensor([0.1, 0.6], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(tabulated(inner).sum(), inner)
    torch.testing.assert_close(grad, torch.tensor([4.0, 4.0], dtype=torch.float64))
    _, tangent = torch.func.jvp(tabulated, (inner.detach(),), (torch.ones(2, dtype=torch.float64),))
    torch.testing.assert_close(tangent, torch.tensor([4.0, 4.0], dtype=torch.float64))
    assert tabulated(torch.rand(2, 3)).shape == (2, 3)


def test_schedule_file_round_trips_exactly(tmp_path):
    schedule = default_blur_schedule()
    schedule.save(tmp_path / "blur.txt")
    again = TabulatedSeverity.from_file(tmp_path / "blur.txt")
    assert again.signature() == schedule.signature()


def test_missing_or_garbled_schedule_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        TabulatedSeverity.from_file(missing)
    garbled = tmp_path / "garbled.txt"
    garbled.write_text("# t c\n0 0.3\n0.5 abc\n1 3\n")
    with pytest.raises(ValueError, match=r"garbled.txt, line 3"):
        TabulatedSeverity.from_file(garbled)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty.txt holds no"):
        TabulatedSeverity.from_file(empty)
    unordered = tmp_path / "unordered.txt"
    unordered.write_text("0 0.3\n0.6 1\n0.4 2\n1 3\n")
    with pytest.raises(ValueError, match="unordered.txt: schedule times must be strictly increasing"):
        TabulatedSeverity.from_file(unordered)


@pytest.mark.parametrize(
    ("t_knots", "c_knots", "message"),
    [([0.0], [1.0], "at least two"), ([0.0, 1.0], [1.0], "as many"), ([0.1, 1.0], [1.0, 2.0], "start at 0"),
     ([0.0, 0.9], [1.0, 2.0], "end at 1"), ([0.0, 1.0], [1.0, float("nan")], "finite")],
)
def test_bad_knots_raise(t_knots, c_knots, message):
    with pytest.raises(ValueError, match=message):
        TabulatedSeverity(t_knots, c_knots)
