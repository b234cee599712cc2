"""`python -m dirac.decompress ckpt=<model> input=<.drc file or folder> output=<dir> rho=[1,1.5,2] [mmse=true]`: one PNG
per file and rho by the score-scaled PF-ODE from the decoded x_s (SPEC §3 decoder), plus Tweedie's D(x_s, s)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig
from tqdm import tqdm

from dirac.compression import Codec, CodecError
from dirac.compression.files import list_inputs
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
    (PF-ODE with `ode_steps` Heun steps) and `<name>_mmse.png` with `mmse`; `steps` decodes a prefix (coarser)."""
    rhos = [float(r) for r in rho]
    if not rhos and not mmse:
        raise CodecError("nothing to decode: give rho=[...] and/or mmse=true")
    if any(r < 0 for r in rhos) or ode_steps < 1:
        raise CodecError(f"rho must be >= 0 and ode_steps >= 1, got rho={rhos}, ode_steps={ode_steps}")
    source, target = Path(source).expanduser(), Path(output).expanduser()
    base, files = list_inputs(source, target, suffixes=None if source.is_file() else (".drc",))
    model = load_codec_model(ckpt)
    codec = Codec(model.denoiser.to(select_device(device)), channels=model.channels, image_size=model.image_size)
    written, skipped = {}, {}
    for file in tqdm(files, unit="file", disable=not progress):
        name = file.relative_to(base).as_posix()
        try:
            x_s, sigma = codec.decode_noisy(file.read_bytes(), steps=steps)
        except (CodecError, OSError) as error:
            log.warning("skipping %s: %s", name, error)
            skipped[name] = str(error)
            continue
        stem = target / Path(name).with_suffix("")
        outputs = {rho_label(r): codec.reconstruct(x_s, sigma, r, ode_steps, kappa) for r in rhos}
        if mmse:
            outputs["mmse"] = codec.reconstruct(x_s, sigma, mmse=True)
        written[name] = [save_png(image.cpu(), stem.with_name(f"{stem.name}_{tag}.png")) for tag, image in outputs.items()]
    if not written:
        raise CodecError(f"no .drc file under {source} could be decoded: " + "; ".join(skipped.values()))
    return DecompressReport(written, skipped)


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
