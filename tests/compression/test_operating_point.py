"""RCC's operating point (issue 34 item 4): the truncated-PFR bias computed in closed form and removed by aiming, and
the default codec on Gaussian sources with the exact denoiser within 5 % of SPEC §3's theory (sum KL against the
exact-sample floor of its ladder, the residual noise of x_s against s^2, the MMSE and rho = 1 MSE against theirs).
The figures of experiments/rcc_operating_point.py (3x32x32, ladder 1 -> 0.05 in 24 levels): default (chunk KL 8,
pad 4, aimed) KL/floor 1.008, residual 0.994 s^2, MSE/MMSE 1.005; the former default (8, 2, unaimed) 1.22, 1.32 s^2,
1.40."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dirac.compression import Chunking, Codec, Ladder, header_bytes
from dirac.compression.gaussian_theory import (MEAN, chunk_index_bits, distortion_for_rate, format_overhead_bits,
                                               gaussian_source, index_bits, ladder_kl_bits, mmse,
                                               mutual_information_bits, pf_ode_mse, rate_for_distortion)
from dirac.compression.pfr import aim_gain, aimed_select, pfr_select, selected_projection
from dirac.denoisers import GaussianDenoiser

LN2 = math.log(2)


def test_closed_forms_reproduce_the_reference_numbers():
    """rcc.md §3: v = 1, geometric s 100 -> 0.5: sum KL / I = 1.76 (5 steps: 6 levels), 1.15 (20), 1.027 (100);
    R(D) of a uniform Gaussian is 1/2 log2(v / D) per dimension, so R(MMSE(s)) = I(X; Y)."""
    for steps, ratio in ((5, 1.76), (20, 1.15), (100, 1.027)):
        sigmas = list(100 * (0.5 / 100) ** (np.arange(steps + 1) / steps))
        assert ladder_kl_bits(1.0, sigmas) / mutual_information_bits(1.0, 0.5) == pytest.approx(ratio, abs=0.01)
    v = np.full(10, 0.02)
    assert rate_for_distortion(v, mmse(v, 0.05)) == pytest.approx(mutual_information_bits(v, 0.05), rel=1e-6)
    assert pf_ode_mse(0.25, 3**0.5, 1.0) == pytest.approx(0.3613, abs=1e-4)  # rcc.md §1 worked numbers
    assert pf_ode_mse(0.25, 3**0.5, 2.0) == pytest.approx(mmse(0.25, 3**0.5)) == pytest.approx(0.2308, abs=1e-4)


def test_the_truncated_pfr_bias_matches_simulation_and_aiming_removes_it():
    """Chunk KL 8 bits against K = 2^10: the closed form's realised shift f = 0.840 (rcc.md §7: 0.85), as 300 draws
    of `pfr_select` give; the aimed choice's mean shift is 1 (0.99-1.01 in closed form, within 0.05 in 300 draws)."""
    m, count = math.sqrt(2 * 8 * LN2), 2**10
    mean, _ = selected_projection(m, count)
    assert mean / m == pytest.approx(0.840, abs=0.005)
    assert selected_projection(aim_gain(m, count) * m, count)[0] / m == pytest.approx(1.0, abs=0.01)
    generator, plain, aimed = torch.Generator().manual_seed(0), [], []
    for trial in range(300):
        direction = torch.randn(16, generator=generator)
        mu = direction / direction.norm() * m
        plain.append(pfr_select(mu, trial, 0, 0, count, count).shift)
        aimed.append(aimed_select(mu, trial, 0, 0, count, count).shift)
    assert np.mean(plain) == pytest.approx(mean / m, abs=0.02)
    assert np.mean(aimed) == pytest.approx(1.0, abs=0.05)
    assert aim_gain(0.0, count) == 1.0 and selected_projection(m, 2**20)[0] / m > 0.95  # more candidates: less bias


