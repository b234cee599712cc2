"""The RCC codec (SPEC §3): progressive DiffC-style communication of x_s through the noise ladder, each step a sample
of q(x_{s'} | x_s, x0) coded against p_theta(x_{s'} | x_s) by PFR, into a real .drc file; decoding replays the steps
bit for bit and ends with the score-scaled PF-ODE (any rho, chosen at decode time) or Tweedie's D(x_s, s)."""

from __future__ import annotations

import copy
import logging
import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dirac.compression.bitstream import (FORMAT_VERSION, PRNGS, Header, StepSymbols, check_blocks, check_header,
                                         check_ladder, decode_payload, encode_payload, min_chunks, pack_file,
                                         unpack_file)
from dirac.compression.chunking import Chunking, partition, permutation
from dirac.compression.errors import CodecError
from dirac.compression.ladder import Ladder
from dirac.compression.pfr import (aim_gain, aimed_select, candidate, pfr_select, pooled_candidates, pooled_select,
                                   segment_sums, step_candidates, step_select)
from dirac.precision import autocast_off, in_float32
from dirac.samplers.pf_ode import score_scaled_pf_ode, tweedie

log = logging.getLogger(__name__)
LN2 = math.log(2.0)
MAX_DIMS = 2**26  # values per image the format admits (a 4096 x 4096 RGB image is 2^25.6)
PRIOR_MEAN = 0.5  # p(x_{s_0}) = N(0.5, s_0^2 I): the first step's prior, the middle of the [0, 1] data range


