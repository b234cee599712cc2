"""Gaussian-source overheads of the RCC codec per chunk setting (3x32x32 N(0.5, 0.02), ladder 1 -> 0.05 in 24 steps):
file/payload bits vs sum KL and I(X;Y), realised shift f, MSE vs MMSE(s) and D(R), encode/decode time, PFR throughput
vs bare randn + matvec (SPEC §3).

Run: PYTHONPATH=. .venv/bin/python experiments/measure_overheads.py
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from dirac.compression import Chunking, Codec, Ladder, candidate_block, header_bytes
from dirac.compression.gaussian_theory import MEAN, VARIANCE, gaussian_source
from dirac.denoisers import GaussianDenoiser

SHAPE, DIMS = (3, 32, 32), 3072
SETTINGS = [(8, 2), (8, 4), (10, 2), (12, 2)]


def measure(denoiser: GaussianDenoiser, x0: torch.Tensor, chunk: int, pad: int) -> str:
    """One row: the codec at chunk bits `chunk` and pad `pad`, its bits against sum KL and I(X;Y) (SPEC §3)."""
    codec = Codec(denoiser, Ladder(1.0, 0.05, 24), Chunking(chunk, pad), unit_range=False)
    start = time.time()
    encoding = codec.encode(x0)
    encode_s = time.time() - start
    start = time.time()
    x_s, _ = codec.decode_noisy(encoding.data)
    decode_s = time.time() - start
    s, kl = encoding.sigma, sum(encoding.kl_bits)
    mutual = 0.5 * DIMS * math.log2(1 + VARIANCE / s**2)
    mse = ((codec.reconstruct(x_s, s, mmse=True) - x0) ** 2).mean().item()
    rate = encoding.bits / DIMS
    scored = codec.chunking.candidates * DIMS * len(encoding.kl_bits)  # every chunk scores K candidates of its dims
    payload = encoding.bits - 8 * header_bytes(encoding.data)
    return (f"ck{chunk} pad{pad}: file {encoding.bits}b payload/KL {payload / kl:.3f} file/KL {encoding.bits / kl:.3f} "
            f"KL/I {kl / mutual:.3f} file/I {encoding.bits / mutual:.3f} f {np.mean(encoding.shifts):.3f} "
            f"mse/mmse(s) {mse / (VARIANCE * s * s / (VARIANCE + s * s)):.2f} "
            f"mse/D(R) {mse / (VARIANCE * 2 ** (-2 * rate)):.2f} enc {encode_s:.1f}s dec {decode_s:.2f}s "
            f"{scored / encode_s / 1e6:.0f}M candidate values scored/s")


def bare_throughput(blocks: int = 20, rows: int = 4096, columns: int = 300) -> float:
    """Millions of candidate normals per second drawn and multiplied by a vector, without the codec around them."""
    mu = torch.randn(columns)
    start = time.time()
    for index in range(blocks):
        candidate_block(0, 0, 0, index, rows, columns) @ mu
    return blocks * rows * columns / (time.time() - start) / 1e6


def main() -> None:
    """Print one row per chunk setting, then the bare PFR throughput (one thread)."""
    torch.set_num_threads(1)
    variance, x0 = gaussian_source("gaussian", SHAPE)
    denoiser = GaussianDenoiser(torch.full(SHAPE, MEAN), variance)
    for chunk, pad in SETTINGS:
        print(measure(denoiser, x0, chunk, pad))
    print(f"bare randn+matvec {bare_throughput():.1f}M normals/s (1 thread)")


if __name__ == "__main__":
    main()
