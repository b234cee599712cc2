"""The .drc file (SPEC §3 "the bitstream is real"): a little-endian header and one range-coded payload
(`constriction`) holding, per step, the chunk count, the chunk KL level and the PFR indices (truncated Zipf)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from functools import lru_cache

import constriction
import numpy as np

from dirac.compression.chunking import implied_level, zipf_exponent
from dirac.compression.errors import CodecError
from dirac.compression.ladder import as_float32

MAGIC = b"DRC"
FORMAT_VERSION = 1
# magic, version, C, H, W, fingerprint, sigma_max, sigma_min, levels, chunk_kl, pad, max_log2, block_log2, prng,
# seed, steps sent, CRC-32 of everything before it plus the payload
HEADER = struct.Struct("<3sBBHHIffHBBBBBIHI")
PRNGS = ("cpu", "cuda")
PIECE_BITS = 16  # raw bit fields are coded in uniform pieces of at most 16 bits
# The limits every .drc file obeys (the encoder writes none outside them, the decoder refuses the others before any
# allocation or denoiser call):
MAX_LEVELS = 1024  # ladder levels, so at most 1024 steps and denoiser calls per file (the configs use 8 to 32)
SIGMA_RANGE = (1e-4, 1e3)  # sigma_min and sigma_max in [0, 1] image units: x_s = x0 + s n stays finite in float32
MAX_BLOCK_FLOATS = 2**26  # float32 values of one block of candidates of one chunk, block size x chunk dims (256 MiB)
# Candidate values the decoder draws for one file, block size x dims per step (about 4 min on one CPU thread; the
# default 32-level ladder at 1024 candidates needs 2^32.6 for a 256 px RGB image and 2^26.6 at 32 px).
MAX_FILE_FLOATS = 2**34


@dataclass(frozen=True)
class Header:
    """Everything the decoder needs besides the payload: geometry, model fingerprint, ladder, chunking, seed, steps."""

    channels: int
    height: int
    width: int
    fingerprint: int
    sigma_max: float
    sigma_min: float
    levels: int
    chunk_kl: int
    pad: int
    max_log2: int
    block_log2: int
    prng: int
    seed: int
    steps: int

    @property
    def dims(self) -> int:
        """C * H * W, the number of coded dimensions."""
        return self.channels * self.height * self.width


@dataclass(frozen=True)
class StepSymbols:
    """One step's coded symbols: n_k chunks, the per-chunk KL level, and the n_k PFR indices."""

    chunks: int
    level: int
    indices: tuple[int, ...]


