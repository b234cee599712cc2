"""RCC compression of images (SPEC §3):
`python -m dirac.compress ckpt=<denoiser.ckpt or diffusers dir> input=<image or folder> output=<dir> [bpp=…|steps=…]`
writes one .drc file per image with the RCC codec (SPEC §3) and bpp.csv, the rate from the real file sizes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from dirac.compression import Chunking, Codec, CodecError, Ladder
from dirac.compression.files import check_outputs, read_image, scan_inputs, write_bytes
from dirac.compression.model import load_codec_model
from dirac.errors import reports_user_errors
from dirac.reporting.files import csv_text, write_text
from dirac.restore import select_device

log = logging.getLogger(__name__)
TABLE = "bpp.csv"
COLUMNS = ["file", "bytes", "bpp", "steps", "sigma", "kl_bits"]


@dataclass(frozen=True)
class CompressReport:
    """What `compress` did: a bpp.csv row per compressed image, the reason per skipped file, the CSV written."""

    rows: list[dict]
    skipped: dict[str, str]
    table: Path


def compress(ckpt: str | Path, source: str | Path, output: str | Path, bpp: float | None = None,
             steps: int | None = None, ladder: Ladder | None = None, chunking: Chunking | None = None, seed: int = 0,
             device: str = "auto", progress: bool = True) -> CompressReport:
    """Encode every image under `source` into `output/<name>.drc` (SPEC §3 encoder) at `bpp` bits per pixel or
    `steps` ladder steps (all by default), and write bpp.csv (8 x file bytes / pixels, every byte counted).
    Symbolic links in the folder are skipped; two images with one output name (`a.png`, `a.jpg`) or an output that
    would replace an input are refused before anything is written."""
    if bpp is not None and steps is not None:
        raise CodecError("give either bpp= or steps=, not both")
    source, target = Path(source).expanduser(), Path(output).expanduser()
    inputs = scan_inputs(source, target)
    plan = {file: [target / file.relative_to(inputs.base).with_suffix(".drc")] for file in inputs.files}
    check_outputs(plan, tables=[target / TABLE])
    model = load_codec_model(ckpt)
    codec = Codec(model.denoiser.to(select_device(device)), ladder, chunking, seed=seed, channels=model.channels,
                  size_multiple=model.size_multiple)
    rows, skipped = [], inputs.skipped_links()
    for file, (output,) in tqdm(plan.items(), unit="image", disable=not progress):
        name = file.relative_to(inputs.base).as_posix()
        try:
            image = read_image(file)
            encoding = codec.encode(image, steps=steps, bpp=bpp)
        except CodecError as error:
            log.warning("skipping %s: %s", name, error)
            skipped[name] = str(error)
            continue
        write_bytes(output, encoding.data)
        rows.append({"file": name, "bytes": len(encoding.data), "steps": len(encoding.kl_bits),
                     "bpp": f"{encoding.bits / (image.shape[1] * image.shape[2]):.6g}",
                     "sigma": f"{encoding.sigma:.6g}", "kl_bits": f"{sum(encoding.kl_bits):.6g}"})
    if not rows:
        raise CodecError(f"no image under {source} could be compressed: " + "; ".join(skipped.values()))
    return CompressReport(rows, skipped, write_text(target / TABLE, csv_text(COLUMNS, rows)))


@hydra.main(config_path="../conf", config_name="compress", version_base="1.3")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    """Run `compress` with the command line's settings and log the mean bpp and what was skipped."""
    report = compress(cfg.ckpt, cfg.input, cfg.output, bpp=cfg.bpp, steps=cfg.steps, ladder=Ladder(**cfg.ladder),
                      chunking=Chunking(**cfg.chunking), seed=cfg.seed, device=cfg.device, progress=cfg.progress)
    mean = sum(float(row["bpp"]) for row in report.rows) / len(report.rows)
    log.info("compressed %d image(s) into %s (mean %.4g bpp, in %s); skipped %d: %s", len(report.rows), cfg.output,
             mean, report.table, len(report.skipped), ", ".join(report.skipped) or "none")


if __name__ == "__main__":
    main()
