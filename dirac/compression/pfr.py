"""Poisson functional representation (ordered random coding) of N(mu, I) against N(0, I) with shared randomness
(SPEC §3 RCC; Li & El Gamal). A candidate is a pure function of (seed, step, chunk, index): format 1 draws each
chunk's candidates from its own generator (`pfr_select`); format 2 draws one candidate matrix per step, chunk c's
candidate n being column n's entries in c's positions of the step's partition order, so every chunk of a step is
scored by one generation and one product per block of candidates (`step_select`); format 3 draws one pool of K rows
per step, shared by its chunks, chunk c's candidate n the head of row (n + r_c) mod K (`pooled_select`), so a step
draws K x ceil(dims / chunks) normals instead of K x dims; its encoder-private arrivals come a block's sum at a time,
the inside only of blocks that may hold the winner (`pruned_pfr_argmin`). With K candidates the choice is
biased toward the prior (realised shift f < 1, rcc.md §7); `selected_projection` computes that bias and `aim_gain`
the target scaling that removes it (the aimed PFR: the realised shift is 1 in expectation)."""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from dirac.precision import in_float32

ARRIVALS = -1  # the chunk-level tag of the encoder-private arrival times
PARTITION = -2  # the chunk-level tag of a step's partition of the dimensions
STEP_BLOCK = -3  # the chunk-level tag of a format-2 step's blocks of candidates
STEP_BLOCK_FLOATS = 2**18  # float32 values of one format-2 block (1 MiB, cache-sized), or of one candidate if larger


