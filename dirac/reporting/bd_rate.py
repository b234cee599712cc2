"""Bjøntegaard delta rate (BD-rate) of rate–distortion curves (SPEC §3 comparisons): the mean relative rate
difference of a test curve against a reference curve at equal PSNR, from a cubic fit of log rate against PSNR on
each curve, averaged over the PSNR range both curves cover. Negative: the test codec needs fewer bits.

`python -m dirac.reporting.bd_rate <test rd_curve.csv> <reference rd_curve.csv>` compares every RD series the two
files share (e.g. RCC with a longer-trained denoiser against a shorter one)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dirac.reporting.files import csv_text, read_csv, write_text, written

DEGREE = 3  # Bjøntegaard's cubic fit
COLUMNS = ("images", "test", "reference", "bd_rate_percent", "psnr_low", "psnr_high", "note")


@dataclass(frozen=True)
class Curve:
    """One rate–distortion curve: bits per pixel and PSNR (dB) of each rate point."""

    bpp: tuple[float, ...]
    psnr: tuple[float, ...]


@dataclass(frozen=True)
class BDRate:
    """A BD-rate in percent over the PSNR interval [low, high], or None with the reason it is n/a."""

    percent: float | None
    low: float = math.nan
    high: float = math.nan
    reason: str = ""

    def text(self) -> str:
        """The BD-rate as a table cell: `-12.3 %`, or `n/a (reason)`."""
        return f"{self.percent:+.1f} %" if self.percent is not None else f"n/a ({self.reason})"


def _usable(curve: Curve, name: str) -> str:
    """Why `curve` cannot be fitted (too few points, non-positive rates, repeated PSNR), or ''."""
    if len(curve.bpp) != len(curve.psnr):
        raise ValueError(f"the {name} curve has {len(curve.bpp)} rates but {len(curve.psnr)} PSNR values")
    values = [*curve.bpp, *curve.psnr]
    if not all(math.isfinite(value) for value in values):
        return f"the {name} curve has non-finite values"
    if len(set(curve.psnr)) <= DEGREE:
        return f"the {name} curve has {len(set(curve.psnr))} distinct PSNR values; a cubic fit needs {DEGREE + 1}"
    if min(curve.bpp) <= 0:
        return f"the {name} curve has a rate <= 0"
    return ""


def _mean_log_rate(curve: Curve, low: float, high: float) -> float:
    """The mean of the cubic fit of ln(bpp) against PSNR over [low, high] (PSNR centred on the interval)."""
    centre = (low + high) / 2
    fit = np.polyfit(np.asarray(curve.psnr) - centre, np.log(curve.bpp), DEGREE)
    integral = np.polyint(fit)
    return float(np.polyval(integral, high - centre) - np.polyval(integral, low - centre)) / (high - low)


def bd_rate(test: Curve, reference: Curve) -> BDRate:
    """Bjøntegaard's BD-rate of `test` against `reference`: 100 (exp(mean ln R_test - mean ln R_ref) - 1) over the
    overlap of their PSNR ranges, each mean of a cubic fit of ln R against PSNR; n/a when the ranges do not overlap
    or a curve has too few points."""
    reason = _usable(test, "test") or _usable(reference, "reference")
    if reason:
        return BDRate(None, reason=reason)
    low, high = max(min(test.psnr), min(reference.psnr)), min(max(test.psnr), max(reference.psnr))
    if low >= high:
        return BDRate(None, reason=f"the PSNR ranges do not overlap: test {min(test.psnr):.2f}–{max(test.psnr):.2f} "
                                   f"dB, reference {min(reference.psnr):.2f}–{max(reference.psnr):.2f} dB")
    difference = _mean_log_rate(test, low, high) - _mean_log_rate(reference, low, high)
    return BDRate(100 * math.expm1(difference), low, high)


def curves(points: Sequence[Mapping[str, object]]) -> dict[tuple[str, str], Curve]:
    """The RD curves of rate points (`images`, `rd_series`, `bpp`, `psnr`; rows without a series belong to none),
    keyed by (images, series), points in rate order."""
    grouped: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for point in points:
        if point.get("rd_series") and point.get("psnr") not in (None, ""):
            key = (str(point.get("images", "")), str(point["rd_series"]))
            grouped.setdefault(key, []).append((float(point["bpp"]), float(point["psnr"])))
    return {key: Curve(*map(tuple, zip(*sorted(pairs)))) for key, pairs in grouped.items()}


@dataclass(frozen=True)
class Comparison:
    """The BD-rate of one test series against one reference series on one image set."""

    images: str
    test: str
    reference: str
    result: BDRate

    def csv_row(self) -> dict[str, str]:
        """The comparison as a CSV row of COLUMNS (empty BD-rate when n/a)."""
        percent = self.result.percent
        return {"images": self.images, "test": self.test, "reference": self.reference,
                "bd_rate_percent": "" if percent is None else f"{percent:.4g}", "psnr_low": f"{self.result.low:.4g}",
                "psnr_high": f"{self.result.high:.4g}", "note": self.result.reason}


def compare(tests: Mapping[tuple[str, str], Curve], references: Mapping[tuple[str, str], Curve],
            pairs: Sequence[tuple[str, str]]) -> list[Comparison]:
    """The BD-rate of each (test series, reference series) pair on every image set that has both curves."""
    return [Comparison(images, test, reference, bd_rate(tests[images, test], references[images, reference]))
            for images in dict.fromkeys(key[0] for key in tests) for test, reference in pairs
            if (images, test) in tests and (images, reference) in references]


def bd_rate_markdown(comparisons: Sequence[Comparison], title: str) -> str:
    """A Markdown table of BD-rates (negative: the test needs fewer bits than the reference at equal PSNR)."""
    lines = [title, "", "| images | test | reference | BD-rate | PSNR range (dB) |", "|---|---|---|---|---|"]
    for item in comparisons:
        interval = f"{item.result.low:.2f}–{item.result.high:.2f}" if item.result.percent is not None else "–"
        lines.append(f"| {item.images} | {item.test} | {item.reference} | {item.result.text()} | {interval} |")
    lines += ["", "BD-rate (Bjøntegaard): mean rate difference at equal PSNR, cubic fit of ln(bpp) against PSNR over "
                  "the PSNR range both curves cover; negative = fewer bits than the reference."]
    return "\n".join(lines) + "\n"


def write_bd_rates(comparisons: Sequence[Comparison], directory: str | Path, title: str) -> dict[str, Path]:
    """bd_rate.md and bd_rate.csv of the comparisons in `directory`."""
    directory = Path(directory)
    return written(write_text(directory / "bd_rate.md", bd_rate_markdown(comparisons, title)),
                   write_text(directory / "bd_rate.csv", csv_text(COLUMNS, [item.csv_row() for item in comparisons])))


def compare_runs(test_csv: str | Path, reference_csv: str | Path) -> str:
    """The BD-rate table of every RD series two rd_curve.csv files share, the first file's against the second's."""
    tests, references = curves(read_csv(test_csv)), curves(read_csv(reference_csv))
    shared = list(dict.fromkeys(series for (_, series) in tests if any(key[1] == series for key in references)))
    if not shared:
        raise ValueError(f"{test_csv} and {reference_csv} share no RD series")
    return bd_rate_markdown(compare(tests, references, [(series, series) for series in shared]),
                            f"BD-rate of {test_csv} against {reference_csv}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=compare_runs.__doc__)
    parser.add_argument("test_csv", help="rd_curve.csv of the run under test")
    parser.add_argument("reference_csv", help="rd_curve.csv of the reference run")
    arguments = parser.parse_args()
    print(compare_runs(arguments.test_csv, arguments.reference_csv), end="")
