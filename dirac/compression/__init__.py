"""RCC compression (SPEC §3): reverse channel coding by PFR with shared randomness, chunks of bounded KL, the .drc
bitstream (header + range-coded payload) and the progressive codec with the score-scaled PF-ODE decoder."""

from dirac.compression.bitstream import (FORMAT_VERSION, Header, StepSymbols, header_bytes, pack_file, read_header,
                                         unpack_file)
from dirac.compression.chunking import Chunking, partition, zipf_exponent
from dirac.compression.codec import Codec, Encoding, model_fingerprint, step_kl_bits, steps_within
from dirac.compression.errors import CodecError
from dirac.compression.ladder import Ladder
from dirac.compression.pfr import Selection, candidate, candidate_block, pfr_select, stable_seed

__all__ = [
    "FORMAT_VERSION",
    "Chunking",
    "Codec",
    "CodecError",
    "Encoding",
    "Header",
    "Ladder",
    "Selection",
    "StepSymbols",
    "candidate",
    "candidate_block",
    "header_bytes",
    "model_fingerprint",
    "pack_file",
    "partition",
    "read_header",
    "pfr_select",
    "stable_seed",
    "step_kl_bits",
    "steps_within",
    "unpack_file",
    "zipf_exponent",
]