def stable_seed(*parts: int) -> int:
    """A 63-bit seed from integers by BLAKE2b (stable across processes, platforms and Python versions; never hash())."""
    digest = hashlib.blake2b(struct.pack(f"<{len(parts)}q", *parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def block_span(block: int, block_size: int, count: int) -> tuple[int, int]:
    """The candidate indices [start, stop) of block `block` of `block_size` candidates among `count`."""
    start = block * block_size
    return start, min(start + block_size, count)


def candidate_block(seed: int, step: int, chunk: int, block: int, rows: int, dims: int,
                    device: torch.device | str = "cpu") -> Tensor:
    """Candidates X_n ~ N(0, I_dims) of one block, `(rows, dims)` float32, from a generator seeded by
    (seed, step, chunk, block): the same call on the same device type gives the same bits
    (SPEC §3 shared randomness)."""
    generator = torch.Generator(device=device).manual_seed(stable_seed(seed, step, chunk, block))
    return torch.randn(rows, dims, generator=generator, device=device, dtype=torch.float32)


def candidate(seed: int, step: int, chunk: int, index: int, count: int, block_size: int, dims: int,
              device: torch.device | str = "cpu") -> Tensor:
    """X_index, the decoder's regeneration of one candidate (its block's row), `(dims,)` float32 (SPEC §3)."""
    block = index // block_size
    start, stop = block_span(block, block_size, count)
    return candidate_block(seed, step, chunk, block, stop - start, dims, device)[index - start]


def arrival_log_times(seed: int, step: int, chunk: int, count: int) -> Tensor:
    """log T_n of a Poisson process, T_n = cumulative sums of Exp(1) (seeded, encoder-private), `(count,)` float64."""
    generator = torch.Generator().manual_seed(stable_seed(seed, step, chunk, ARRIVALS))
    gaps = torch.empty(count, dtype=torch.float64).exponential_(generator=generator)
    return gaps.cumsum(0).log()


@dataclass(frozen=True)
class Selection:
    """The PFR choice for one chunk: index N, the candidate X_N `(dims,)` and the realised shift f = X_N.mu/||mu||^2."""

    index: int
    sample: Tensor
    shift: float


@in_float32
def pfr_select(mu: Tensor, seed: int, step: int, chunk: int, count: int, block_size: int) -> Selection:
    """N = argmin_n log T_n - X_n . mu over `count` shared candidates, scored block by block as one matvec per block
    (the target N(mu, I) against the prior N(0, I); SPEC §3 RCC by PFR); in float32 under any autocast."""
    mu = mu.detach().to(torch.float32).flatten()
    log_times = arrival_log_times(seed, step, chunk, count).to(mu.device)
    best_scores, best_rows, best_samples = [], [], []
    for block in range(math.ceil(count / block_size)):
        start, stop = block_span(block, block_size, count)
        rows = candidate_block(seed, step, chunk, block, stop - start, mu.numel(), mu.device)
        score, row = (log_times[start:stop] - (rows @ mu).to(torch.float64)).min(0)
        best_scores.append(score)
        best_rows.append(row + start)
        best_samples.append(rows[row])
    winner = int(torch.stack(best_scores).argmin())
    sample, norm = best_samples[winner], float(mu @ mu)
    shift = float(sample @ mu) / norm if norm > 0 else 1.0
    return Selection(int(best_rows[winner]), sample, shift)


def _winner_score_density(m: float, count: int) -> tuple[Tensor, Tensor]:
    """(log c grid, exp(-L(c)) dc / d(log c)): the winning score's density of truncated PFR (`selected_projection`),
    L(c) = c Phi(a*(c) - m) + K Phi(-a*(c)), a*(c) = (log(K / c) + m^2 / 2) / m, float64."""
    log_k = math.log(count)
    ell = torch.linspace(-40.0, log_k + 40.0, 4001, dtype=torch.float64)  # log c
    a_star = (log_k - ell + m * m / 2) / m
    rate = ell.exp() * torch.special.ndtr(a_star - m) + count * torch.special.ndtr(-a_star)
    return ell, (ell - rate).exp()


def winner_log2_rank(m: float, count: int) -> tuple[float, float]:
    """Mean and standard deviation of log2(1 + T_N) under truncated PFR (`selected_projection`'s construction): the
    winner (T, a) has density psi(a) w(a) exp(-L(c)) in (c, a), c = T / w(a) <= K / w(a); its rank N + 1 is 1 + the
    Poisson count of the arrivals before T, about 1 + T (the index's code length is about a log2 of it)."""
    if m <= 0:
        return 0.0, 0.0  # nothing to choose: the first candidate, rank 1
    ell, weight = _winner_score_density(m, count)
    a = np.linspace(m - 9.0, max(m, math.sqrt(2 * math.log(count))) + 9.0, 601)[:, None]
    log_t = ell.numpy()[None, :] + m * a - m * m / 2
    density = np.exp(-((a - m) ** 2) / 2) * weight.numpy()[None, :] * (log_t <= math.log(count))
    bits = np.logaddexp(0.0, log_t) / math.log(2)
    moments = [np.trapezoid(np.trapezoid(density * bits**power, ell.numpy(), axis=1), a[:, 0]) for power in range(3)]
    mean = moments[1] / moments[0]
    return float(mean), float(math.sqrt(max(moments[2] / moments[0] - mean**2, 0.0)))


def selected_projection(m: float, count: int) -> tuple[float, float]:
    """(E[a], E[a^2]) of the chosen candidate's projection a = X_N . mu / |mu| when N(mu, I), |mu| = m, is coded
    against N(0, I) by PFR with `count` = K candidates (exact PFR: a ~ N(m, 1)).

    The first K arrivals are taken as the Poisson points with T <= K. A point (T, a) scores c = T / w(a),
    w(a) = exp(m a - m^2 / 2), and the smallest c wins, so a has density psi(a) G(K / w(a)), psi = N(m, 1),
    G(C) = int_0^C exp(-L(c)) dc, L(c) = c Phi(a*(c) - m) + K Phi(-a*(c)), a*(c) = (log(K / c) + m^2 / 2) / m."""
    if m <= 0:
        return 0.0, 1.0
    log_k = math.log(count)
    ell, integrand = _winner_score_density(m, count)
    steps = (integrand[1:] + integrand[:-1]) / 2 * ell.diff()
    log_g = torch.cat([ell[:1], (ell[0].exp() + steps.cumsum(0)).log()]).numpy()
    a = np.linspace(-10.0, max(m, math.sqrt(2 * log_k)) + 10.0, 8001)
    log_c = log_k - (m * a - m * m / 2)
    log_density = -((a - m) ** 2) / 2 + np.where(log_c < ell[0].item(), log_c, np.interp(log_c, ell.numpy(), log_g))
    density = np.exp(log_density - log_density.max())
    total = np.trapezoid(density, a)
    return float(np.trapezoid(density * a, a) / total), float(np.trapezoid(density * a * a, a) / total)


@lru_cache(maxsize=32)
def _aim_table(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(targets m', E[a | m']) on a grid of m' from 0 to the point where E[a] saturates at the best of K candidates."""
    targets = np.linspace(0.0, 4 * math.sqrt(2 * math.log(count)) + 4, 161)
    means = np.array([selected_projection(float(target), count)[0] for target in targets])
    return targets, np.maximum.accumulate(means)


def aim_gains(norms: np.ndarray, count: int) -> np.ndarray:
    """`aim_gain` of every chunk norm m in `norms` at once, float64."""
    norms = np.asarray(norms, dtype=np.float64)
    targets, means = _aim_table(count)
    reached = np.interp(norms, means, targets)
    return np.where(norms > 0, np.maximum(1.0, reached / np.where(norms > 0, norms, 1.0)), 1.0)


def aim_gain(m: float, count: int) -> float:
    """h >= 1 with E[a | h m] = m: the scaling of a chunk's target mu (|mu| = m) under which PFR with `count`
    candidates realises the intended shift in expectation (f = 1); at most the grid's end when m is beyond reach."""
    return float(aim_gains(np.array([m]), count)[0])


def aimed_select(mu: Tensor, seed: int, step: int, chunk: int, count: int, block_size: int) -> Selection:
    """PFR of the target aim_gain(|mu|) mu, so that E[X_N . mu / |mu|^2] = 1 (no bias toward the prior); the
    Selection's shift is measured against the intended mu. The decoder regenerates X_N as for `pfr_select`."""
    gain = aim_gain(float(mu.detach().double().norm()), count)
    chosen = pfr_select(mu * gain, seed, step, chunk, count, block_size)
    return Selection(chosen.index, chosen.sample, chosen.shift * gain)


def step_block_size(count: int, dims: int) -> int:
    """R, the candidates of one format-2 block: the largest power of two with dims x R <= STEP_BLOCK_FLOATS (at least
    1, at most K = `count`); derived from the image, so no file can ask for a larger block."""
    return min(count, 2 ** max(0, (STEP_BLOCK_FLOATS // dims).bit_length() - 1))


def step_block(seed: int, step: int, block: int, size: int, dims: int, device: torch.device | str = "cpu") -> Tensor:
    """Candidates [block R, block R + size) of a step as the columns of a `(dims, size)` float32 matrix in partition
    order, from a generator seeded by (seed, step, STEP_BLOCK, block): chunk c's candidate n is column n's entries in
    c's positions (format 2; SPEC §3 shared randomness)."""
    generator = torch.Generator(device=device).manual_seed(stable_seed(seed, step, STEP_BLOCK, block))
    return torch.randn(dims, size, generator=generator, device=device, dtype=torch.float32)


def chunk_sizes(dims: int, chunks: int) -> list[int]:
    """The sizes of the `tensor_split` groups of `dims` values into `chunks`: the first dims % chunks one larger."""
    size, larger = divmod(dims, chunks)
    return [size + 1] * larger + [size] * (chunks - larger)


def chunk_of_dims(dims: int, chunks: int, device: torch.device | str = "cpu") -> Tensor:
    """`(dims,)` long: the chunk owning each position of the partition order."""
    sizes = torch.tensor(chunk_sizes(dims, chunks), device=device)
    return torch.repeat_interleave(torch.arange(chunks, device=device), sizes)


def segment_sums(values: Tensor, chunks: int) -> Tensor:
    """`(chunks, columns)`: the sums of `values` `(dims, columns)` over each chunk's positions (the `tensor_split`
    groups), each a reduction over whole contiguous rows."""
    dims, columns = values.shape
    size, larger = divmod(dims, chunks)
    split = larger * (size + 1)
    return torch.cat([values[:split].reshape(larger, size + 1, columns).sum(1),
                      values[split:].reshape(chunks - larger, size, columns).sum(1)])


def exponential_gaps(uniforms: Tensor) -> Tensor:
    """Exp(1) gaps -log(1 - U) of float32 uniforms U in [0, 1) (multiples of 2^-24, so 1 - U in (0, 1] is exact;
    log, not log1p, which is 5x slower on CPU), computed in place. float32 caps a gap at 16.6 = -log 2^-24 (a true
    Exp(1) exceeds it with probability 6e-8)."""
    return uniforms.neg_().add_(1).log_().neg_()


def step_arrival_log_times(seed: int, step: int, chunks: int, count: int, device: torch.device | str) -> Tensor:
    """Format 2's log T of an independent Poisson process per chunk, `(chunks, count)` float32: cumulative sums of
    `exponential_gaps` of torch uniforms seeded by (seed, step, ARRIVALS) (encoder-private), K <= 2^20 gaps summed to
    ~1e-4 relative, far below the spread of the scores they are compared with."""
    generator = torch.Generator().manual_seed(stable_seed(seed, step, ARRIVALS))
    return exponential_gaps(torch.rand(chunks, count, generator=generator)).cumsum(1).log_().to(device)


@dataclass(frozen=True)
class StepSelection:
    """The PFR choices of every chunk of one step: the indices N_c, the chosen candidates `(dims,)` in partition order
    and each chunk's realised shift f_c = X_N . mu_c / |mu_c|^2 against its intended mu_c."""

    indices: list[int]
    sample: Tensor
    shifts: list[float]


@in_float32
def step_select(mu: Tensor, chunks: int, seed: int, step: int, count: int, aim: bool) -> StepSelection:
    """Format-2 PFR of all chunks of one step: `mu` `(dims,)` in partition order, chunk c its c-th `tensor_split`
    group; N_c = argmin_n log T_{c,n} - X_{c,n} . h_c mu_c over K = `count` candidates (h_c = `aim_gain` when `aim`,
    else 1), each block of candidates scored for every chunk by one generation, one product and its segment sums."""
    mu = mu.detach().to(torch.float32).flatten()
    dims, device = mu.numel(), mu.device
    owner = chunk_of_dims(dims, chunks, device)
    squared_norms = segment_sums(mu.double().square()[:, None], chunks)[:, 0]
    gains = aim_gains(squared_norms.sqrt().cpu().numpy(), count) if aim else np.ones(chunks)
    target = (mu * torch.as_tensor(gains, dtype=torch.float32, device=device)[owner])[:, None]
    log_times = step_arrival_log_times(seed, step, chunks, count, device)
    size, positions = step_block_size(count, dims), torch.arange(dims, device=device)
    best = torch.full((chunks,), math.inf, device=device)
    indices, sample = torch.zeros(chunks, dtype=torch.long, device=device), torch.zeros_like(mu)
    for block in range(math.ceil(count / size)):
        start, stop = block_span(block, size, count)
        candidates = step_block(seed, step, block, stop - start, dims, device)
        score, column = (log_times[:, start:stop] - segment_sums(candidates * target, chunks)).min(1)
        better = score < best
        best, indices = torch.where(better, score, best), torch.where(better, column + start, indices)
        improved = torch.where(better, column, -1)[owner]  # each position's new column, -1 where its chunk kept its own
        chosen = candidates.take(positions * (stop - start) + improved.clamp_min(0))
        sample = torch.where(improved >= 0, chosen, sample)
    projections = segment_sums((sample.double() * mu.double())[:, None], chunks)[:, 0]
    shifts = torch.where(squared_norms > 0, projections / squared_norms.clamp_min(1e-300), 1.0)
    return StepSelection(indices.tolist(), sample, shifts.tolist())


def step_candidates(seed: int, step: int, indices: list[int], count: int, dims: int,
                    device: torch.device | str = "cpu") -> Tensor:
    """`(dims,)` float32 in partition order: chunk c's candidate X_{N_c} of a format-2 step, the decoder's
    regeneration; only the blocks holding some N_c are drawn."""
    size, chunks = step_block_size(count, dims), len(indices)
    wanted = torch.tensor(indices, device=device)[chunk_of_dims(dims, chunks, device)]
    sample = torch.empty(dims, dtype=torch.float32, device=device)
    for block in sorted({index // size for index in indices}):
        start, stop = block_span(block, size, count)
        positions = ((wanted >= start) & (wanted < stop)).nonzero().flatten()
        candidates = step_block(seed, step, block, stop - start, dims, device)
        sample[positions] = candidates.take(positions * (stop - start) + wanted[positions] - start)
    return sample


# -- format 3: one pool of candidate rows per step, shared by its chunks -------------------------------------------
POOL = -4  # the chunk-level tag of a format-3 step's blocks of pool rows
SHIFTS = -5  # the chunk-level tag of a format-3 step's per-chunk row shifts
ARRIVAL_BLOCK = 64  # B: format 3 draws each chunk's arrivals B at a time, a block's sum first, its inside if needed
POOL_KEPT_FLOATS = 2**24  # a format-3 pool up to 64 MiB is kept for the chosen rows, a larger one drawn again
PRUNE_SLACK = 1e-3  # the margin of a block's bound over float32 rounding of the scores (~1e-6 of values below 30)


def pool_width(dims: int, chunks: int) -> int:
    """s = ceil(dims / chunks), the length of a format-3 pool row: the largest chunk (a smaller one uses its head)."""
    return -(-dims // chunks)


def pool_shifts(seed: int, step: int, chunks: int, count: int) -> Tensor:
    """r_c, the row shift of every chunk of a format-3 step, `(chunks,)` long: runs of a random permutation of 0..K-1
    seeded by (seed, step, SHIFTS), so no two of any K consecutive chunks map an index to the same row (low-KL chunks,
    whose indices are mostly 0, would otherwise share their noise)."""
    generator = torch.Generator().manual_seed(stable_seed(seed, step, SHIFTS))
    runs = [torch.randperm(count, generator=generator) for _ in range(-(-chunks // count))]
    return torch.cat(runs)[:chunks]


def pool_block(seed: int, step: int, block: int, rows: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """Rows [block R, block R + rows) of a format-3 step's pool of K rows X_j ~ N(0, I_s), `(rows, width)` float32,
    the `candidate_block` of the chunk-level tag POOL (SPEC §3 shared randomness)."""
    return candidate_block(seed, step, POOL, block, rows, width, device)


def as_chunk_rows(values: Tensor, chunks: int) -> Tensor:
    """`(chunks, s)`: chunk c's `tensor_split` group of `values` `(dims,)` as row c, zero-padded to s = `pool_width`."""
    dims = values.numel()
    size, larger = divmod(dims, chunks)
    rows = values.new_zeros(chunks, pool_width(dims, chunks))
    split = larger * (size + 1)
    if larger:
        rows[:larger] = values[:split].view(larger, size + 1)
    rows[larger:, :size] = values[split:].view(chunks - larger, size)
    return rows


def from_chunk_rows(rows: Tensor, dims: int) -> Tensor:
    """`(dims,)`: the inverse of `as_chunk_rows`, each chunk's row cut to the chunk's size."""
    chunks = rows.shape[0]
    size, larger = divmod(dims, chunks)
    return torch.cat([rows[:larger].flatten(), rows[larger:, :size].flatten()])


def arrival_blocks(generator: np.random.Generator, chunks: int, blocks: int, size: int) -> tuple[Tensor, Tensor]:
    """(starts, sums), `(chunks, blocks)` float32: the sum S_{c,b} ~ Gamma(B) of the B = `size` Exp(1) gaps of block b
    of chunk c's Poisson process, and its start, the arrival T_{c, bB - 1} before it (0 for b = 0; format 3,
    encoder-private, drawn first from the step's generator)."""
    sums = torch.from_numpy(generator.standard_gamma(float(size), size=(chunks, blocks), dtype=np.float32))
    ends = sums.cumsum(1)
    return torch.cat([ends.new_zeros(chunks, 1), ends[:, :-1]], 1), sums


def block_times(starts: Tensor, sums: Tensor, gaps: Tensor) -> Tensor:
    """`(rows, B)` arrival times of blocks: start + S x (E_1 + ... + E_k) / (E_1 + ... + E_B) for B Exp(1) gaps E
    (the B gaps given their sum S are S times Dirichlet(1, ..., 1) proportions), the last exactly start + S."""
    partial = gaps.cumsum(1)
    return starts[:, None] + sums[:, None] * (partial / partial[:, -1:])


def open_blocks(rows: Tensor, row_shifts: Tensor, starts: Tensor, sums: Tensor) -> Tensor:
    """`(chunks, K / B)` bool: the index blocks that may hold a chunk's PFR winner. `rows` `(chunks, K)` are the
    projections a in pool-row order (index n of chunk c at row (n + r_c) mod K). Each block of B rows has its best
    candidate in a known index block b, whose end bounds that candidate's arrival, so min over row blocks of log end_b
    - max a is a score some candidate reaches; index block b spans the row blocks q + b and q + b + 1 (q = r_c // B),
    and is open when log start_b - their max a, a bound on its scores, is within PRUNE_SLACK of that score."""
    chunks, count = rows.shape
    blocks = starts.shape[1]
    size = count // blocks
    best, where = rows.view(chunks, blocks, size).max(2)
    home = ((torch.arange(0, count, size, device=rows.device) + where - row_shifts[:, None]) % count) // size
    reached = ((starts + sums).gather(1, home).log() - best).amin(1, keepdim=True)
    first = (row_shifts[:, None] // size + torch.arange(blocks, device=rows.device)) % blocks
    spanned = torch.maximum(best.gather(1, first), best.gather(1, (first + 1) % blocks))
    return starts.log() - spanned <= reached + PRUNE_SLACK


def pruned_pfr_argmin(rows: Tensor, row_shifts: Tensor, generator: np.random.Generator) -> Tensor:
    """N_c = argmin_n log T_{c,n} - a_{c,n} over the K candidates of every chunk (`rows`: the projections a in pool-row
    order, as `open_blocks`), with each chunk's own Poisson arrivals T drawn block by block (SPEC §3 RCC by PFR,
    format 3): every block's sum first (`arrival_blocks`), then the gaps inside only the `open_blocks` (the same law
    as drawing every gap: the proportions are independent of the sum), so most of the K arrivals are never drawn and
    the projections are read in index order only there. `(chunks,)` long."""
    chunks, count = rows.shape
    size = min(ARRIVAL_BLOCK, count)
    starts, sums = (part.to(rows.device) for part in arrival_blocks(generator, chunks, count // size, size))
    chunk, block = open_blocks(rows, row_shifts, starts, sums).nonzero(as_tuple=True)
    uniforms = torch.from_numpy(generator.random((len(chunk), size), dtype=np.float32)).to(rows.device)
    times = block_times(starts[chunk, block], sums[chunk, block], exponential_gaps(uniforms))
    positions = (row_shifts[chunk, None] + block[:, None] * size + torch.arange(size, device=rows.device)) % count
    scores, offsets = (times.log_() - rows[chunk[:, None], positions]).min(1)
    best = scores.new_full((chunks,), math.inf).scatter_reduce(0, chunk, scores, "amin")
    winners = torch.where(scores == best[chunk], block * size + offsets, count)
    return winners.new_full((chunks,), count).scatter_reduce(0, chunk, winners, "amin")


@in_float32
def pooled_select(mu: Tensor, chunks: int, seed: int, step: int, count: int, aim: bool) -> StepSelection:
    """Format-3 PFR of all chunks of one step (SPEC §3 RCC by PFR): the step draws one pool of K rows X_j ~ N(0, I_s),
    s = ceil(dims / chunks), and chunk c's candidate n is the head of row (n + r_c) mod K, so each chunk runs truncated
    PFR over K i.i.d. candidates with its own arrivals, N_c = argmin_n log T_{c,n} - X . h_c mu_c (h_c = `aim_gain`
    when `aim`; `pruned_pfr_argmin`), at K x s normals per step instead of format 2's K x dims. `mu` `(dims,)` in
    partition order."""
    mu = mu.detach().to(torch.float32).flatten()
    dims, device = mu.numel(), mu.device
    targets = as_chunk_rows(mu, chunks)
    squared_norms = targets.double().square().sum(1)
    gains = aim_gains(squared_norms.sqrt().cpu().numpy(), count) if aim else np.ones(chunks)
    scaled = targets * torch.as_tensor(gains, dtype=torch.float32, device=device)[:, None]
    row_shifts = pool_shifts(seed, step, chunks, count).to(device)
    width = targets.shape[1]
    size = step_block_size(count, width)
    keep = count * width <= POOL_KEPT_FLOATS  # else the chosen rows' blocks are drawn again
    projections, kept = torch.empty(chunks, count, device=device), []
    for block in range(count // size):
        pool = pool_block(seed, step, block, size, width, device)
        torch.mm(scaled, pool.T, out=projections[:, block * size:(block + 1) * size])
        if keep:
            kept.append(pool)
    generator = np.random.Generator(np.random.PCG64(stable_seed(seed, step, ARRIVALS)))
    indices = pruned_pfr_argmin(projections, row_shifts, generator)
    rows = (indices + row_shifts) % count
    if keep:  # one block (the usual case) indexed as it is, never copied
        sample = (kept[0] if len(kept) == 1 else torch.cat(kept))[rows]
    else:
        sample = pool_rows(seed, step, rows, count, width, device)
    realised = torch.where(squared_norms > 0, (sample.double() * targets.double()).sum(1)
                           / squared_norms.clamp_min(1e-300), 1.0)
    return StepSelection(indices.tolist(), from_chunk_rows(sample, dims), realised.tolist())


def pool_rows(seed: int, step: int, rows: Tensor, count: int, width: int, device: torch.device | str) -> Tensor:
    """`(chunks, s)` float32: pool row rows[c] of a format-3 step for every chunk c, only the blocks holding one
    drawn."""
    size = step_block_size(count, width)
    rows = rows.cpu()
    sample = torch.empty(len(rows), width, dtype=torch.float32, device=device)
    for block in (rows // size).unique().tolist():
        chosen = (rows // size == block).nonzero().flatten()
        sample[chosen.to(device)] = pool_block(seed, step, block, size, width, device)[(rows[chosen] - block * size)
                                                                                        .to(device)]
    return sample


def pooled_candidates(seed: int, step: int, indices: list[int], count: int, dims: int,
                      device: torch.device | str = "cpu") -> Tensor:
    """`(dims,)` float32 in partition order: chunk c's candidate, pool row (N_c + r_c) mod K of a format-3 step, the
    decoder's regeneration; only the blocks holding a chosen row are drawn."""
    chunks = len(indices)
    rows = (torch.tensor(indices) + pool_shifts(seed, step, chunks, count)) % count
    return from_chunk_rows(pool_rows(seed, step, rows, count, pool_width(dims, chunks), device), dims)
