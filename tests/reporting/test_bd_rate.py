"""Bjøntegaard BD-rate (issue 31): closed-form cases of the cubic fit of ln(rate) against PSNR over the overlapping
PSNR range, n/a with the reason for curves that do not overlap or are too short, and the run-against-run table."""

import math

import numpy as np
import pytest

from dirac.reporting.bd_rate import Curve, bd_rate, compare, compare_runs, curves, write_bd_rates
from dirac.reporting.files import csv_text, read_csv, write_text

PSNR = (24.0, 27.0, 29.5, 31.0, 34.0)
BPP = (0.12, 0.3, 0.61, 0.9, 1.8)


def test_a_rate_scaled_by_0_8_everywhere_is_exactly_minus_20_percent():
    result = bd_rate(Curve(tuple(0.8 * b for b in BPP), PSNR), Curve(BPP, PSNR))
    assert result.percent == pytest.approx(-20.0, abs=1e-9) and (result.low, result.high) == (24.0, 34.0)
    assert bd_rate(Curve(BPP, PSNR), Curve(tuple(0.8 * b for b in BPP), PSNR)).percent == pytest.approx(25.0, abs=1e-9)
    assert result.text() == "-20.0 %"


def test_cubic_log_rates_on_different_ranges_give_the_closed_form_mean_over_the_overlap():
    def log_rate(psnr, extra):  # ln R = cubic in PSNR; the test curve adds alpha * P^2
        p = np.asarray(psnr)
        return -9.0 + 0.2 * p + 2e-3 * (p - 30) ** 3 + extra * p**2

    alpha = 1e-3
    test_psnr, reference_psnr = np.linspace(28, 36, 6), np.linspace(30, 40, 7)
    test = Curve(tuple(np.exp(log_rate(test_psnr, alpha))), tuple(test_psnr))
    reference = Curve(tuple(np.exp(log_rate(reference_psnr, 0.0))), tuple(reference_psnr))
    result = bd_rate(test, reference)
    mean_difference = alpha * (36**3 - 30**3) / (3 * (36 - 30))  # the mean of alpha P^2 over [30, 36]
    assert (result.low, result.high) == (30.0, 36.0)
    assert result.percent == pytest.approx(100 * math.expm1(mean_difference), rel=1e-9)


def test_disjoint_psnr_ranges_and_short_curves_are_n_a_with_the_reason():
    apart = bd_rate(Curve(BPP, tuple(p + 20 for p in PSNR)), Curve(BPP, PSNR))
    assert apart.percent is None and "do not overlap" in apart.reason and "44.00–54.00" in apart.reason
    assert apart.text().startswith("n/a (the PSNR ranges do not overlap")
    short = bd_rate(Curve(BPP[:3], PSNR[:3]), Curve(BPP, PSNR))
    assert short.percent is None and "needs 4" in short.reason
    assert "rate <= 0" in bd_rate(Curve((0.0, *BPP[1:]), PSNR), Curve(BPP, PSNR)).reason
    with pytest.raises(ValueError, match="5 rates but 4 PSNR"):
        bd_rate(Curve(BPP, PSNR[:4]), Curve(BPP, PSNR))


def test_curves_grouped_by_image_set_and_series_and_run_against_run(tmp_path):
    def points(scale):
        rows = [{"images": images, "rd_series": series, "bpp": scale * b, "psnr": p + shift}
                for images in ("64px", "256px") for series, shift in (("RCC MMSE", 0.0), ("JPEG", -1.0))
                for b, p in zip(BPP, PSNR)]
        return [*rows, {"images": "64px", "rd_series": "", "bpp": 1.0, "psnr": 30.0}]  # no series: on no curve

    grouped = curves(points(1.0))
    assert set(grouped) == {("64px", "RCC MMSE"), ("64px", "JPEG"), ("256px", "RCC MMSE"), ("256px", "JPEG")}
    assert grouped["64px", "JPEG"].psnr == tuple(p - 1 for p in PSNR)
    found = compare(grouped, grouped, [("RCC MMSE", "JPEG"), ("RCC MMSE", "WebP")])
    assert [(item.images, item.reference) for item in found] == [("64px", "JPEG"), ("256px", "JPEG")]
    assert found[0].result.percent < 0  # 1 dB better at every rate: fewer bits
    paths = write_bd_rates(found, tmp_path / "run", "title")
    assert [row["images"] for row in read_csv(paths["bd_rate.csv"])] == ["64px", "256px"]
    columns = ["images", "rd_series", "bpp", "psnr"]
    write_text(tmp_path / "long.csv", csv_text(columns, points(0.8)))
    write_text(tmp_path / "short.csv", csv_text(columns, points(1.0)))
    table = compare_runs(tmp_path / "long.csv", tmp_path / "short.csv")
    assert table.count("-20.0 %") == 4 and "| 256px | JPEG | JPEG |" in table
