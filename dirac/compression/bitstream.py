"""The .drc file (SPEC §3 "the bitstream is real"): a header and one range-coded payload (`constriction`) holding,
per step, the chunk count, the chunk KL level and the PFR indices (truncated Zipf). Format 3 (written from now on)
has format 2's header, 19 bytes for a 32 px RGB image (see FORMAT_2), and draws each step's candidates from one pool
of rows shared by its chunks (`dirac.compression.pfr.pooled_select`); formats 1 (38 bytes, HEADER) and 2 are still
read."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace
from functools import lru_cache

import constriction
import numpy as np

from dirac.compression.chunking import implied_level, zipf_exponent
from dirac.compression.errors import CodecError
from dirac.compression.ladder import as_float32
from dirac.compression.pfr import pool_width, step_block_size

MAGIC = b"DRC"
FORMAT_VERSION = 3  # what the encoder writes; 1, 2 and 3 are read
# Format 1: magic, version, C, H, W, fingerprint, sigma_max, sigma_min, levels, chunk_kl, pad, max_log2, block_log2,
# prng, seed, steps sent, CRC-32 of everything before it plus the payload
HEADER = struct.Struct("<3sBBHHIffHBBBBBIHI")
# Format 2, in order: 1 byte MAGIC_2; a little-endian 40-bit word of the small fields, (name, bits, stored as value
# minus offset) from bit 0; the varints (LEB128) channels, height, width unless square, seed; sigma_max and sigma_min
# as float16; the low 16 bits of the model fingerprint; the CRC-32 of the full 32-bit fingerprint (little-endian),
# the header before the CRC and the payload. A format-2 block of candidates follows from the image (no block_log2).
MAGIC_2 = 0xD2  # "D", format 2; a format-1 file begins with "DRC\x01"
MAGIC_3 = 0xD3  # format 3: format 2's header layout, pooled candidates
MAGICS = {MAGIC_2: 2, MAGIC_3: 3}
FORMAT_2 = (("prng", 1, 0), ("square", 1, 0), ("chunk_kl", 5, 0), ("pad", 4, 0), ("max_log2", 5, 0),
            ("levels", 10, 1), ("steps", 10, 1), ("reserved", 4, 0))
WORD_BYTES = 5
FLOAT16 = struct.Struct("<ee")
TAG = struct.Struct("<H")
CRC = struct.Struct("<I")
PRNGS = ("cpu", "cuda")
PIECE_BITS = 16  # raw bit fields are coded in uniform pieces of at most 16 bits
# The limits every .drc file obeys (the encoder writes none outside them, the decoder refuses the others before any
# allocation or denoiser call):
MAX_LEVELS = 1024  # ladder levels, so at most 1024 steps and denoiser calls per file (the configs use 8 to 32)
SIGMA_RANGE = (1e-4, 1e3)  # sigma_min and sigma_max in [0, 1] image units: x_s = x0 + s n stays finite in float32
MAX_BLOCK_FLOATS = 2**26  # float32 values of one block of candidates of one chunk, block size x chunk dims (256 MiB)
# Candidate values the decoder draws for one file (about 4 min on one CPU thread): format 1 one block per chunk,
# block size x dims per step; format 2 the blocks of candidates holding the indices, at most K x dims per step;
# format 3 the blocks of pool rows holding the chosen rows, at most K x ceil(dims / chunks) per step.
MAX_FILE_FLOATS = 2**34
VARINT_LIMITS = {"channels": 255, "height": 2**16 - 1, "width": 2**16 - 1, "seed": 2**32 - 1}


@dataclass(frozen=True)
class Header:
    """Everything the decoder needs besides the payload: geometry, model fingerprint, ladder, chunking, seed, steps,
    and the format (`block_log2` is format 1's; formats 2 and 3 derive their blocks, and read it as 0)."""

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
    version: int = FORMAT_VERSION

    @property
    def dims(self) -> int:
        """C * H * W, the number of coded dimensions."""
        return self.channels * self.height * self.width

    @property
    def candidates(self) -> int:
        """K = 2^min(chunk_kl + pad, max_log2), the candidates per chunk."""
        return 2 ** min(self.chunk_kl + self.pad, self.max_log2)


@dataclass(frozen=True)
class StepSymbols:
    """One step's coded symbols: n_k chunks, the per-chunk KL level, and the n_k PFR indices."""

    chunks: int
    level: int
    indices: tuple[int, ...]


def pack_file(header: Header, payload: bytes) -> bytes:
    """The header in its format (with the CRC-32 of header and payload; from format 2 on it also covers the full
    fingerprint) followed by the payload, every byte counted in the rate; a CodecError if a field does not fit the
    format."""
    if header.version == 1:
        try:
            head = HEADER.pack(MAGIC, 1, *astuple(header)[:-1], 0)[:-4]
        except struct.error as error:
            raise CodecError(f"the header does not fit .drc format 1: {error}") from error
        return head + CRC.pack(zlib.crc32(payload, zlib.crc32(head))) + payload
    if header.version not in MAGICS.values():
        raise CodecError(f".drc format version {header.version} cannot be written (1, 2 or 3)")
    head = _pack_header_2(header)
    return head + CRC.pack(_checksum_2(header.fingerprint, head, payload)) + payload


def _pack_header_2(header: Header) -> bytes:
    """The format-2 or -3 header without its CRC (layout at FORMAT_2; the first byte names the format)."""
    values = {**vars(header), "square": int(header.width == header.height), "reserved": 0}
    word, shift = 0, 0
    for name, bits, offset in FORMAT_2:
        stored = values[name] - offset
        if not 0 <= stored < 2**bits:
            raise CodecError(f"the header field {name}={values[name]} does not fit .drc format 2 "
                             f"({offset}..{offset + 2**bits - 1})")
        word |= stored << shift
        shift += bits
    sizes = [header.channels, header.height] + ([] if values["square"] else [header.width]) + [header.seed]
    names = ["channels", "height"] + ([] if values["square"] else ["width"]) + ["seed"]
    for name, value in zip(names, sizes):
        if not 0 <= value <= VARINT_LIMITS[name]:
            raise CodecError(f"the header field {name}={value} does not fit .drc format 2 (0..{VARINT_LIMITS[name]})")
    try:
        floats = FLOAT16.pack(header.sigma_max, header.sigma_min)
    except (OverflowError, struct.error) as error:
        raise CodecError(f"sigma_max={header.sigma_max}, sigma_min={header.sigma_min} do not fit float16") from error
    magic = MAGIC_2 + header.version - 2
    return (bytes([magic]) + word.to_bytes(WORD_BYTES, "little") + b"".join(map(varint, sizes)) + floats
            + TAG.pack(header.fingerprint & 0xFFFF))


def _checksum_2(fingerprint: int, head: bytes, payload: bytes) -> int:
    """CRC-32 of the model fingerprint (4 bytes, little-endian), the header before the CRC and the payload."""
    return zlib.crc32(payload, zlib.crc32(head, zlib.crc32(CRC.pack(fingerprint & 0xFFFFFFFF))))


def varint(value: int) -> bytes:
    """LEB128: 7 bits per byte, low first, the high bit set on every byte but the last."""
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >= 0x80 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def read_varint(data: bytes, offset: int, name: str) -> tuple[int, int]:
    """(value, next offset) of the LEB128 varint at `offset`, or a CodecError when it is truncated or above the
    field's limit (VARINT_LIMITS)."""
    value, shift, limit = 0, 0, VARINT_LIMITS[name]
    while True:
        if offset >= len(data):
            raise CodecError(f"truncated .drc file: the header ends inside its {name} field")
        byte = data[offset]
        value |= (byte & 0x7F) << shift
        offset, shift = offset + 1, shift + 7
        if value > limit:
            raise CodecError(f"corrupt .drc header: {name} is above {limit}")
        if not byte & 0x80:
            return value, offset


def read_header(data: bytes) -> tuple[Header, int]:
    """(header, its size in bytes with the CRC) of a .drc file of any format, parsed but not verified (format 2's
    fingerprint field is then only the model's low 16 bits): for inspection; `unpack_file` verifies."""
    data = bytes(data)
    if data[:4] == MAGIC + b"\x01":
        if len(data) < HEADER.size:
            raise CodecError(f"truncated .drc file: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
        return Header(*HEADER.unpack_from(data)[2:-1], version=1), HEADER.size
    if data == MAGIC:
        raise CodecError("truncated .drc file: 3 bytes, shorter than any header")
    if data[:3] == MAGIC:
        raise CodecError(f".drc format version {data[3]} is not supported (this codec reads format 1, which begins "
                         "DRC\\x01, and formats 2 and 3)")
    if not data or data[0] not in MAGICS:
        raise CodecError("not a .drc file (no DRC header)")
    if len(data) < 1 + WORD_BYTES:
        raise CodecError(f"truncated .drc file: {len(data)} bytes, shorter than its header")
    word, fields, shift = int.from_bytes(data[1 : 1 + WORD_BYTES], "little"), {}, 0
    for name, bits, offset in FORMAT_2:
        fields[name] = (word >> shift & (2**bits - 1)) + offset
        shift += bits
    if fields.pop("reserved"):
        raise CodecError("corrupt .drc header: reserved bits are set")
    square, offset = fields.pop("square"), 1 + WORD_BYTES
    for name in ("channels", "height") + (() if square else ("width",)) + ("seed",):
        fields[name], offset = read_varint(data, offset, name)
    fields["width"] = fields["height"] if square else fields["width"]
    end = offset + FLOAT16.size + TAG.size + CRC.size
    if len(data) < end:
        raise CodecError(f"truncated .drc file: {len(data)} bytes, shorter than its {end}-byte header")
    fields["sigma_max"], fields["sigma_min"] = FLOAT16.unpack_from(data, offset)
    (fields["fingerprint"],) = TAG.unpack_from(data, offset + FLOAT16.size)
    return Header(**fields, block_log2=0, version=MAGICS[data[0]]), end


def header_bytes(data: bytes) -> int:
    """The size in bytes of a .drc file's header (with its CRC): 8 x (file - header) bytes is the payload-only rate."""
    return read_header(data)[1]


def check_fingerprint(stored: int, expected: int, bits: int) -> None:
    """A CodecError unless the file's fingerprint (its `bits` low bits) is the decoding model's."""
    if stored != expected:
        raise CodecError(f"the file was made with another model (fingerprint {stored:0{bits // 4}x}, this model's is "
                         f"{expected:0{bits // 4}x})")


def unpack_file(data: bytes, fingerprint: int) -> tuple[Header, bytes]:
    """(header, payload) of a .drc file made with the model of this `fingerprint` (`model_fingerprint`), or a
    CodecError naming what is wrong (not a .drc, other version, truncated, another model's, corrupt). Format 2 keeps
    16 bits of the fingerprint and folds all 32 into its CRC, so another model's file is refused either way."""
    data = bytes(data)
    header, size = read_header(data)
    payload = data[size:]
    if len(payload) % 4:
        raise CodecError(f"truncated .drc file: the payload is {len(payload)} bytes, not whole 32-bit words")
    (crc,) = CRC.unpack_from(data, size - CRC.size)
    if header.version == 1:
        if zlib.crc32(payload, zlib.crc32(data[: size - CRC.size])) != crc:
            raise CodecError("corrupt .drc file: checksum mismatch (truncated or altered bytes)")
        check_fingerprint(header.fingerprint, fingerprint, 32)
    else:
        check_fingerprint(header.fingerprint, fingerprint & 0xFFFF, 16)
        if _checksum_2(fingerprint, data[: size - CRC.size], payload) != crc:
            raise CodecError("corrupt .drc file: checksum mismatch (truncated or altered bytes, or made with another "
                             "model)")
    return replace(header, fingerprint=fingerprint), payload


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


def step_floats(header: Header, chunks: int) -> int:
    """The candidate values the decoder draws for one step of `chunks` chunks: format 1 one block per chunk,
    block size x dims; format 2 at most one block of R candidates per chunk, min(K, chunks x R) x dims; format 3 at
    most one block of R pool rows per chunk, min(K, chunks x R) x ceil(dims / chunks)."""
    if header.version == 1:
        return min(2**header.block_log2, header.candidates) * header.dims
    if header.version == 2:
        return min(header.candidates, chunks * step_block_size(header.candidates, header.dims)) * header.dims
    width = pool_width(header.dims, chunks)
    return min(header.candidates, chunks * step_block_size(header.candidates, width)) * width


def check_blocks(steps: Sequence[StepSymbols], header: Header) -> None:
    """A CodecError unless every step's candidate blocks stay within MAX_BLOCK_FLOATS (what a candidate allocates;
    the blocks of formats 2 and 3 are within it by construction) and the file's candidates within MAX_FILE_FLOATS
    (what decoding it costs)."""
    total = sum(step_floats(header, symbols.chunks) for symbols in steps)
    if total > MAX_FILE_FLOATS:
        raise CodecError(f".drc file of {len(steps)} steps of {header.dims} dimensions and {header.candidates} "
                         f"candidates per chunk: decoding would draw {total} candidate values, above the limit "
                         f"{MAX_FILE_FLOATS} (2^34)")
    if header.version >= 2:
        return
    block_size = min(2**header.block_log2, header.candidates)
    for step, symbols in enumerate(steps):
        floats = block_floats(block_size, header.dims, symbols.chunks)
        if floats > MAX_BLOCK_FLOATS:
            raise CodecError(f"corrupt .drc payload at step {step}: {symbols.chunks} chunk(s) of {header.dims} "
                             f"dimensions in blocks of {block_size} candidates need {floats} floats per block, above "
                             f"the limit {MAX_BLOCK_FLOATS} (2^26)")


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
    try:
        return _decode_symbols(constriction.stream.queue.RangeDecoder(words), steps, candidates, chunk_kl, dims,
                               budget, len(payload))
    except AssertionError as error:  # constriction's word for data no encoder of this model could have written
        raise CodecError(f"corrupt .drc payload: {error}") from error


def _decode_symbols(decoder, steps: int, candidates: int, chunk_kl: int, dims: int, budget: int,
                    size: int) -> list[StepSymbols]:
    """`decode_payload`'s loop over the steps, `budget` the bits a payload of `size` bytes can hold."""
    previous, lengths, decoded, spent = 1, _length_model(dims), [], 0.0
    for step in range(steps):
        length = int(decoder.decode(lengths))
        chunks = previous + unzigzag(2**length + _decode_bits(decoder, length) - 1)
        if not 1 <= chunks <= dims:
            raise CodecError(f"corrupt .drc payload at step {step}: {chunks} chunks for {dims} dimensions")
        level = int(decoder.decode(constriction.stream.model.Uniform(chunk_kl + 1))) if chunks == 1 else \
            implied_level(chunks, chunk_kl)
        spent += 1 + chunks * -np.log2(zipf_probabilities(candidates, level)[0])
        if spent > budget:
            raise CodecError(f"corrupt .drc payload at step {step}: more symbols than {size} bytes can hold")
        indices = decoder.decode(zipf_model(candidates, level), chunks)
        decoded.append(StepSymbols(chunks, level, tuple(int(i) for i in indices)))
        previous = chunks
    return decoded