def operating_point(kind: str, seed: int) -> np.ndarray:
    """One 3x32x32 source sample of `kind` coded with codec seed `seed` (ladder 1 -> 0.05 in 24 levels, default
    chunking, the exact denoiser): sum KL / the ladder's exact-sample floor, ||x_s - x0||^2 / (d s^2), Tweedie's MSE /
    MMSE(s), the rho = 1 PF-ODE's MSE / its theory and its output spread / the sample's, file / I(X; Y_s) and file /
    R(MSE)."""
    shape = (3, 32, 32)
    variance, x0 = gaussian_source(kind, shape, seed=0)
    codec = Codec(GaussianDenoiser(torch.full(shape, MEAN), variance), Ladder(1.0, 0.05, 24), Chunking(),
                  unit_range=False, seed=seed)
    encoding = codec.encode(x0)
    s, v = encoding.sigma, variance.double().flatten().numpy()
    error = float((codec.reconstruct(encoding.x_s, s, mmse=True) - x0).double().square().mean())
    perceptual = codec.reconstruct(encoding.x_s, s, rho=1.0, ode_steps=64).double()
    spread = float((x0.double() - MEAN).square().mean())  # the sample's own spread (heavy tails: far from mean v)
    return np.array([sum(encoding.kl_bits) / ladder_kl_bits(v, codec.ladder.sigmas()),
                     (encoding.realised_sigma / s) ** 2, error / mmse(v, s),
                     float((perceptual - x0).square().mean()) / pf_ode_mse(v, s, 1.0),
                     float((perceptual - MEAN).square().mean()) / spread,
                     encoding.bits / mutual_information_bits(v, s), encoding.bits / rate_for_distortion(v, error)])


@pytest.mark.parametrize("kind", ["gaussian", "heavy"])
def test_the_default_codec_is_within_five_percent_of_the_gaussian_theory(kind: str):
    """`operating_point`, the mean over codec seeds 0-3 (one seed's MSE ratios have sd 0.02-0.03 over 20 seeds, so a
    single seed strays past 5 % about one time in ten): sum KL within 5 % of the ladder's exact-sample floor,
    ||x_s - x0||^2 within 5 % of d s^2, Tweedie's MSE within 5 % of MMSE(s), the rho = 1 PF-ODE's MSE and output
    spread within 5 % of theirs (the source's); and the file within 5 % of the measured 1.63 I (gaussian) / 1.70 I
    (heavy), 1.63 / 1.83 x R(MSE), the least rate of any code for that MSE."""
    kl, residual, tweedie, pf_ode, spread, file_ratio, rd_ratio = np.mean(
        [operating_point(kind, seed) for seed in range(4)], 0)
    for ratio in (kl, residual, tweedie, pf_ode, spread):
        assert ratio == pytest.approx(1.0, abs=0.05)
    expected_file, expected_rd = {"gaussian": (1.63, 1.63), "heavy": (1.70, 1.83)}[kind]
    assert file_ratio < 1.05 * expected_file
    assert rd_ratio < 1.05 * expected_rd


def test_the_rate_distortion_function_inverts_reverse_water_filling():
    """D(R) = v 2^(-2 R / d) for equal variances; for diag variances D(R(D)) = D (water level below the largest)."""
    assert distortion_for_rate(np.full(8, 0.02), 8.0) == pytest.approx(0.02 * 2 ** (-2 * 8.0 / 8), rel=1e-9)
    variances = np.array([1.0, 0.5, 0.1, 0.01])
    for distortion in (0.005, 0.05, 0.2):
        assert distortion_for_rate(variances, rate_for_distortion(variances, distortion)) == pytest.approx(distortion,
                                                                                                           rel=1e-6)


def test_the_index_model_matches_pfr_draws():
    """A chunk of KL 8 bits against K = 2^12, plain and aimed: the Zipf code lengths of 400 PFR indices (one format-2
    step of 400 chunks) have `index_bits`' mean within 3 standard errors and its standard deviation within 15 %."""
    from dirac.compression.bitstream import zipf_probabilities
    from dirac.compression.pfr import step_select

    kl, count, chunks = 8.0, 2**12, 400
    direction = torch.randn(chunks, 16, generator=torch.Generator().manual_seed(0))
    mu = (direction / direction.norm(dim=1, keepdim=True) * math.sqrt(2 * kl * LN2)).flatten()
    probabilities = zipf_probabilities(count, 8)
    for aim in (False, True):
        selection = step_select(mu, chunks, 0, 0, count, aim)
        lengths = -np.log2(probabilities[selection.indices])
        mean, spread = index_bits(kl, 8, count, aim)
        assert lengths.mean() == pytest.approx(mean, abs=3 * spread / math.sqrt(chunks))
        assert lengths.std() == pytest.approx(spread, rel=0.15)


