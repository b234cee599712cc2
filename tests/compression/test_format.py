""".drc formats (issues 34, 31): the encoder writes format 3 (format 2's 19-byte header at 32 px RGB; the chunks of
a step share one pool of K candidate rows, chunk c's candidate n the row (n + r_c) mod K); files of format 1 (38-byte
header, candidates per chunk) and format 2 (one K x dims candidate matrix per step), written here by the code paths
every earlier file came from, still decode bit for bit through a default codec."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from dirac.compression import Chunking, Codec, Ladder, header_bytes, pack_file, read_header
from dirac.compression import pfr
from dirac.compression.pfr import (ARRIVALS, arrival_blocks, as_chunk_rows, block_span, block_times, chunk_of_dims,
                                   exponential_gaps, from_chunk_rows, open_blocks, pool_block, pool_shifts, pool_width,
                                   pooled_candidates, pooled_select, pruned_pfr_argmin, segment_sums, stable_seed,
                                   step_arrival_log_times, step_block, step_block_size, step_candidates, step_select)
from tests.compression.conftest import gaussian_source

# sha256 (first 16 hex digits) of the format-1 files commit 5aba2cf's encoder wrote with these settings (3x8x8
# N(0.5, 0.02 I) sample, ladder 1 -> 0.05 in 6 levels, seed 7): the format-1 writer kept here is that code path.
FORMAT_1_FILES = {Chunking(6, 2): "85b17240b4868807", Chunking(6, 2, block_log2=4, aim=False): "0771e2637fdc0d1f"}
# The same for the format-2 files of commit 2498265 (the last to write format 2).
FORMAT_2_FILES = {Chunking(6, 2): "19467decd574c934", Chunking(6, 2, aim=False): "9c67a63883355248"}
OLD_FILES = [(1, chunking, digest) for chunking, digest in FORMAT_1_FILES.items()] + [
    (2, chunking, digest) for chunking, digest in FORMAT_2_FILES.items()]


@pytest.mark.parametrize(("version", "chunking", "digest"), OLD_FILES,
                         ids=["format1_aimed", "format1_blocks_of_16", "format2_aimed", "format2_plain"])
def test_an_older_format_file_decodes_bit_for_bit(version, chunking, digest):
    denoiser, x0 = gaussian_source((3, 8, 8))
    writer = Codec(denoiser, Ladder(1.0, 0.05, 6), chunking, seed=7, unit_range=False, version=version)
    encoding = writer.encode(x0)
    assert hashlib.sha256(encoding.data).hexdigest()[:16] == digest
    assert header_bytes(encoding.data) == (38 if version == 1 else 19)
    assert read_header(encoding.data)[0].version == version
    reader = Codec(denoiser, unit_range=False)  # the default: writes format 3, reads all three
    for steps in (2, 6):
        x_s, sigma = reader.decode_noisy(encoding.data, steps=steps)
        expected = encoding.x_s if steps == 6 else writer.encode(x0, steps=steps).x_s
        assert torch.equal(x_s, expected) and sigma == pytest.approx(writer.ladder.sigmas()[steps - 1])


def test_the_encoder_writes_format_3_with_a_19_byte_header():
    """3x32x32, seed 0: 1 magic + 5 packed + 3 varints (C, H, seed; square) + 4 float16 + 2 fingerprint + 4 CRC."""
    denoiser, x0 = gaussian_source((3, 32, 32))
    codec = Codec(denoiser, Ladder(1.0, 0.05, 4), unit_range=False)
    encoding = codec.encode(x0)
    assert encoding.data[0] == 0xD3 and header_bytes(encoding.data) == 19
    header, _ = read_header(encoding.data)
    assert (header.version, header.sigma_max, header.sigma_min) == (3, 1.0, 0.04998779296875)  # float16 0.05
    assert torch.equal(codec.decode_noisy(encoding.data)[0], encoding.x_s)
    large = pack_file(header.__class__(**{**vars(header), "height": 256, "width": 256}), b"")
    assert header_bytes(large) == 20  # 256 takes a 2-byte varint


def test_format_2_scores_every_chunk_as_pfr_defines_it():
    """The batched search picks, per chunk, argmin_n log T_{c,n} - X_{c,n} . mu_c over the whole step matrix (built
    here block by block) and the decoder regenerates the chosen candidates bit for bit; 37 chunks of 1000 dims."""
    dims, chunks, count = 1000, 37, 2**10
    mu = torch.randn(dims, generator=torch.Generator().manual_seed(0))
    selection = step_select(mu, chunks, 3, 5, count, aim=False)
    rows = step_block_size(count, dims)
    matrix = torch.cat([step_block(3, 5, block, stop - start, dims) for block in range(count // rows)
                        for start, stop in [block_span(block, rows, count)]], 1)
    scores = step_arrival_log_times(3, 5, chunks, count, "cpu") - segment_sums(matrix * mu[:, None], chunks)
    assert selection.indices == scores.argmin(1).tolist()
    owner = chunk_of_dims(dims, chunks)
    assert torch.equal(selection.sample, matrix[torch.arange(dims), scores.argmin(1)[owner]])
    assert torch.equal(step_candidates(3, 5, selection.indices, count, dims), selection.sample)


def bounded_log_times(rows: torch.Tensor, row_shifts: torch.Tensor, generator: np.random.Generator) -> torch.Tensor:
    """`(chunks, K)` log T in index order of format 3's arrivals as `pruned_pfr_argmin` draws them for the projections
    `rows` (pool-row order), every block it never opens set to its lower bound T = start (the most any arrival there
    could help its candidates)."""
    chunks, count = rows.shape
    size = min(pfr.ARRIVAL_BLOCK, count)
    starts, sums = arrival_blocks(generator, chunks, count // size, size)
    opened = open_blocks(rows, row_shifts, starts, sums)
    times = starts[:, :, None].expand(chunks, count // size, size).clone()
    uniforms = torch.from_numpy(generator.random((int(opened.sum()), size), dtype=np.float32))
    times[opened] = block_times(starts[opened], sums[opened], exponential_gaps(uniforms))
    return times.view(chunks, count).log()


def in_index_order(rows: torch.Tensor, row_shifts: torch.Tensor) -> torch.Tensor:
    """`(chunks, K)`: entry [c, n] = rows[c, (n + r_c) mod K]."""
    count = rows.shape[1]
    return rows.gather(1, (torch.arange(count)[None, :] + row_shifts[:, None]) % count)


@pytest.mark.parametrize("seed", range(8))
def test_pruned_pfr_finds_the_winner_of_every_arrival(seed):
    """The blocks `pruned_pfr_argmin` leaves closed cannot hold the winner: with each of their arrivals moved down to
    the block's start (its bound), argmin log T - a over all K = 2^12 candidates is still its choice; 64 chunks whose
    projections a have norms 0 to 6 and a few planted outliers, K / B blocks of B = 64, row shifts r_c at random
    (multiples of B among them, where an index block is one block of rows)."""
    chunks, count = 64, 2**12
    draw = torch.Generator().manual_seed(seed)
    norms = torch.linspace(0, 6, chunks)[:, None]
    rows = torch.randn(chunks, count, generator=draw) * norms + norms**2 * (
        torch.rand(chunks, count, generator=draw) < 1e-3)
    shifts = torch.randint(count, (chunks,), generator=draw)
    shifts[::4] = shifts[::4] // pfr.ARRIVAL_BLOCK * pfr.ARRIVAL_BLOCK
    chosen = pruned_pfr_argmin(rows, shifts, np.random.Generator(np.random.PCG64(seed)))
    log_times = bounded_log_times(rows, shifts, np.random.Generator(np.random.PCG64(seed)))
    assert torch.equal(chosen, (log_times - in_index_order(rows, shifts)).argmin(1))


def test_format_3_block_arrivals_are_a_poisson_process():
    """A block's B gaps drawn as its Gamma(B) sum times Dirichlet proportions (`arrival_blocks`, `block_times`): the
    n-th arrival T_n (n = 0, 1, ...) has the Gamma(n + 1) mean and variance n + 1, within and across blocks (20000
    processes of 4 blocks of 64), and a block's last arrival is its start plus its sum exactly."""
    generator = np.random.Generator(np.random.PCG64(5))
    starts, sums = arrival_blocks(generator, 20000, 4, 64)
    gaps = exponential_gaps(torch.from_numpy(generator.random((80000, 64), dtype=np.float32)))
    times = block_times(starts.flatten(), sums.flatten(), gaps)
    assert torch.equal(times[:, -1], starts.flatten() + sums.flatten())
    times = times.view(20000, 256).double()
    for n in (0, 5, 63, 64, 100, 255):
        assert abs(float(times[:, n].mean()) - (n + 1)) < 4 * math.sqrt((n + 1) / 20000)
        assert abs(float(times[:, n].var()) / (n + 1) - 1) < 0.05