def model_fingerprint(model: nn.Module) -> int:
    """CRC-32 of the class name and every state-dict entry (name and raw bytes): which weights a file needs."""
    crc = zlib.crc32(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        crc = zlib.crc32(name.encode(), crc)
        crc = zlib.crc32(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes(), crc)
    return crc


def finite(x: Tensor, what: str) -> Tensor:
    """x, or a CodecError when a decoded value is NaN or infinite (a corrupt file or a model failing on it)."""
    if not bool(x.isfinite().all()):
        raise CodecError(f"the decoded {what} is not finite ({int((~x.isfinite()).sum())} NaN or infinite values)")
    return x


def step_kl_bits(mu: Tensor) -> float:
    """KL(q || p) = ||mu_q - mu_p||^2 / (2 v) = ||mu||^2 / 2 nats, in bits, for mu = (mu_q - mu_p) / sqrt(v)
    (SPEC §3)."""
    return 0.5 * float(mu.double().square().sum()) / LN2


def steps_within(sizes: Sequence[int], target: float, pixels: int, levels: int) -> tuple[int, str]:
    """(k, why): k, the most steps whose file (of `sizes` bytes after 1, 2, ... steps) is within `target` bits per
    pixel, and why the target is out of reach ('' when it is not): below the first step's file, or above the whole
    ladder's (of `levels` steps). The rule of `Codec.encode(bpp=)` and of the compression task's rates."""
    rates = [8 * size / pixels for size in sizes]
    fitting = sum(rate <= target for rate in rates)
    if rates[0] > target:
        return fitting, (f"one step already takes {rates[0]:.4g} bpp, above the target {target:g} bpp (a smaller "
                         "image pays more for the .drc header; raise ladder.sigma_max or the target)")
    if len(rates) == levels and rates[-1] < target:
        return fitting, (f"the whole ladder ({levels} steps) takes {rates[-1]:.4g} bpp, below the target {target:g} "
                         "bpp (lower ladder.sigma_min or the target)")
    return fitting, ""


@dataclass(frozen=True)
class Encoding:
    """A .drc file and what the encoder knows: x_s as the decoder rebuilds it, s, per-step KL bits, chunk counts,
    the realised shifts f of every chunk, the noise level x_s really carries, ||x_s - x0|| / sqrt(C H W), and the KL
    bits of every chunk of every step (SPEC §3 diagnostics; the rate check's `format_overhead_bits`)."""

    data: bytes
    x_s: Tensor
    sigma: float
    kl_bits: list[float]
    chunks: list[int]
    shifts: list[float]
    realised_sigma: float
    chunk_kl_bits: list[list[float]]

    @property
    def bits(self) -> int:
        """The rate: 8 x the file size in bytes, every byte counted."""
        return 8 * len(self.data)


class Codec:
    """Encoder and decoder around a denoiser D(x, sigma) (VE, [0, 1] data; SPEC §3), a noise ladder, a chunking rule
    and a shared seed. `channels`/`size_multiple` (when known) are the geometry the model accepts (sides multiples
    of `size_multiple`); `unit_range=False` admits any finite values (a Gaussian source). `version`: the .drc format
    written (3: the chunks of a step share one pool of candidate rows; 2: they share one K x dims candidate matrix;
    1: each chunk draws its own candidates and the ladder is stored in float32); all three are read."""

    def __init__(self, denoiser: nn.Module, ladder: Ladder | None = None, chunking: Chunking | None = None,
                 seed: int = 0, prng: str = "cpu", channels: int | None = None, size_multiple: int | None = None,
                 unit_range: bool = True, version: int = FORMAT_VERSION) -> None:
        if prng not in PRNGS or not 0 <= int(seed) < 2**32 or version not in (1, 2, 3):
            raise CodecError(f"prng must be one of {PRNGS}, seed in [0, 2^32) and version 1, 2 or 3, got {prng!r}, "
                             f"{seed!r}, {version!r}")
        if prng == "cuda" and not torch.cuda.is_available():
            raise CodecError("prng=cuda needs a CUDA GPU")
        self.denoiser, self.version = denoiser.eval(), version
        ladder = ladder or Ladder()
        self.ladder, self.chunking = ladder if version == 1 else ladder.in_float16(), chunking or Chunking()
        check_ladder(self.ladder.sigma_max, self.ladder.sigma_min, self.ladder.levels)
        self.seed, self.prng = int(seed), prng
        self.channels, self.size_multiple, self.unit_range = channels, size_multiple, unit_range
        self.fingerprint = model_fingerprint(denoiser)
        self.device = next(iter(denoiser.state_dict().values()), torch.empty(0)).device

    # -- shared by encoder and decoder -------------------------------------------------------------------------
    @in_float32
    def denoise(self, x: Tensor, sigma: float) -> Tensor:
        """D(x, sigma) of one `(C, H, W)` image, float32, with the model's failures as a CodecError."""
        try:
            with torch.no_grad():
                return self.denoiser(x[None], x.new_full((1,), sigma))[0].to(torch.float32)
        except (RuntimeError, ValueError) as error:
            raise CodecError(f"the model cannot denoise a {'x'.join(map(str, x.shape))} image: {error}") from error

    def prior(self, step: int, x: Tensor | None, sigmas: list[float], like: Tensor) -> tuple[Tensor, float]:
        """(mean, std) of p_theta(x_{s_k} | x_{s_{k-1}}) = N(D + r (x - D), s_k^2 (1 - r)), r = s_k^2 / s_{k-1}^2;
        step 0: N(0.5, s_0^2) (SPEC §3)."""
        if step == 0:
            return torch.full_like(like, PRIOR_MEAN), sigmas[0]
        s, s_next = sigmas[step - 1], sigmas[step]
        ratio = (s_next / s) ** 2
        denoised = self.denoise(x, s)
        return denoised + ratio * (x - denoised), s_next * math.sqrt(1 - ratio)

    def header(self, shape: tuple[int, int, int], steps: int) -> Header:
        """The file header of an image of `shape` with `steps` steps sent."""
        chunking = self.chunking
        return Header(*shape, self.fingerprint, self.ladder.sigma_max, self.ladder.sigma_min, self.ladder.levels,
                      chunking.chunk_kl, chunking.pad, chunking.max_log2,
                      chunking.block_log2 if self.version == 1 else 0, PRNGS.index(self.prng), self.seed, steps,
                      self.version)

    # -- encoder ----------------------------------------------------------------------------------------------
    def check_geometry(self, channels: int, height: int, width: int) -> None:
        """A CodecError unless a C x H x W image fits the model (channels, side multiple when known) and the format."""
        if min(channels, height, width) < 1 or channels * height * width > MAX_DIMS or max(height, width) >= 2**16 \
                or channels >= 256:
            raise CodecError(f"a {channels}x{height}x{width} image is outside the .drc format (at most {MAX_DIMS} "
                             "values, sides < 65536, channels < 256)")
        if self.channels is not None and channels != self.channels:
            raise CodecError(f"the image has {channels} channels but the model takes {self.channels}")
        if self.size_multiple is not None and (height % self.size_multiple or width % self.size_multiple):
            raise CodecError(f"the image is {width}x{height} pixels but the model needs sides that are multiples of "
                             f"{self.size_multiple} (its U-Net halves the image {self.size_multiple.bit_length() - 1}"
                             " times)")

    def check_image(self, x0: Tensor) -> Tensor:
        """x0 as a float32 `(C, H, W)` image on the model's device, or a CodecError (shape, channels, size, range)."""
        if not isinstance(x0, Tensor) or x0.ndim != 3:
            raise CodecError(f"an image must be a (C, H, W) tensor, got {getattr(x0, 'shape', type(x0).__name__)}")
        self.check_geometry(*x0.shape)
        if not bool(x0.isfinite().all()):
            raise CodecError("image values must be finite")
        if self.unit_range and (float(x0.min()) < 0 or float(x0.max()) > 1):
            raise CodecError(f"image values must lie in [0, 1], got [{float(x0.min()):.4g}, {float(x0.max()):.4g}]")
        return x0.detach().to(self.device, torch.float32)

    @in_float32
    def encode(self, x0: Tensor, steps: int | None = None, bpp: float | None = None,
               progress: Callable[[int, int], None] | None = None) -> Encoding:
        """Encode x0 `(C, H, W)` in [0, 1]: the first `steps` levels of the ladder (all by default), or as many as keep
        the file within `bpp` bits per pixel (at least one step) (SPEC §3 encoder)."""
        x0 = self.check_image(x0)
        levels = self.ladder.levels
        if steps is not None and not 1 <= steps <= levels:
            raise CodecError(f"steps must be in 1..{levels} (the ladder's levels), got {steps}")
        if bpp is not None and not bpp > 0:
            raise CodecError(f"bpp must be > 0, got {bpp}")
        sigmas, pixels = self.ladder.sigmas(), x0.shape[1] * x0.shape[2]
        x, symbols, kls, chunk_kls, shifts, data, sizes = None, [], [], [], [], b"", []
        for step in range(steps or levels):
            mean, std = self.prior(step, x, sigmas, x0)
            target = x0 if step == 0 else x0 + (sigmas[step] / sigmas[step - 1]) ** 2 * (x - x0)
            step_symbols, noise, step_shifts, step_chunk_kls = self.code_step(step, (target - mean) / std)
            if bpp is not None:
                longer = self.pack(x0.shape, [*symbols, step_symbols])
                sizes.append(len(longer))
                fitting, why = steps_within(sizes, bpp, pixels, levels)
                if fitting < len(sizes):
                    if symbols:
                        break
                    log.warning("%s; the file keeps its first step", why)
                data = longer
            x = mean + std * noise.view_as(mean)
            symbols.append(step_symbols)
            kls.append(step_kl_bits((target - mean) / std))
            chunk_kls.append(step_chunk_kls)
            shifts.extend(step_shifts)
            if progress is not None:
                progress(step + 1, steps or levels)
        data = data if bpp is not None else self.pack(x0.shape, symbols)
        realised = float((x - x0).double().square().mean().sqrt())
        return Encoding(data, x, sigmas[len(symbols) - 1], kls, [s.chunks for s in symbols], shifts, realised,
                        chunk_kls)

    def code_step(self, step: int, mu: Tensor) -> tuple[StepSymbols, Tensor, list[float], list[float]]:
        """PFR for every chunk of one step's target mu = (mu_q - mu_p) / sqrt(v): the symbols, the chosen noise
        (flattened, what the decoder regenerates), each chunk's realised shift f and each chunk's KL bits."""
        flat = mu.flatten().to(self.prng)
        kl, dims, candidates = step_kl_bits(flat), flat.numel(), self.chunking.candidates
        chunks = self.chunking.count(kl, dims)
        if self.version == 1:
            chunks = max(chunks, min_chunks(self.chunking.block_size, dims))
        order = permutation(self.seed, step, dims).to(flat.device)  # chunk c: the c-th tensor_split group of it
        ordered = flat[order]
        chunk_kls = (segment_sums(ordered.double().square()[:, None], chunks)[:, 0] / (2 * LN2)).tolist()
        if self.version == 1:
            indices, noise, shifts = self.select_chunks(step, flat, order.tensor_split(chunks))
        else:
            noise = torch.empty_like(flat)
            select = step_select if self.version == 2 else pooled_select
            selection = select(ordered, chunks, self.seed, step, candidates, self.chunking.aim)
            indices, shifts = selection.indices, selection.shifts
            noise[order] = selection.sample
        if self.chunking.aim and chunks == 1:  # the one chunk's Zipf level from the KL of the target PFR was aimed at
            kl *= aim_gain(math.sqrt(2 * LN2 * kl), candidates) ** 2
        symbols = StepSymbols(chunks, self.chunking.level(kl, chunks), tuple(indices))
        return symbols, noise.to(self.device), shifts, chunk_kls

    def select_chunks(self, step: int, flat: Tensor, groups: tuple[Tensor, ...]) -> tuple[list[int], Tensor,
                                                                                          list[float]]:
        """Format 1: PFR chunk by chunk (`groups`: the step's `partition`, on flat's device), each from its own
        candidates: the indices, the noise and the shifts."""
        noise, indices, shifts = torch.empty_like(flat), [], []
        select = aimed_select if self.chunking.aim else pfr_select
        for chunk, group in enumerate(groups):
            chosen = select(flat[group], self.seed, step, chunk, self.chunking.candidates, self.chunking.block_size)
            noise[group] = chosen.sample
            indices.append(chosen.index)
            shifts.append(chosen.shift)
        return indices, noise, shifts

    def pack(self, shape: tuple[int, ...], symbols: list[StepSymbols]) -> bytes:
        """The .drc bytes of these steps' symbols for an image of `shape`, within the limits the decoder checks."""
        dims, header = math.prod(shape), self.header(tuple(shape), len(symbols))
        check_header(header)
        check_blocks(symbols, header)
        payload = encode_payload(symbols, self.chunking.candidates, self.chunking.chunk_kl, dims)
        return pack_file(header, payload)

    # -- decoder ----------------------------------------------------------------------------------------------
    def read(self, data: bytes) -> tuple[Codec, Header, list[StepSymbols]]:
        """A copy of this codec set to the file's ladder, chunking and seed, the header and the symbols of a .drc file
        made with this codec's model, or a CodecError naming the problem. Every bound of the format (geometry, ladder,
        sigma range, steps, symbols against the payload, candidate blocks) is checked here, before any candidate is
        drawn or the denoiser is called."""
        header, payload = unpack_file(bytes(data), self.fingerprint)
        self.check_geometry(header.channels, header.height, header.width)
        check_header(header)
        if PRNGS[header.prng] == "cuda" and not torch.cuda.is_available():
            raise CodecError("the file's shared randomness was drawn on CUDA; decode it on a machine with a CUDA GPU")
        codec = copy.copy(self)
        codec.ladder = Ladder(header.sigma_max, header.sigma_min, header.levels)
        block_log2 = header.block_log2 if header.version == 1 else Chunking.block_log2  # formats 2, 3: unused
        codec.chunking = Chunking(header.chunk_kl, header.pad, header.max_log2, block_log2)
        codec.seed, codec.prng, codec.version = header.seed, PRNGS[header.prng], header.version
        symbols = decode_payload(payload, header.steps, codec.chunking.candidates, header.chunk_kl, header.dims)
        check_blocks(symbols, header)
        return codec, header, symbols

    @in_float32
    def decode_noisy(self, data: bytes, steps: int | None = None) -> tuple[Tensor, float]:
        """(x_s, s): the encoder's x_s rebuilt bit for bit by replaying the file's steps (the first `steps` of them:
        a coarser x at a larger s, progressive decoding) (SPEC §3)."""
        for decoded in self.decode_steps(data, steps):
            pass
        return decoded

    def decode_steps(self, data: bytes, steps: int | None = None) -> Iterator[tuple[Tensor, float]]:
        """(x_s, s) after each of the file's first `steps` steps (all by default) in turn, each step in float32 under
        any autocast, the file read once: one replay yields every prefix's `decode_noisy`."""
        codec, header, symbols = self.read(data)
        steps = header.steps if steps is None else steps
        if not 1 <= steps <= header.steps:
            raise CodecError(f"the file holds {header.steps} steps; cannot decode {steps}")
        sigmas = codec.ladder.sigmas()
        like = torch.zeros(header.channels, header.height, header.width, device=self.device)
        x = None
        for step, step_symbols in enumerate(symbols[:steps]):
            with autocast_off():
                mean, std = codec.prior(step, x, sigmas, like)
                x = mean + std * codec.regenerate(step, step_symbols, like.numel()).view_as(mean)
            yield finite(x, "x_s"), sigmas[step]

    def regenerate(self, step: int, symbols: StepSymbols, dims: int) -> Tensor:
        """The step's noise vector rebuilt from its indices: candidate X_N of each chunk in the chunk's dims."""
        noise = torch.empty(dims, device=self.prng)
        if self.version >= 2:
            regenerate = step_candidates if self.version == 2 else pooled_candidates
            noise[permutation(self.seed, step, dims).to(noise.device)] = regenerate(
                self.seed, step, list(symbols.indices), self.chunking.candidates, dims, self.prng)
            return noise.to(self.device)
        for chunk, (group, index) in enumerate(zip(partition(self.seed, step, dims, symbols.chunks), symbols.indices)):
            noise[group.to(noise.device)] = candidate(self.seed, step, chunk, index, self.chunking.candidates,
                                                      self.chunking.block_size, group.numel(), self.prng)
        return noise.to(self.device)

    def decode(self, data: bytes, rho: float = 1.0, ode_steps: int = 32, kappa: float = 2.0, mmse: bool = False,
               steps: int | None = None) -> Tensor:
        """x_hat `(C, H, W)`: the score-scaled PF-ODE from x_s with `rho` (SPEC §3 decoder), or Tweedie's D(x_s, s)
        with `mmse`; unclipped."""
        x_s, sigma = self.decode_noisy(data, steps)
        return self.reconstruct(x_s, sigma, rho, ode_steps, kappa, mmse)

    @in_float32
    def reconstruct(self, x_s: Tensor, sigma: float, rho: float = 1.0, ode_steps: int = 32, kappa: float = 2.0,
                    mmse: bool = False) -> Tensor:
        """x_hat from a decoded x_s at noise level sigma: PF-ODE at `rho`, or D(x_s, s) with `mmse` (SPEC §3); in
        float32 under any autocast, as `encode` and `decode_noisy`."""
        with torch.no_grad():
            if mmse:
                return finite(tweedie(self.denoiser, x_s[None], sigma)[0], "MMSE image")
            return finite(score_scaled_pf_ode(self.denoiser, x_s[None], sigma, rho, ode_steps, kappa)[0],
                          f"rho={rho:g} image")