def pack_file(header: Header, payload: bytes) -> bytes:
    """Header (with the CRC-32 of header and payload) followed by the payload, every byte counted in the rate."""
    head = HEADER.pack(MAGIC, FORMAT_VERSION, *astuple(header), 0)[: -4]
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def unpack_file(data: bytes) -> tuple[Header, bytes]:
    """(header, payload) of a .drc file, or a CodecError naming what is wrong (not a .drc, other version, truncated,
    corrupt)."""
    if len(data) < HEADER.size or data[:3] != MAGIC:
        raise CodecError("not a .drc file (no DRC header)" if data[:3] != MAGIC else
                         f"truncated .drc file: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, *fields, crc = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CodecError(f".drc format version {version} is not supported (this codec reads version {FORMAT_VERSION})")
    payload = data[HEADER.size :]
    if len(payload) % 4:
        raise CodecError(f"truncated .drc file: the payload is {len(payload)} bytes, not whole 32-bit words")
    if zlib.crc32(payload, zlib.crc32(data[: HEADER.size - 4])) != crc:
        raise CodecError("corrupt .drc file: checksum mismatch (truncated or altered bytes)")
    return Header(*fields), payload


def check_ladder(sigma_max: float, sigma_min: float, levels: int) -> None:
    """A CodecError unless the ladder is within the format's limits: 2..MAX_LEVELS levels and
    SIGMA_RANGE[0] <= sigma_min < sigma_max <= SIGMA_RANGE[1] (finite; the limits as the float32 a header holds)."""
    low, high = map(as_float32, SIGMA_RANGE)
    if not (2 <= levels <= MAX_LEVELS and low <= sigma_min < sigma_max <= high):
        raise CodecError(f"noise ladder sigma_max={sigma_max:.6g}, sigma_min={sigma_min:.6g}, levels={levels} is "
                         f"outside the .drc limits: 2..{MAX_LEVELS} levels, "
                         f"{low:g} <= sigma_min < sigma_max <= {high:g}")


def check_header(header: Header) -> None:
    """A CodecError unless the header's PRNG is known, 1 <= steps <= levels and its ladder is within `check_ladder`."""
    if header.prng >= len(PRNGS) or not 1 <= header.steps <= header.levels:
        raise CodecError(f"corrupt .drc header: prng {header.prng}, {header.steps} steps of {header.levels}")
    check_ladder(header.sigma_max, header.sigma_min, header.levels)


def block_floats(block_size: int, dims: int, chunks: int) -> int:
    """The float32 values of one block of candidates of a step's largest chunk: block size x ceil(dims / chunks)."""
    return block_size * -(-dims // chunks)


def min_chunks(block_size: int, dims: int) -> int:
    """The fewest chunks whose blocks of `block_size` candidates stay within MAX_BLOCK_FLOATS (the encoder's floor)."""
    return -(-dims // (MAX_BLOCK_FLOATS // block_size))


def check_blocks(steps: Sequence[StepSymbols], block_size: int, dims: int) -> None:
    """A CodecError unless every step's candidate blocks stay within MAX_BLOCK_FLOATS (what a candidate allocates)
    and the file's candidates within MAX_FILE_FLOATS (what decoding it costs)."""
    if len(steps) * block_size * dims > MAX_FILE_FLOATS:
        raise CodecError(f".drc file of {len(steps)} steps of {dims} dimensions in blocks of {block_size} candidates: "
                         f"decoding would draw {len(steps) * block_size * dims} candidate values, above the limit "
                         f"{MAX_FILE_FLOATS} (2^34)")
    for step, symbols in enumerate(steps):
        floats = block_floats(block_size, dims, symbols.chunks)
        if floats > MAX_BLOCK_FLOATS:
            raise CodecError(f"corrupt .drc payload at step {step}: {symbols.chunks} chunk(s) of {dims} dimensions in "
                             f"blocks of {block_size} candidates need {floats} floats per block, above the limit "
                             f"{MAX_BLOCK_FLOATS} (2^26)")


@lru_cache(maxsize=64)
def zipf_probabilities(candidates: int, level: int) -> np.ndarray:
    """p(r) ∝ r^-a over ranks r = N + 1 in 1..K, a = zipf_exponent(level) (truncated Zipf index model; SPEC §3);
    cached, read-only."""
    weights = np.arange(1, candidates + 1, dtype=np.float64) ** -zipf_exponent(level)
    probabilities = weights / weights.sum()
    probabilities.setflags(write=False)
    return probabilities


@lru_cache(maxsize=64)
def zipf_model(candidates: int, level: int) -> constriction.stream.model.Categorical:
    """The constriction Categorical of `zipf_probabilities`, cached per (K, level)."""
    return constriction.stream.model.Categorical(zipf_probabilities(candidates, level), perfect=False)


def _pieces(bits: int) -> list[int]:
    """The widths of the uniform pieces a `bits`-bit field is coded in."""
    return [min(PIECE_BITS, bits - start) for start in range(0, bits, PIECE_BITS)]


def _encode_bits(encoder, value: int, bits: int) -> None:
    """Code the low `bits` bits of value uniformly, in pieces."""
    for width in _pieces(bits):
        encoder.encode(value & (2**width - 1), constriction.stream.model.Uniform(2**width))
        value >>= width


def _decode_bits(decoder, bits: int) -> int:
    """Inverse of `_encode_bits`."""
    value, shift = 0, 0
    for width in _pieces(bits):
        value |= int(decoder.decode(constriction.stream.model.Uniform(2**width))) << shift
        shift += width
    return value


def _length_model(dims: int) -> constriction.stream.model.Categorical:
    """p(L) ∝ 2^-L over the bit lengths L = 0..bitlen(2 dims) of a zigzagged chunk-count change (Elias gamma)."""
    lengths = np.arange((2 * dims + 1).bit_length(), dtype=np.float64)
    return constriction.stream.model.Categorical(2.0**-lengths / (2.0**-lengths).sum(), perfect=False)


def zigzag(delta: int) -> int:
    """0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ..."""
    return 2 * delta if delta >= 0 else -2 * delta - 1


def unzigzag(value: int) -> int:
    """Inverse of `zigzag`."""
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def encode_payload(steps: Sequence[StepSymbols], candidates: int, chunk_kl: int, dims: int) -> bytes:
    """One range-coded stream, in step order (so a prefix of the steps is a prefix of the symbols): per step the change
    of n_k (Elias gamma of its zigzag), the level when n_k = 1 (uniform over 0..chunk_kl; else `implied_level`), and
    the n_k indices (truncated Zipf)."""
    encoder, previous, lengths = constriction.stream.queue.RangeEncoder(), 1, _length_model(dims)
    for step in steps:
        value = zigzag(step.chunks - previous) + 1
        length = value.bit_length() - 1
        encoder.encode(length, lengths)
        _encode_bits(encoder, value - 2**length, length)
        if step.chunks == 1:
            encoder.encode(step.level, constriction.stream.model.Uniform(chunk_kl + 1))
        encoder.encode(np.asarray(step.indices, dtype=np.int32), zipf_model(candidates, step.level))
        previous = step.chunks
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_payload(payload: bytes, steps: int, candidates: int, chunk_kl: int, dims: int) -> list[StepSymbols]:
    """The symbols of `steps` steps from a payload written by `encode_payload`. Every symbol costs at least its
    most likely value's bits, so a file claiming more symbols than its payload can hold is refused up front (a forged
    file cannot make the decoder run long); implausible values raise a CodecError. Pure computation: no allocation
    beyond the symbols, no model call (`check_blocks` then bounds what regenerating them allocates)."""
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    budget = 8 * len(payload) + 64  # what the payload can hold, in bits, plus the coder's final-word slack
    if words.size == 0 or steps > budget:
        raise CodecError(f"corrupt .drc file: a {len(payload)}-byte payload cannot hold {steps} steps")
    decoder, previous, lengths, decoded, spent = constriction.stream.queue.RangeDecoder(words), 1, _length_model(dims), [], 0.0
    for step in range(steps):
        length = int(decoder.decode(lengths))
        chunks = previous + unzigzag(2**length + _decode_bits(decoder, length) - 1)
        if not 1 <= chunks <= dims:
            raise CodecError(f"corrupt .drc payload at step {step}: {chunks} chunks for {dims} dimensions")
        level = int(decoder.decode(constriction.stream.model.Uniform(chunk_kl + 1))) if chunks == 1 else \
            implied_level(chunks, chunk_kl)
        spent += 1 + chunks * -np.log2(zipf_probabilities(candidates, level)[0])
        if spent > budget:
            raise CodecError(f"corrupt .drc payload at step {step}: more symbols than {len(payload)} bytes can hold")
        indices = decoder.decode(zipf_model(candidates, level), chunks)
        decoded.append(StepSymbols(chunks, level, tuple(int(i) for i in indices)))
        previous = chunks
    return decoded
