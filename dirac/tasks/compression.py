"""The compression task (SPEC §3): each test image is encoded by RCC into a real .drc file per rate (ladder steps, or
a target bpp by `Codec.encode`'s rule), the bpp read from the file size (and without the header), decoded at several
rho by the score-scaled PF-ODE (and Tweedie's MMSE) in float32 whatever the trainer's precision, and judged by
PSNR / SSIM / patch SWD (LPIPS, FID with their weights) per (rate, rho), beside JPEG (Pillow, a quality sweep and the
quality matched to each RCC file's bpp) on the same images: results.md/.csv, rd_curve.*, dp_curve.*, wandb."""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from dirac.compression import Chunking, Codec, Ladder, unpack_file
from dirac.compression.bitstream import HEADER
from dirac.compression.files import read_image, scan_inputs, write_bytes
from dirac.precision import autocast_off
from dirac.methods.base import Method
from dirac.metrics import MetricSuite, PerImageMeans, clip01
from dirac.reporting import save_grid, write_results
from dirac.reporting.rate import log_rate_curves, write_rate_curves
from dirac.samplers.pf_ode import score_scaled_pf_ode, tweedie
from dirac.tasks.base import Task

log = logging.getLogger(__name__)
EXTRAS = ("bpp", "payload_bpp", "steps", "sigma", "realised_sigma", "quality", "matched", "encode_seconds",
          "decode_seconds")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


def steps_rate(steps: int) -> str:
    """The rate tag of a fixed number of ladder steps, e.g. k08."""
    return f"k{steps:02d}"


def bpp_rate(bpp: float) -> str:
    """The rate tag of a target bits per pixel (Codec.encode's rule), in hundredths, e.g. b0050 for 0.5 bpp."""
    return f"b{round(bpp * 100):04d}"


def rcc_row(rate: str, rho: float | None) -> str:
    """The results row of RCC at a rate tag decoded at `rho` (None: Tweedie's MMSE), e.g. rcc_k08_rho150."""
    return f"rcc_{rate}_" + ("mmse" if rho is None else f"rho{round(rho * 100):03d}")


def jpeg_row(quality: int) -> str:
    """The results row of JPEG at one Pillow quality, e.g. jpeg_q050."""
    return f"jpeg_q{quality:03d}"


def matched_row(rate: str) -> str:
    """The results row of JPEG at the highest quality whose file is no larger than each image's RCC file at a rate."""
    return f"jpeg_at_{rate}"


def rate_label(rate: str) -> str:
    """A rate tag in words: k08 -> k=8, b0050 -> 0.5 bpp."""
    return f"k={int(rate[1:])}" if rate[0] == "k" else f"{int(rate[1:]) / 100:g} bpp"


def jpeg_roundtrip(image: Tensor, quality: int) -> tuple[Tensor, int]:
    """(decoded image, file bytes) of a `(C, H, W)` image in [0, 1] (1 or 3 channels) saved as an 8-bit JPEG by Pillow
    at `quality` (optimised Huffman tables; every byte of the file counted)."""
    if image.shape[0] not in (1, 3):
        raise ValueError(f"JPEG takes 1- or 3-channel images, got {image.shape[0]} channels")
    array = (clip01(image.detach().float().cpu()) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if image.shape[0] == 1 else array).save(buffer, format="JPEG", quality=int(quality),
                                                                          optimize=True)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L" if image.shape[0] == 1 else "RGB"))
    tensor = torch.from_numpy(decoded.copy()).float() / 255
    tensor = tensor[None] if image.shape[0] == 1 else tensor.permute(2, 0, 1)
    return tensor.to(image.device), buffer.tell()


class FolderImages(Dataset):
    """Every image under a folder at its own size and channels (never resized), as `{"image", "name"}` items."""

    def __init__(self, folder: str | Path) -> None:
        inputs = scan_inputs(Path(folder), Path(folder) / ".dirac-none", IMAGE_SUFFIXES)
        self.root, self.files = inputs.base, inputs.files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return {"image": read_image(self.files[index]), "name": self.files[index].relative_to(self.root).as_posix()}