def rate_check(shape: tuple[int, int, int], levels: int, seed: int = 0) -> list[tuple[int, float, float, float]]:
    """One encoding of N(0.5, 0.02 I) of `shape` (ladder 1 -> 0.05, default chunking, the exact denoiser, codec seed
    `seed`) and, per
    step count k (the file's k-step prefix): (file bits, sum KL + the format's overhead, the allowed deviation, MSE of
    the MMSE decode / D(I(X; Y_s))). The allowed deviation is 5 %, or, while few chunks are sent, 3 standard
    deviations of the indices' code lengths plus one 32-bit word (the file's granularity) when that is larger."""
    variance, x0 = gaussian_source("gaussian", shape, seed=0)
    codec = Codec(GaussianDenoiser(torch.full(shape, MEAN), variance), Ladder(1.0, 0.05, levels), Chunking(),
                  unit_range=False, seed=seed)
    encoding = codec.encode(x0)
    _, _, symbols = codec.read(encoding.data)
    variances = [float(np.square(chunk_index_bits(kls, step.level, codec.chunking.candidates, codec.chunking.aim)[1])
                       .sum()) for step, kls in zip(symbols, encoding.chunk_kl_bits)]
    v, rows = variance.double().flatten().numpy(), []
    for k, (x_s, s) in enumerate(codec.decode_steps(encoding.data), 1):
        data = codec.pack(shape, symbols[:k])
        predicted = sum(encoding.kl_bits[:k]) + format_overhead_bits(symbols[:k], encoding.chunk_kl_bits[:k],
                                                                     codec.chunking, header_bytes(data))
        spread = math.sqrt(sum(variances[:k]))
        error = float((codec.reconstruct(x_s, s, mmse=True) - x0).double().square().mean())
        rows.append((8 * len(data), predicted, max(0.05 * predicted, 3 * spread + 32),
                     error / distortion_for_rate(v, mutual_information_bits(v, s))))
    return rows


def test_the_gaussian_rate_check_at_every_step_count():
    """SPEC §3 rate check, 3x32x32 N(0.5, 0.02), 24 levels, codec seeds 0-3: at every step count each file is within
    its allowed deviation of sum KL plus the format's overhead (`format_overhead_bits`, each chunk's index at its own
    KL) and the mean over the seeds within 5 %, and the MMSE decode's MSE within 5 % of D(R) at R = I(X; Y_s), the
    information x_s carries (= MMSE(s) for equal variances), on the mean. One seed's file strays up to 8 % from the
    prediction here (0.92-1.065 from 5 steps on over 8 seeds: a 300-bit file's ~10 indices, each +-4 bits, and its
    32-bit words), the mean of 4 stays within 0.980-1.015; MSE / D(I) 0.98-1.05 per seed. The MSE is far above D(R)
    at the file's own rate (4.5x at the end): the file is ~1.45x sum KL (the truncated Zipf code of an aimed ~8-bit
    chunk's index costs ~3 bits more than its KL) and sum KL is 1.09 I (the ladder's step factor)."""
    runs = [rate_check((3, 32, 32), 24, seed) for seed in range(4)]
    assert all(len(rows) == 24 for rows in runs)
    for k, steps in enumerate(zip(*runs), 1):
        assert all(abs(file_bits - predicted) <= allowed for file_bits, predicted, allowed, _ in steps), k
        file_bits, predicted, _, distortion_ratio = np.mean(steps, 0)
        assert file_bits / predicted == pytest.approx(1.0, abs=0.05), k
        assert distortion_ratio == pytest.approx(1.0, abs=0.05), k


@pytest.mark.slow
def test_the_gaussian_rate_check_at_a_large_dimension():
    """The rate check on 3x128x128 (49,152 dimensions, 24 levels; about a minute): at every step count the file is
    within 5 % of sum KL plus the format's overhead and the MSE within 5 % of D(I(X; Y_s)). Measured (format 3): file
    / (KL + overhead) 0.985-1.040 (1.007-1.040 over the first 4 steps, 89 chunks at the first; 0.985-1.014 after),
    MSE / D(I) 0.994-1.013."""
    for k, (file_bits, predicted, _, distortion_ratio) in enumerate(rate_check((3, 128, 128), 24), 1):
        assert abs(file_bits - predicted) <= 0.05 * predicted, (k, file_bits / predicted)
        assert distortion_ratio == pytest.approx(1.0, abs=0.05), k
