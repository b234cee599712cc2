"""The compression task (SPEC §3): each test image is encoded once by RCC and cut into a real .drc file per rate
(ladder steps, or a target bpp by `Codec.encode`'s rule), the bpp read from the file size (and without the header),
decoded at several rho by the score-scaled PF-ODE (and Tweedie's MMSE) in float32 whatever the trainer's precision,
and judged by PSNR / SSIM / patch SWD (LPIPS, FID with their weights) per (rate, rho), beside JPEG and WebP (Pillow
quality sweeps, and JPEG at the quality matched to each RCC file's bpp) on the same images, per image set (the data's
test split, a folder, or crops of the embedded photographs at native resolution): results.md/.csv, rd_curve.*,
dp_curve.*, bd_rate.* (Bjøntegaard, RCC against JPEG and WebP), wandb."""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image, features
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from dirac.compression import (Chunking, Codec, CodecError, Encoding, Ladder, header_bytes, read_header,
                               steps_within)
from dirac.compression.files import read_image, scan_inputs, write_bytes
from dirac.precision import autocast_off
from dirac.methods.base import Method
from dirac.metrics import MetricSuite, PerImageMeans, clip01
from dirac.reporting import save_grid, write_results
from dirac.reporting.bd_rate import compare, curves, write_bd_rates
from dirac.reporting.rate import log_rate_curves, write_rate_curves
from dirac.samplers.pf_ode import score_scaled_pf_ode, tweedie
from dirac.tasks.base import Task

log = logging.getLogger(__name__)
EXTRAS = ("bpp", "payload_bpp", "steps", "sigma", "realised_sigma", "quality", "matched", "reached", "encode_seconds",
          "decode_seconds")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


@dataclass(frozen=True)
class PillowCodec:
    """A classical codec as Pillow writes it: its name in tables, Pillow's format, save options and the qualities."""

    label: str
    format: str
    feature: str  # PIL.features.check's name of the encoder
    options: tuple[tuple[str, object], ...]
    qualities: range


CLASSICAL = {"jpeg": PillowCodec("JPEG", "JPEG", "jpg", (("optimize", True),), range(1, 96)),  # optimised Huffman
             "webp": PillowCodec("WebP", "WEBP", "webp", (("method", 6),), range(0, 101))}  # method 6: smallest files


def steps_rate(steps: int) -> str:
    """The rate tag of a fixed number of ladder steps, e.g. k08."""
    return f"k{steps:02d}"


def bpp_rate(bpp: float) -> str:
    """The rate tag of a target bits per pixel (Codec.encode's rule), in hundredths, e.g. b0050 for 0.5 bpp."""
    return f"b{round(bpp * 100):04d}"


def rcc_row(rate: str, rho: float | None) -> str:
    """The results row of RCC at a rate tag decoded at `rho` (None: Tweedie's MMSE), e.g. rcc_k08_rho150."""
    return f"rcc_{rate}_" + ("mmse" if rho is None else f"rho{round(rho * 100):03d}")


def classical_row(codec: str, quality: int) -> str:
    """The results row of a classical codec (jpeg, webp) at one Pillow quality, e.g. jpeg_q050."""
    return f"{codec}_q{quality:03d}"


def matched_row(rate: str) -> str:
    """The results row of JPEG at the highest quality whose file is no larger than each image's RCC file at a rate."""
    return f"jpeg_at_{rate}"


def rate_label(rate: str) -> str:
    """A rate tag in words: k08 -> k=8, b0050 -> 0.5 bpp."""
    return f"k={int(rate[1:])}" if rate[0] == "k" else f"{int(rate[1:]) / 100:g} bpp"