class CompressionTask(Task):
    """Judges a method's denoiser D(x, sigma) as an RCC codec (SPEC §3; method=denoiser).

    For each test image: one encoding through the first max(steps) ladder levels, and for each rate k in `steps` the
    real file of its first k steps (`files/<name>_k<k>.drc`; a prefix of the progressive stream is exactly the k-step
    encoding) whose size gives the bpp; for each target of `bpps` the file `Codec.encode(bpp=...)` makes (as many steps
    as keep it within the target; `files/<name>_b<100 bpp>.drc`). Each file is read back and decoded to x_s, then x_hat
    by the score-scaled PF-ODE at every rho of `rhos` (and D(x_s, s) with `mmse`), in float32 under any trainer
    precision, as `python -m dirac.decompress` decodes it (bit for bit where the model's kernels do not depend on the
    batch size). JPEG at each of `jpeg_qualities` on the same images, and per rate the highest quality no larger than
    the RCC file (`jpeg_at_<rate>`; n/a, with `matched` the fraction of images that have one, unless every image has).
    Rows: rcc_<rate>_rho<100 rho>, rcc_<rate>_mmse, jpeg_q<q>, jpeg_at_<rate> (rate k<k> or b<100 bpp>), each with the
    metric suite's measures, `bpp` (mean over images) and for RCC `payload_bpp` (without the header), `steps`, the
    ladder's `sigma`, the `realised_sigma` ||x_s - x0|| / sqrt(C H W) and `encode_seconds` / `decode_seconds` per
    image. `images`: a folder of full-size images to use instead of the data module's test split (each its own batch,
    any size the denoiser accepts).
    """

    def __init__(self, metrics: Callable[..., MetricSuite], steps: Sequence[int] = (4, 8, 16),
                 rhos: Sequence[float] = (1.0, 1.5, 2.0), mmse: bool = True, bpps: Sequence[float] = (),
                 ladder: Ladder | Mapping | None = None,
                 chunking: Chunking | Mapping | None = None, seed: int = 0, prng: str = "cpu", ode_steps: int = 32,
                 kappa: float = 2.0, jpeg_qualities: Sequence[int] = (5, 10, 20, 30, 50, 70, 90),
                 images: str | None = None, save_files: bool = True, save_images: int = 4, monitor: str = "") -> None:
        self.metrics = metrics
        self.ladder = ladder if isinstance(ladder, Ladder) else Ladder(**dict(ladder or {}))
        self.chunking = chunking if isinstance(chunking, Chunking) else Chunking(**dict(chunking or {}))
        self.steps = sorted({int(k) for k in steps})
        if not all(1 <= k <= self.ladder.levels for k in self.steps):
            raise ValueError(f"task.steps must be ladder step counts in 1..{self.ladder.levels}, got {list(steps)}")
        self.bpps = sorted({float(bpp) for bpp in bpps})
        if not all(math.isfinite(bpp) and bpp >= 0.01 for bpp in self.bpps) or \
                len({bpp_rate(bpp) for bpp in self.bpps}) != len(self.bpps):
            raise ValueError(f"task.bpps must be finite targets >= 0.01 bpp that differ by at least 0.01, "
                             f"got {list(bpps)}")
        if not self.steps and not self.bpps:
            raise ValueError("no rate to encode: give task.steps (ladder steps) and/or task.bpps (target bpp)")
        self.rhos = sorted({float(rho) for rho in rhos})
        if not all(math.isfinite(rho) and rho >= 0 for rho in self.rhos):
            raise ValueError(f"task.rhos must be finite and >= 0, got {list(rhos)}")
        if len({rcc_row(1, rho) for rho in self.rhos}) != len(self.rhos):
            raise ValueError(f"task.rhos must differ by at least 0.01, got {self.rhos}")
        if not self.rhos and not mmse:
            raise ValueError("nothing to decode: give task.rhos or mmse=true")
        self.qualities = sorted({int(q) for q in jpeg_qualities})
        if not all(1 <= q <= 95 for q in self.qualities):
            raise ValueError(f"task.jpeg_qualities must lie in 1..95 (Pillow), got {list(jpeg_qualities)}")
        self.mmse, self.seed, self.prng = bool(mmse), int(seed), prng
        self.ode_steps, self.kappa = int(ode_steps), float(kappa)
        self.images = None if images in (None, "") else Path(images)
        self.save_files, self.save_images, self.monitor = bool(save_files), int(save_images), monitor

    def decoders(self) -> list[float | None]:
        """The decoders of every rate: each rho, then None for the MMSE (Tweedie) one."""
        return [*self.rhos, *([None] if self.mmse else [])]

    def rates(self) -> list[str]:
        """The rate tags: each fixed step count, then each target bpp."""
        return [*map(steps_rate, self.steps), *map(bpp_rate, self.bpps)]

    def rows(self) -> list[str]:
        """Every results row, in table order."""
        rcc = [rcc_row(rate, rho) for rate in self.rates() for rho in self.decoders()]
        jpeg = [*map(jpeg_row, self.qualities), *map(matched_row, self.rates())] if self.qualities else []
        return rcc + jpeg

    def check(self, method: Method) -> None:
        """The method must expose a denoiser D(x, sigma) (`denoiser`, an nn.Module): method=denoiser."""
        if not isinstance(getattr(method, "denoiser", None), nn.Module):
            raise ValueError(f"the compression task needs a method with a denoiser D(x, sigma) (a `denoiser` module), "
                             f"but the {method.family or type(method).__name__!r} method has none; use method=denoiser")

    def codec(self, denoiser: nn.Module) -> Codec:
        """The RCC codec of this task around `denoiser` (SPEC §3), any image size the denoiser accepts."""
        return Codec(denoiser, self.ladder, self.chunking, seed=self.seed, prng=self.prng)

    def evaluate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                 output_dir: Path) -> dict[str, dict[str, float]]:
        """Encode, decode and judge every test image (or every image of `images`): results, files and curves."""
        evaluation = CompressionEvaluation(self, method, output_dir)
        if self.images is None:
            trainer.test(evaluation, datamodule=datamodule, verbose=False)
        else:
            if not self.images.is_dir():
                raise FileNotFoundError(f"task.images={self.images} is not a folder: put the test images there (e.g. "
                                        "the 24 Kodak PNGs) or pass task.images=<folder>")
            trainer.test(evaluation, dataloaders=DataLoader(FolderImages(self.images), batch_size=1), verbose=False)
        return evaluation.results

    def describe(self, row: str, values: Mapping[str, float]) -> dict[str, object]:
        """The rate point of a results row: codec, the RD and DP series it belongs to, decoder, rho (steps, sigma and
        the rest from the measured values)."""
        if row.startswith("rcc_"):
            _, rate, decoder = row.split("_")
            rho = None if decoder == "mmse" else int(decoder[3:]) / 100
            label = "MMSE" if rho is None else f"rho={rho:g}"
            return {"method": row, "codec": "rcc", "rd_series": f"RCC {label}", "dp_series": f"RCC {rate_label(rate)}",
                    "decoder": label, "rho": "" if rho is None else rho, **values}
        if row.startswith("jpeg_q"):
            return {"method": row, "codec": "jpeg", "rd_series": "JPEG", "dp_series": "JPEG",
                    "decoder": f"q={int(row[6:])}", **values}
        return {"method": row, "codec": "jpeg_matched", "rd_series": "", "dp_series": "JPEG at RCC bpp",
                "decoder": rate_label(row[8:]), **values}