@pytest.mark.parametrize("kept", [True, False])
def test_format_3_scores_every_chunk_as_pfr_defines_it(kept, monkeypatch):
    """Every chunk c runs PFR over K candidates, candidate n = the head of pool row (n + r_c) mod K paired with its
    own arrival T_{c,n}: N_c = argmin_n log T_n - X . mu_c over the whole pool (built here block by block, the blocks
    the encoder never opened at their bound); the decoder regenerates the chosen rows bit for bit; 37 chunks of 1000
    dims (sizes 28 and 27) and 2 chunks of 500 (two blocks of pool rows), K = 2^10, the pool kept or drawn again."""
    monkeypatch.setattr(pfr, "POOL_KEPT_FLOATS", 2**24 if kept else 0)
    dims, count = 1000, 2**10
    mu = torch.randn(dims, generator=torch.Generator().manual_seed(0))
    for chunks in (37, 2):
        selection = pooled_select(mu, chunks, 3, 5, count, aim=False)
        width = pool_width(dims, chunks)
        rows = step_block_size(count, width)
        pool = torch.cat([pool_block(3, 5, block, rows, width) for block in range(count // rows)])
        shifts = pool_shifts(3, 5, chunks, count)
        candidates = (torch.arange(count)[None, :] + shifts[:, None]) % count  # (chunks, K)
        projections = (pool[candidates] * as_chunk_rows(mu, chunks)[:, None]).sum(2)
        generator = np.random.Generator(np.random.PCG64(stable_seed(3, 5, ARRIVALS)))
        by_row = projections.gather(1, (torch.arange(count)[None, :] - shifts[:, None]) % count)
        winners = (bounded_log_times(by_row, shifts, generator) - projections).argmin(1)
        assert selection.indices == winners.tolist()
        chosen = pool[candidates[torch.arange(chunks), winners]]
        assert torch.equal(selection.sample, from_chunk_rows(chosen, dims))
        assert torch.equal(pooled_candidates(3, 5, selection.indices, count, dims), selection.sample)
        assert torch.equal(from_chunk_rows(as_chunk_rows(mu, chunks), dims), mu)


def test_format_3_chunks_draw_distinct_candidates_and_white_noise():
    """Any K consecutive chunks get distinct row shifts (no two map an index to the same row); over 2048
    chunks of 6 bits each (K = 2^10, 6 dims per chunk, aimed) the chosen samples' residuals X - mu have the spread of
    format 2's independent candidates and no correlation between chunks, and the mean realised shift f and the
    indices have format 2's statistics."""
    shifts = pool_shifts(0, 1, 3000, 1024)
    assert len(set(shifts[:1024].tolist())) == 1024 and len(set(shifts[1024:2048].tolist())) == 1024
    dims, chunks, count = 6 * 2048, 2048, 2**10
    mu = torch.randn(dims, generator=torch.Generator().manual_seed(1))
    mu *= (2 * math.log(2) * 6 * chunks) ** 0.5 / mu.norm()
    pooled, independent = pooled_select(mu, chunks, 0, 1, count, True), step_select(mu, chunks, 0, 1, count, True)
    residuals = [as_chunk_rows(selection.sample - mu, chunks).double() for selection in (pooled, independent)]
    correlation = (residuals[0][:-1] * residuals[0][1:]).sum(1).mean() / residuals[0].square().sum(1).mean()
    assert abs(float(residuals[0].square().mean() - residuals[1].square().mean())) < 0.05
    assert abs(float(correlation)) < 0.05
    assert abs(sum(pooled.shifts) - sum(independent.shifts)) / chunks < 0.03
    log_ranks = [torch.tensor(selection.indices, dtype=torch.float64).add(1).log2().mean() for selection in
                 (pooled, independent)]
    assert abs(float(log_ranks[0] - log_ranks[1])) < 0.15