def pillow_roundtrip(image: Tensor, codec: str, quality: int) -> tuple[Tensor, int]:
    """(decoded image, file bytes) of a `(C, H, W)` image in [0, 1] (1 or 3 channels) saved as an 8-bit file by Pillow's
    `codec` (jpeg | webp, CLASSICAL's options) at `quality`; every byte of the file counted (headers included)."""
    if image.shape[0] not in (1, 3):
        raise ValueError(f"{CLASSICAL[codec].label} takes 1- or 3-channel images, got {image.shape[0]} channels")
    mode = "L" if image.shape[0] == 1 else "RGB"
    array = (clip01(image.detach().float().cpu()) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if mode == "L" else array).save(
        buffer, format=CLASSICAL[codec].format, quality=int(quality), **dict(CLASSICAL[codec].options))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode))
    tensor = torch.from_numpy(decoded.copy()).float() / 255
    tensor = tensor[None] if mode == "L" else tensor.permute(2, 0, 1)
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

    For each test image one encoding, cut into the real file of each rate (a prefix of the progressive stream is
    exactly the encoding of its steps): for each k in `steps` the file of its first k ladder steps
    (`files/<name>_k<k>.drc`), for each target of `bpps` the file `Codec.encode(bpp=...)` makes, the most steps within
    the target (`files/<name>_b<100 bpp>.drc`); a target below the first step's file or above the whole ladder's is
    skipped for that image with a message naming it (the row is n/a unless every image `reached` it). The bpp is the
    file size. Each file is read back and decoded to x_s, then x_hat by the score-scaled PF-ODE at every rho of `rhos`
    (and D(x_s, s) with `mmse`), in float32 under any trainer precision, as `python -m dirac.decompress` decodes it
    (bit for bit where the model's kernels do not depend on the batch size). JPEG and WebP at each of
    `jpeg_qualities` / `webp_qualities` on the same images, and per rate JPEG at the highest quality no larger than
    the RCC file (`jpeg_at_<rate>`; n/a, with `matched` the fraction of images that have one, unless every image has).
    Rows: rcc_<rate>_rho<100 rho>, rcc_<rate>_mmse, jpeg_q<q>, webp_q<q>, jpeg_at_<rate> (rate k<k> or b<100 bpp>),
    each with the metric suite's measures, `bpp` (mean over images) and for RCC `payload_bpp` (without the header),
    `steps`, the ladder's `sigma`, the `realised_sigma` ||x_s - x0|| / sqrt(C H W), `encode_seconds` (coding the
    file's steps) and `decode_seconds` (replaying them and decoding) per image.
    The images: the data module's test split, or `images` (a folder of full-size images, each its own batch), or
    `image_sets` (datasets with a `name`, e.g. `PhotoCrops` at 64 and 256 px; rows `<row>@<name>`, batches of
    `batch_size`), any size the denoiser accepts: an image it refuses (too small, sides not a multiple of what its
    down-sampling needs) is skipped with a message naming it before anything of it is written.
    """

    def __init__(self, metrics: Callable[..., MetricSuite], steps: Sequence[int] = (4, 8, 16),
                 rhos: Sequence[float] = (1.0, 1.5, 2.0), mmse: bool = True, bpps: Sequence[float] = (),
                 ladder: Ladder | Mapping | None = None,
                 chunking: Chunking | Mapping | None = None, seed: int = 0, prng: str = "cpu", ode_steps: int = 32,
                 kappa: float = 2.0, jpeg_qualities: Sequence[int] = (5, 10, 20, 30, 50, 70, 90),
                 webp_qualities: Sequence[int] = (), images: str | None = None, image_sets: Sequence[Dataset] = (),
                 batch_size: int = 1, save_files: bool = True, save_images: int = 4, monitor: str = "") -> None:
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
        self.qualities = {"jpeg": checked_qualities("jpeg", jpeg_qualities),
                          "webp": checked_qualities("webp", webp_qualities)}
        self.mmse, self.seed, self.prng = bool(mmse), int(seed), prng
        self.ode_steps, self.kappa = int(ode_steps), float(kappa)
        self.images = None if images in (None, "") else Path(images)
        self.image_sets = checked_image_sets(image_sets, self.images)
        if int(batch_size) < 1:
            raise ValueError(f"task.batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.save_files, self.save_images, self.monitor = bool(save_files), int(save_images), monitor

    def decoders(self) -> list[float | None]:
        """The decoders of every rate: each rho, then None for the MMSE (Tweedie) one."""
        return [*self.rhos, *([None] if self.mmse else [])]

    def rates(self) -> list[str]:
        """The rate tags: each fixed step count, then each target bpp."""
        return [*map(steps_rate, self.steps), *map(bpp_rate, self.bpps)]

    def rows(self) -> list[str]:
        """Every results row of one image set, in table order."""
        rcc = [rcc_row(rate, rho) for rate in self.rates() for rho in self.decoders()]
        classical = [classical_row(codec, q) for codec, qualities in self.qualities.items() for q in qualities]
        return rcc + classical + (list(map(matched_row, self.rates())) if self.qualities["jpeg"] else [])

    def check(self, method: Method) -> None:
        """The method must expose a denoiser D(x, sigma) (`denoiser`, an nn.Module): method=denoiser."""
        if not isinstance(getattr(method, "denoiser", None), nn.Module):
            raise ValueError(f"the compression task needs a method with a denoiser D(x, sigma) (a `denoiser` module), "
                             f"but the {method.family or type(method).__name__!r} method has none; use method=denoiser")

    def codec(self, denoiser: nn.Module) -> Codec:
        """The RCC codec of this task around `denoiser` (SPEC §3), any image size the denoiser accepts."""
        return Codec(denoiser, self.ladder, self.chunking, seed=self.seed, prng=self.prng)

    def test_runs(self, datamodule: L.LightningDataModule) -> list[tuple[str, dict]]:
        """(image set name, `trainer.test` data arguments) of each image set: the data's test split, the `images`
        folder ('' for both) or each of `image_sets`."""
        if self.image_sets:
            return [(dataset.name, {"dataloaders": DataLoader(dataset, batch_size=self.batch_size)})
                    for dataset in self.image_sets]
        if self.images is None:
            return [("", {"datamodule": datamodule})]
        if not self.images.is_dir():
            raise FileNotFoundError(f"task.images={self.images} is not a folder: put the test images there (e.g. "
                                    "the 24 Kodak PNGs) or pass task.images=<folder>")
        return [("", {"dataloaders": DataLoader(FolderImages(self.images), batch_size=1)})]

    def evaluate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                 output_dir: Path) -> dict[str, dict[str, float]]:
        """Encode, decode and judge every image of every image set: results, files, curves and BD-rates."""
        results, points, skipped = {}, [], {}
        for name, data in self.test_runs(datamodule):
            evaluation = CompressionEvaluation(self, method, output_dir, name)
            trainer.test(evaluation, verbose=False, **data)
            results.update(evaluation.results)
            points += evaluation.points
            skipped.update(evaluation.skipped)
        if not results:
            raise CodecError("no image could be compressed: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        if trainer.is_global_zero:
            self.report(results, points, skipped, evaluation.suite.notes, Path(output_dir), trainer.loggers)
        return results

    def notes(self, suite_notes: Mapping[str, str], skipped: Mapping[str, str]) -> dict[str, str]:
        """The notes under the results table: the metric suite's, what bpp and seconds mean, the codec's settings,
        the image sets and every skipped image with the reason."""
        sets = "; ".join(f"{dataset.name}: {len(dataset)} images" for dataset in self.image_sets)
        return {**suite_notes, "bpp": "8 x file bytes / pixels, every byte of every file counted (RCC .drc header and "
                                      "payload; JPEG and WebP files by Pillow, their own headers included)",
                "payload_bpp": "RCC bpp without the .drc header (19 bytes for a square image below 128 px, seed < 128)",
                "realised_sigma": "RMS of x_s - x0, the noise level the decoded x_s carries (sigma: the ladder's)",
                "seconds": "per image on this machine: encode = coding the file's steps (one encoding serves every "
                           "rate), decode = replaying the file's steps plus the decoder",
                "rcc": f"{self.ladder}, {self.chunking}, seed {self.seed}; PF-ODE {self.ode_steps} Heun steps, kappa "
                       f"{self.kappa:g}",
                "classical": "JPEG by Pillow with optimised Huffman tables, WebP by Pillow (libwebp) method 6",
                "jpeg_at": "per image the highest JPEG quality whose file is no larger than the RCC file; n/a unless "
                           "every image has one (matched: the fraction that has)",
                "reached": "the fraction of images whose encoding reaches a target bpp; n/a unless every image does",
                **({"image sets": sets} if sets else {}),
                **({"skipped": "; ".join(f"{name} ({why})" for name, why in skipped.items())} if skipped else {})}

    def report(self, results: Mapping[str, Mapping[str, float]], points: list[dict], skipped: Mapping[str, str],
               suite_notes: Mapping[str, str], output_dir: Path, loggers: Sequence) -> None:
        """results.md/.csv, the rate curves and the BD-rates of RCC against JPEG and WebP in output_dir, printed."""
        paths = write_results(results, output_dir, stem="results", notes=self.notes(suite_notes, skipped))
        rd = curves(points)
        rcc_series = [series for _, series in rd if series.startswith("RCC")]
        pairs = [(test, CLASSICAL[codec].label) for test in dict.fromkeys(rcc_series) for codec in CLASSICAL]
        paths.update(write_bd_rates(compare(rd, rd, pairs), output_dir, "BD-rate of RCC against JPEG and WebP"))
        try:
            paths.update(write_rate_curves(points, output_dir))
            for logger in loggers:
                log_rate_curves(logger, points)
        except ValueError as error:  # no perception measure in every row
            log.info("no rate curves: %s", error)
        print(f"\n{paths['results.md'].read_text()}\n{paths['bd_rate.md'].read_text()}\nwritten to {output_dir}",
              flush=True)

    def describe(self, row: str, values: Mapping[str, float]) -> dict[str, object]:
        """The rate point of a results row: codec, the RD and DP series it belongs to, decoder, rho (steps, sigma and
        the rest from the measured values)."""
        if row.startswith("rcc_"):
            _, rate, decoder = row.split("_")
            rho = None if decoder == "mmse" else int(decoder[3:]) / 100
            label = "MMSE" if rho is None else f"rho={rho:g}"
            return {"method": row, "codec": "rcc", "rd_series": f"RCC {label}", "dp_series": f"RCC {rate_label(rate)}",
                    "decoder": label, "rho": "" if rho is None else rho, **values}
        codec, _, rest = row.partition("_")
        if rest.startswith("q"):
            label = CLASSICAL[codec].label
            return {"method": row, "codec": codec, "rd_series": label, "dp_series": label,
                    "decoder": f"q={int(rest[1:])}", **values}
        return {"method": row, "codec": "jpeg_matched", "rd_series": "", "dp_series": "JPEG at RCC bpp",
                "decoder": rate_label(row[8:]), **values}


def checked_qualities(codec: str, qualities: Sequence[int]) -> list[int]:
    """The sorted Pillow qualities of a classical codec, or a ValueError naming the range (and a missing encoder)."""
    chosen, allowed = sorted({int(q) for q in qualities}), CLASSICAL[codec].qualities
    if not all(q in allowed for q in chosen):
        raise ValueError(f"task.{codec}_qualities must lie in {allowed.start}..{allowed.stop - 1} (Pillow), "
                         f"got {list(qualities)}")
    feature = CLASSICAL[codec].feature
    if chosen and not features.check(feature):
        raise ValueError(f"this Pillow has no {CLASSICAL[codec].label} encoder (PIL.features.check({feature!r}) is "
                         f"False): install a Pillow built with it or set task.{codec}_qualities=[]")
    return chosen


def checked_image_sets(image_sets: Sequence[Dataset], images: Path | None) -> list[Dataset]:
    """The image sets, each with its own non-empty `name`, and not together with a folder of images."""
    sets = list(image_sets or ())
    names = [getattr(dataset, "name", "") for dataset in sets]
    if not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise ValueError(f"task.image_sets must be datasets with distinct non-empty names, got {names}")
    if sets and images is not None:
        raise ValueError("give task.images (a folder) or task.image_sets, not both")
    return sets


def covered_only(values: Mapping[str, float]) -> dict[str, float]:
    """A results row as reported: a row that some image lacks keeps only its coverage, the rest n/a: a JPEG-at-rate
    row whose JPEG was larger than the RCC file on some image (`matched` < 1), an RCC row of a target bpp that some
    image's encoding does not reach (`reached` < 1); any other row unchanged."""
    short = {key: values[key] for key in ("matched", "reached") if values.get(key, 1.0) < 1.0}
    return short or dict(values)


def flat_name(name: str) -> str:
    """An image name as one file stem (`sub/a.png` -> `sub__a`)."""
    return Path(name).with_suffix("").as_posix().replace("/", "__")


class CompressionEvaluation(L.LightningModule):
    """The test loop of the compression task on one image set (runs under the run's Trainer: devices, DDP, loggers);
    metric and bpp accumulators are torchmetrics states, summed over DDP ranks. Rows are `<row>@<images>` when the
    set has a name."""

    def __init__(self, task: CompressionTask, method: Method, output_dir: Path, images: str = "") -> None:
        super().__init__()
        self.task, self.images = task, images
        self.denoiser = method.denoiser  # a submodule, so Lightning moves it to the device
        self.output_dir = Path(output_dir)
        self.results: dict[str, dict[str, float]] = {}
        self.points: list[dict] = []
        self.skipped: dict[str, str] = {}
        self.refusals: dict[tuple[int, ...], str] = {}

    def on_test_epoch_start(self) -> None:
        self.denoiser.eval()
        self.codec = self.task.codec(self.denoiser)
        self.suite = self.task.metrics().to(self.device)
        self.extras = nn.ModuleDict({row: PerImageMeans(EXTRAS) for row in self.task.rows()}).to(self.device)
        self.saved_images = 0

    def _add(self, row: str, output: Tensor | None, x0: Tensor, names: list[str], **extras: Sequence[float]) -> None:
        """One row's outputs of a batch into the metric suite (none: only extras), and its per-image extras (bpp,
        seconds, quality)."""
        if output is not None:
            self.suite.update(row, output, x0, image_names=names)
        self.extras[row].update({key: torch.tensor(list(values), dtype=torch.float64, device=self.device)
                                 for key, values in extras.items()})

    def _refusal(self, shape: tuple[int, ...]) -> str:
        """Why the denoiser refuses `(C, H, W)` images ('' when it takes them): one call on a grey image of that shape,
        the network's own message (e.g. the multiple its sides must be)."""
        if shape not in self.refusals:
            try:
                self.codec.denoise(torch.full(shape, 0.5, device=self.device), self.codec.ladder.sigma_min)
                self.refusals[shape] = ""
            except CodecError as error:
                self.refusals[shape] = str(error)
        return self.refusals[shape]

    def _path(self, name: str, rate: str) -> Path:
        """Where the file of image `name` at `rate` is written (files/<name>_<rate>.drc)."""
        return self.output_dir / "files" / f"{flat_name(name)}_{rate}.drc"

    def _encode(self, image: Tensor, name: str) -> tuple[dict[str, bytes], dict[str, float]]:
        """The files of one image at every rate it reaches (written to and read back from files/ with `save_files`)
        and the seconds of coding each one's steps: one encoding, through max(steps) or until the file would pass the
        largest target bpp, cut into its prefixes; a target the image does not reach is skipped with a message."""
        task, codec = self.task, self.codec
        encoding, seconds = self._timed_encode(image, bpp=task.bpps[-1]) if task.bpps else (None, [])
        if encoding is None or len(encoding.kl_bits) < max(task.steps, default=0):
            encoding, seconds = self._timed_encode(image, steps=task.steps[-1])
        _, _, symbols = codec.read(encoding.data)
        prefixes = [codec.pack(tuple(image.shape), symbols[:k]) for k in range(1, len(symbols) + 1)]
        counts = {steps_rate(k): k for k in task.steps}
        for bpp in task.bpps:
            fitting, why = steps_within(list(map(len, prefixes)), bpp, image[0].numel(), codec.ladder.levels)
            counts[bpp_rate(bpp)] = 0 if why else fitting
            if why:
                log.warning("%s: no file at %g bpp (%s): %s", name, bpp, self._path(name, bpp_rate(bpp)).name, why)
        files = {rate: prefixes[k - 1] for rate, k in counts.items() if k}
        if task.save_files:  # decode what is on disk
            files = {rate: write_bytes(self._path(name, rate), data).read_bytes() for rate, data in files.items()}
        return files, {rate: seconds[counts[rate]] for rate in files}

    def _timed_encode(self, image: Tensor, **limit: float) -> tuple[Encoding, list[float]]:
        """`Codec.encode(image, steps=... or bpp=...)` and the seconds it took up to the end of each step (0 first)."""
        start, seconds = time.perf_counter(), [0.0]
        encoding = self.codec.encode(image, progress=lambda *_: seconds.append(time.perf_counter() - start), **limit)
        return encoding, seconds

    def _decode_noisy(self, data: bytes, name: str, rate: str) -> tuple[Tensor, float]:
        """(x_s, s) of one image's file at `rate`, or a CodecError naming the file (another model's file, corrupt)."""
        try:
            return self.codec.decode_noisy(data)
        except CodecError as error:
            raise CodecError(f"{self._path(name, rate)}: {error}") from error

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
        """Encode each image once, write and read back its file at every rate, decode at every rho; JPEG and WebP.
        A batch of a shape the denoiser refuses is skipped, named, before anything of it is written."""
        x0, names = batch["image"].float(), list(batch["name"])
        refusal = self._refusal(tuple(x0.shape[1:]))
        if refusal:
            log.warning("skipping %s: %s", ", ".join(names), refusal)
            self.skipped.update(dict.fromkeys(names, refusal))
            return
        pixels = x0.shape[-1] * x0.shape[-2]
        encoded = [self._encode(image, name) for image, name in zip(x0, names)]
        task, shown = self.task, [x0]
        bpps: dict[str, list[float]] = {}
        for rate in task.rates():
            index = [i for i, (files, _) in enumerate(encoded) if rate in files]
            bpps[rate] = [8 * len(files[rate]) / pixels if rate in files else math.nan for files, _ in encoded]
            if rate[0] == "b":  # the images whose encoding reaches the target
                for rho in task.decoders():
                    self._add(rcc_row(rate, rho), None, x0, names, reached=[float(rate in f) for f, _ in encoded])
            if index:
                outputs = self._decode_rate(rate, x0[index], [names[i] for i in index], [encoded[i] for i in index])
                if rate == task.rates()[-1] and len(index) == len(names):
                    shown += outputs
        if x0.shape[1] in (1, 3):
            self._classical(x0, names, pixels, bpps, shown)
        elif any(task.qualities.values()) and batch_idx == 0:
            log.warning("no JPEG or WebP reference: they take 1- or 3-channel images, these have %d", x0.shape[1])
        self._save_grids(names, shown)

    def _decode_rate(self, rate: str, x0: Tensor, names: list[str],
                     encoded: list[tuple[dict[str, bytes], dict[str, float]]]) -> list[Tensor]:
        """The RCC rows of one rate for the images that have its file: x_s replayed, x_hat at every decoder, judged;
        the x_hat of each decoder."""
        pixels = x0.shape[-1] * x0.shape[-2]
        files = [files[rate] for files, _ in encoded]
        start = time.perf_counter()
        decoded = [self._decode_noisy(data, name, rate) for data, name in zip(files, names)]
        replay = (time.perf_counter() - start) / len(names)
        x_s, sigmas = torch.stack([x for x, _ in decoded]), [sigma for _, sigma in decoded]
        measured = {"bpp": [8 * len(data) / pixels for data in files],
                    "payload_bpp": [8 * (len(data) - header_bytes(data)) / pixels for data in files],
                    "steps": [read_header(data)[0].steps for data in files], "sigma": sigmas,
                    "realised_sigma": (x_s - x0).double().square().mean((1, 2, 3)).sqrt().tolist(),
                    "encode_seconds": [seconds[rate] for _, seconds in encoded]}
        outputs = []
        for rho in self.task.decoders():
            start = time.perf_counter()
            x_hat = self._reconstruct(x_s, sigmas, rho)
            seconds = replay + (time.perf_counter() - start) / len(names)
            self._add(rcc_row(rate, rho), x_hat, x0, names, decode_seconds=[seconds] * len(names), **measured)
            outputs.append(x_hat)
        return outputs

    def _classical(self, x0: Tensor, names: list[str], pixels: int, rcc_bpps: dict[str, list[float]],
                   shown: list[Tensor]) -> None:
        """JPEG and WebP rows at every quality of their sweeps, and per rate JPEG at the highest quality within each
        image's RCC file (`matched` 0 for an image where even the lowest quality is larger, or that has no RCC file
        at the rate: the row is then n/a, see `covered_only`)."""
        for codec, qualities in self.task.qualities.items():
            trips = [[pillow_roundtrip(image, codec, q) for q in qualities] for image in x0]
            for index, quality in enumerate(qualities):
                output = torch.stack([trip[index][0] for trip in trips])
                self._add(classical_row(codec, quality), output, x0, names,
                          bpp=[8 * trip[index][1] / pixels for trip in trips], quality=[quality] * len(names))
            if codec == "jpeg" and qualities:
                self._matched(trips, x0, names, pixels, rcc_bpps, shown)

    def _matched(self, trips: list[list[tuple[Tensor, int]]], x0: Tensor, names: list[str], pixels: int,
                 rcc_bpps: dict[str, list[float]], shown: list[Tensor]) -> None:
        """jpeg_at_<rate> rows: per image the highest JPEG quality of the sweep no larger than its RCC file."""
        qualities = self.task.qualities["jpeg"]
        for rate in self.task.rates():
            fitting = [[i for i, (_, size) in enumerate(trip) if 8 * size / pixels <= budget]
                       for trip, budget in zip(trips, rcc_bpps[rate])]
            chosen = [indices[-1] if indices else 0 for indices in fitting]
            output = torch.stack([trip[i][0] for trip, i in zip(trips, chosen)])
            sizes = [8 * trip[i][1] / pixels for trip, i in zip(trips, chosen)]
            self._add(matched_row(rate), output, x0, names, bpp=sizes, quality=[qualities[i] for i in chosen],
                      matched=[float(bool(indices)) for indices in fitting])
            if rate == self.task.rates()[-1]:
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
        suffix = f"@{self.images}" if self.images else ""
        rows = {row: covered_only(results[row]) for row in self.task.rows() if results.get(row)}
        self.results = {row + suffix: values for row, values in rows.items()}
        self.points = [{**self.task.describe(row, values), "method": row + suffix, "images": self.images}
                       for row, values in rows.items() if "psnr" in values]
        for row, values in self.results.items():
            for metric, value in values.items():
                self.log(f"test/{row}/{metric}", value, rank_zero_only=True)