def matched_only(values: Mapping[str, float]) -> dict[str, float]:
    """A results row as reported: a JPEG-at-rate row whose JPEG was larger than the RCC file on some image keeps only
    `matched` (the rest n/a: no JPEG within that budget); any other row unchanged."""
    if values.get("matched", 1.0) < 1.0:
        return {"matched": values["matched"]}
    return dict(values)


def flat_name(name: str) -> str:
    """An image name as one file stem (`sub/a.png` -> `sub__a`)."""
    return Path(name).with_suffix("").as_posix().replace("/", "__")


class CompressionEvaluation(L.LightningModule):
    """The test loop of the compression task (runs under the run's Trainer: devices, DDP, loggers); metric and bpp
    accumulators are torchmetrics states, summed over DDP ranks."""

    def __init__(self, task: CompressionTask, method: Method, output_dir: Path) -> None:
        super().__init__()
        self.task = task
        self.denoiser = method.denoiser  # a submodule, so Lightning moves it to the device
        self.output_dir = Path(output_dir)
        self.results: dict[str, dict[str, float]] = {}

    def on_test_epoch_start(self) -> None:
        self.denoiser.eval()
        self.codec = self.task.codec(self.denoiser)
        self.suite = self.task.metrics().to(self.device)
        self.extras = nn.ModuleDict({row: PerImageMeans(EXTRAS) for row in self.task.rows()}).to(self.device)
        self.saved_images = 0

    def _add(self, row: str, output: Tensor, x0: Tensor, names: list[str], **extras: Sequence[float]) -> None:
        """One row's outputs of a batch into the metric suite, and its per-image extras (bpp, seconds, quality)."""
        self.suite.update(row, output, x0, image_names=names)
        self.extras[row].update({key: torch.tensor(list(values), dtype=torch.float64, device=self.device)
                                 for key, values in extras.items()})

    def _encode(self, image: Tensor, name: str) -> tuple[dict[str, bytes], dict[str, float]]:
        """The files of one image at every rate (written to and read back from files/ with `save_files`) and the
        encode seconds of each: one encoding through max(steps) cut into its prefixes, one `Codec.encode(bpp=)` per
        target bpp."""
        task, codec = self.task, self.codec
        files, seconds = {}, {}
        if task.steps:
            start = time.perf_counter()
            _, _, symbols = codec.read(codec.encode(image, steps=task.steps[-1]).data)
            files.update({steps_rate(k): codec.pack(tuple(image.shape), symbols[:k]) for k in task.steps})
            seconds.update(dict.fromkeys(files, time.perf_counter() - start))
        for bpp in task.bpps:
            start = time.perf_counter()
            files[bpp_rate(bpp)] = codec.encode(image, bpp=bpp).data
            seconds[bpp_rate(bpp)] = time.perf_counter() - start
        if task.save_files:  # decode what is on disk
            files = {rate: write_bytes(self.output_dir / "files" / f"{flat_name(name)}_{rate}.drc", data).read_bytes()
                     for rate, data in files.items()}
        return files, seconds

    def _reconstruct(self, x_s: Tensor, sigmas: list[float], rho: float | None) -> Tensor:
        """x_hat of a batch of decoded x_s `(B, C, H, W)` at their noise levels: the PF-ODE at `rho` (Tweedie's MMSE
        for None), as `Codec.reconstruct` computes it (float32, autocast off), batched over images of one sigma."""
        task, output = self.task, torch.empty_like(x_s)
        with autocast_off():
            for sigma in dict.fromkeys(sigmas):
                index = torch.tensor([i for i, s in enumerate(sigmas) if s == sigma], device=x_s.device)
                batch = x_s[index]
                output[index] = (tweedie(self.denoiser, batch, sigma) if rho is None
                                 else score_scaled_pf_ode(self.denoiser, batch, sigma, rho, task.ode_steps, task.kappa))
        return output

    @torch.no_grad()
    def test_step(self, batch: dict, batch_idx: int) -> None:
        """Encode each image once per rate kind, write and read back the file of every rate, decode at every rho, and
        JPEG."""
        x0, names = batch["image"].float(), list(batch["name"])
        pixels = x0.shape[-1] * x0.shape[-2]
        encoded = [self._encode(image, name) for image, name in zip(x0, names)]
        task, codec, shown = self.task, self.codec, [x0]
        bpps: dict[str, list[float]] = {}
        for rate in task.rates():
            files = [files[rate] for files, _ in encoded]
            start = time.perf_counter()
            decoded = [codec.decode_noisy(data) for data in files]
            replay = (time.perf_counter() - start) / len(names)
            x_s, sigmas = torch.stack([x for x, _ in decoded]), [sigma for _, sigma in decoded]
            bpps[rate] = [8 * len(data) / pixels for data in files]
            measured = {"bpp": bpps[rate], "payload_bpp": [8 * (len(data) - HEADER.size) / pixels for data in files],
                        "steps": [unpack_file(data)[0].steps for data in files], "sigma": sigmas,
                        "realised_sigma": (x_s - x0).double().square().mean((1, 2, 3)).sqrt().tolist(),
                        "encode_seconds": [seconds[rate] for _, seconds in encoded]}
            for rho in task.decoders():
                start = time.perf_counter()
                x_hat = self._reconstruct(x_s, sigmas, rho)
                seconds = replay + (time.perf_counter() - start) / len(names)
                self._add(rcc_row(rate, rho), x_hat, x0, names, decode_seconds=[seconds] * len(names), **measured)
                if rate == task.rates()[-1]:
                    shown.append(x_hat)
        if task.qualities and x0.shape[1] in (1, 3):
            self._jpeg(x0, names, pixels, bpps, shown)
        elif task.qualities and batch_idx == 0:
            log.warning("no JPEG reference: JPEG takes 1- or 3-channel images, these have %d", x0.shape[1])
        self._save_grids(names, shown)

    def _jpeg(self, x0: Tensor, names: list[str], pixels: int, rcc_bpps: dict[str, list[float]],
              shown: list[Tensor]) -> None:
        """JPEG rows: every quality of the sweep, and per rate the highest quality within each image's RCC file size
        (`matched` 0 for an image where even the lowest quality is larger: the row is then n/a, see `matched_only`)."""
        task = self.task
        trips = [[jpeg_roundtrip(image, q) for q in task.qualities] for image in x0]
        for index, quality in enumerate(task.qualities):
            output = torch.stack([trip[index][0] for trip in trips])
            self._add(jpeg_row(quality), output, x0, names, bpp=[8 * trip[index][1] / pixels for trip in trips],
                      quality=[quality] * len(names))
        for rate in task.rates():
            fitting = [[i for i, (_, size) in enumerate(trip) if 8 * size / pixels <= budget]
                       for trip, budget in zip(trips, rcc_bpps[rate])]
            chosen = [indices[-1] if indices else 0 for indices in fitting]
            output = torch.stack([trip[i][0] for trip, i in zip(trips, chosen)])
            sizes = [8 * trip[i][1] / pixels for trip, i in zip(trips, chosen)]
            self._add(matched_row(rate), output, x0, names, bpp=sizes, quality=[task.qualities[i] for i in chosen],
                      matched=[float(bool(indices)) for indices in fitting])
            if rate == task.rates()[-1]:
                shown.append(output)

    def _save_grids(self, names: list[str], columns: list[Tensor]) -> None:
        """ground truth | RCC at the highest rate for each decoder | JPEG at its bpp, one PNG per image."""
        limit = max(0, self.task.save_images - self.saved_images)
        for index, name in enumerate(names[:limit]):
            save_grid(self.output_dir / "images" / f"{flat_name(name)}.png",
                      [column[index : index + 1] for column in columns])
        self.saved_images += min(limit, len(names))

    def on_test_epoch_end(self) -> None:
        results = self.suite.compute()  # torchmetrics sums the states over DDP ranks
        for row, extras in self.extras.items():
            means, counts = extras.compute()
            results.setdefault(row, {}).update({key: float(means[i]) for i, key in enumerate(EXTRAS) if counts[i] > 0})
        self.results = {row: matched_only(results[row]) for row in self.task.rows() if row in results}
        for row, values in self.results.items():
            for metric, value in values.items():
                self.log(f"test/{row}/{metric}", value, rank_zero_only=True)
        if self.trainer.is_global_zero:
            points = [self.task.describe(row, values) for row, values in self.results.items() if "psnr" in values]
            notes = {**self.suite.notes, "bpp": "8 x file bytes / pixels, every byte counted (RCC .drc, JPEG by Pillow)",
                     "payload_bpp": f"RCC bpp without the {HEADER.size}-byte .drc header",
                     "realised_sigma": "RMS of x_s - x0, the noise level the decoded x_s carries (sigma: the ladder's)",
                     "rcc": f"{self.task.ladder}, {self.task.chunking}, seed {self.task.seed}; PF-ODE "
                            f"{self.task.ode_steps} Heun steps, kappa {self.task.kappa:g}",
                     "jpeg_at": "per image the highest JPEG quality whose file is no larger than the RCC file; n/a "
                                "unless every image has one (matched: the fraction that has)"}
            paths = write_results(self.results, self.output_dir, stem="results", notes=notes)
            try:
                paths.update(write_rate_curves(points, self.output_dir))
                for logger in self.loggers:
                    log_rate_curves(logger, points)
            except ValueError as error:  # no perception measure in every row
                log.info("no rate curves: %s", error)
            print(f"\n{paths['results.md'].read_text()}\nwritten to {self.output_dir}", flush=True)
