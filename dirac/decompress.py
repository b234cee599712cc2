"""`python -m dirac.decompress ckpt=<model> input=<.drc file or folder> output=<dir> rho=[1,1.5,2] [mmse=true]`: one PNG
per file and rho by the score-scaled PF-ODE from the decoded x_s (SPEC §3 decoder), plus Tweedie's D(x_s, s)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig
from torch import Tensor
from tqdm import tqdm

from dirac.compression import Codec, CodecError
from dirac.compression.files import check_outputs, scan_inputs
from dirac.compression.model import load_codec_model
from dirac.errors import reports_user_errors
from dirac.reporting import save_png
from dirac.restore import select_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecompressReport:
    """What `decompress` did: the PNGs written per input file, the reason per skipped file."""

    written: dict[str, list[Path]]
    skipped: dict[str, str]


def rho_label(rho: float) -> str:
    """The file-name tag of a rho: rho1, rho1.5."""
    return f"rho{float(rho):g}"


def decompress(ckpt: str | Path, source: str | Path, output: str | Path, rho: Sequence[float] = (1.0,),
               mmse: bool = False, ode_steps: int = 32, kappa: float = 2.0, steps: int | None = None,
               device: str = "auto", progress: bool = True) -> DecompressReport:
    """Decode every .drc file under `source` with the model it was made with and write `<name>_rho<r>.png` per rho
    (PF-ODE with `ode_steps` Heun steps) and `<name>_mmse.png` with `mmse`; `steps` decodes a prefix (coarser).
    A file that fails to decode, for any reason, is skipped with a message naming it; the others are still decoded.
    Symbolic links in the folder are skipped, and two files whose PNGs would share a name are refused up front."""
    rhos = list({rho_label(r): float(r) for r in rho}.values())
    if not rhos and not mmse:
        raise CodecError("nothing to decode: give rho=[...] and/or mmse=true")
    if any(r < 0 for r in rhos) or ode_steps < 1:
        raise CodecError(f"rho must be >= 0 and ode_steps >= 1, got rho={rhos}, ode_steps={ode_steps}")
    source, target = Path(source).expanduser(), Path(output).expanduser()
    inputs = scan_inputs(source, target, suffixes=None if source.is_file() else (".drc",))
    tags = [rho_label(r) for r in rhos] + (["mmse"] if mmse else [])
    plan = {file: output_paths(target / file.relative_to(inputs.base), tags) for file in inputs.files}
    check_outputs(plan)
    model = load_codec_model(ckpt)
    codec = Codec(model.denoiser.to(select_device(device)), channels=model.channels, size_multiple=model.size_multiple)
    written, skipped = {}, inputs.skipped_links()
    for file, outputs in tqdm(plan.items(), unit="file", disable=not progress):
        name = file.relative_to(inputs.base).as_posix()
        try:
            images = decode_file(codec, file, name, rhos, mmse, ode_steps, kappa, steps)
        except CodecError as error:
            log.warning("skipping %s", error)
            skipped[name] = str(error)
            continue
        written[name] = [save_png(image.cpu(), path) for image, path in zip(images, outputs)]
    if not written:
        raise CodecError(f"no .drc file under {source} could be decoded: " + "; ".join(skipped.values()))
    return DecompressReport(written, skipped)


def output_paths(file: Path, tags: Sequence[str]) -> list[Path]:
    """The PNGs of one decoded file: `<stem>_<tag>.png` beside where the file's relative name puts it."""
    stem = file.with_suffix("")
    return [stem.with_name(f"{stem.name}_{tag}.png") for tag in tags]


def decode_file(codec: Codec, file: Path, name: str, rhos: Sequence[float], mmse: bool, ode_steps: int, kappa: float,
                steps: int | None) -> list[Tensor]:
    """The decoded images of one .drc file (SPEC §3 decoder): one per rho, then Tweedie's with `mmse`. Any failure,
    a refused file, an unreadable one or the decoder running out of memory on it, is a CodecError naming the file."""
    try:
        x_s, sigma = codec.decode_noisy(file.read_bytes(), steps=steps)
        images = [codec.reconstruct(x_s, sigma, r, ode_steps, kappa) for r in rhos]
        return images + ([codec.reconstruct(x_s, sigma, mmse=True)] if mmse else [])
    except Exception as error:  # an untrusted file: whatever it makes the decoder raise ends with this file alone
        if isinstance(error, CodecError):
            raise CodecError(f"{name}: {error}") from error
        raise CodecError(f"{name}: {type(error).__name__} while decoding" + (f": {error}" if str(error) else "")) \
            from error


@hydra.main(config_path="../conf", config_name="decompress", version_base="1.3")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    """Run `decompress` with the command line's settings (rho a number or a list) and log what was written."""
    rho = list(cfg.rho) if isinstance(cfg.rho, ListConfig) else ([] if cfg.rho is None else [cfg.rho])
    report = decompress(cfg.ckpt, cfg.input, cfg.output, rho=rho, mmse=cfg.mmse, ode_steps=cfg.ode_steps,
                        kappa=cfg.kappa, steps=cfg.steps, device=cfg.device, progress=cfg.progress)
    log.info("decoded %d file(s) into %s (%d PNGs); skipped %d: %s", len(report.written), cfg.output,
             sum(map(len, report.written.values())), len(report.skipped), ", ".join(report.skipped) or "none")


if __name__ == "__main__":
    main()
