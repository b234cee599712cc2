"""The compression task (SPEC §3): each test image is encoded by RCC into a real .drc file per rate (ladder steps), the
bpp read from the file size, decoded at several rho by the score-scaled PF-ODE (and Tweedie's MMSE), and judged by
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

from dirac.compression import Chunking, Codec, Ladder
from dirac.compression.files import list_inputs, read_image, write_bytes
from dirac.methods.base import Method
from dirac.metrics import MetricSuite, PerImageMeans, clip01
from dirac.precision import autocast_network_only
from dirac.reporting import save_grid, write_results
from dirac.reporting.rate import log_rate_curves, write_rate_curves
from dirac.samplers.pf_ode import score_scaled_pf_ode, tweedie
from dirac.tasks.base import Task

log = logging.getLogger(__name__)
EXTRAS = ("bpp", "quality", "encode_seconds", "decode_seconds")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


def rcc_row(steps: int, rho: float | None) -> str:
    """The results row of RCC at `steps` ladder steps decoded at `rho` (None: Tweedie's MMSE), e.g. rcc_k08_rho150."""
    return f"rcc_k{steps:02d}_" + ("mmse" if rho is None else f"rho{round(rho * 100):03d}")


def jpeg_row(quality: int) -> str:
    """The results row of JPEG at one Pillow quality, e.g. jpeg_q050."""
    return f"jpeg_q{quality:03d}"


def matched_row(steps: int) -> str:
    """The results row of JPEG at the highest quality whose file is no larger than each image's RCC file at `steps`."""
    return f"jpeg_at_k{steps:02d}"


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
        self.root, self.files = list_inputs(Path(folder), Path(folder) / ".dirac-none", IMAGE_SUFFIXES)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return {"image": read_image(self.files[index]), "name": self.files[index].relative_to(self.root).as_posix()}


class CompressionTask(Task):
    """Judges a method's denoiser D(x, sigma) as an RCC codec (SPEC §3; method=denoiser).

    For each test image: one encoding through the first max(steps) ladder levels, and for each rate k in `steps` the
    real file of its first k steps (`files/<name>_k<k>.drc`; a prefix of the progressive stream is exactly the k-step
    encoding) whose size gives the bpp; the file is read back and decoded to x_s, then x_hat by the score-scaled PF-ODE
    at every rho of `rhos` (and D(x_s, s) with `mmse`). JPEG at each of `jpeg_qualities` on the same images, and per
    rate the highest quality no larger than the RCC file (`jpeg_at_k<k>`). Rows: rcc_k<k>_rho<100 rho>, rcc_k<k>_mmse,
    jpeg_q<q>, jpeg_at_k<k>, each with the metric suite's measures, `bpp` (mean over images) and for RCC
    `encode_seconds` / `decode_seconds` per image. `images`: a folder of full-size images to use instead of the data
    module's test split (each its own batch, any size the denoiser accepts).
    """

    def __init__(self, metrics: Callable[..., MetricSuite], steps: Sequence[int] = (4, 8, 16),
                 rhos: Sequence[float] = (1.0, 1.5, 2.0), mmse: bool = True, ladder: Ladder | Mapping | None = None,
                 chunking: Chunking | Mapping | None = None, seed: int = 0, prng: str = "cpu", ode_steps: int = 32,
                 kappa: float = 2.0, jpeg_qualities: Sequence[int] = (5, 10, 20, 30, 50, 70, 90),
                 images: str | None = None, save_files: bool = True, save_images: int = 4, monitor: str = "") -> None:
        self.metrics = metrics
        self.ladder = ladder if isinstance(ladder, Ladder) else Ladder(**dict(ladder or {}))
        self.chunking = chunking if isinstance(chunking, Chunking) else Chunking(**dict(chunking or {}))
        self.steps = sorted({int(k) for k in steps})
        if not self.steps or not all(1 <= k <= self.ladder.levels for k in self.steps):
            raise ValueError(f"task.steps must be ladder step counts in 1..{self.ladder.levels}, got {list(steps)}")
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

    def rows(self) -> list[str]:
        """Every results row, in table order."""
        rcc = [rcc_row(k, rho) for k in self.steps for rho in self.decoders()]
        jpeg = [*map(jpeg_row, self.qualities), *map(matched_row, self.steps)] if self.qualities else []
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
        """The rate point of a results row: codec, the RD and DP series it belongs to, decoder, steps, rho."""
        if row.startswith("rcc_"):
            steps, decoder = int(row[5:7]), row[8:]
            rho = None if decoder == "mmse" else int(decoder[3:]) / 100
            label = "MMSE" if rho is None else f"rho={rho:g}"
            return {"method": row, "codec": "rcc", "rd_series": f"RCC {label}", "dp_series": f"RCC k={steps}",
                    "decoder": label, "steps": steps, "rho": "" if rho is None else rho,
                    "sigma": self.ladder.sigmas()[steps - 1], **values}
        if row.startswith("jpeg_q"):
            return {"method": row, "codec": "jpeg", "rd_series": "JPEG", "dp_series": "JPEG",
                    "decoder": f"q={int(row[6:])}", **values}
        return {"method": row, "codec": "jpeg_matched", "rd_series": "", "dp_series": "JPEG at RCC bpp",
                "decoder": f"k={int(row[9:])}", "steps": int(row[9:]), **values}


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

    @torch.no_grad()
    def test_step(self, batch: dict, batch_idx: int) -> None:
        """Encode each image once, write and read back the file of every rate, decode at every rho, and JPEG."""
        x0, names = batch["image"].float(), list(batch["name"])
        pixels = x0.shape[-1] * x0.shape[-2]
        task, codec = self.task, self.codec
        files: dict[int, list[bytes]] = {k: [] for k in task.steps}
        encode_seconds = []
        for image, name in zip(x0, names):
            start = time.perf_counter()
            encoding = codec.encode(image, steps=task.steps[-1])
            _, _, symbols = codec.read(encoding.data)
            prefixes = {k: codec.pack(tuple(image.shape), symbols[:k]) for k in task.steps}
            encode_seconds.append(time.perf_counter() - start)
            for k, data in prefixes.items():
                if task.save_files:
                    path = write_bytes(self.output_dir / "files" / f"{flat_name(name)}_k{k:02d}.drc", data)
                    data = path.read_bytes()  # decode what is on disk
                files[k].append(data)
        bpps: dict[int, list[float]] = {}
        shown: list[Tensor] = [x0]
        for k in task.steps:
            start = time.perf_counter()
            decoded = [codec.decode_noisy(data) for data in files[k]]
            replay = (time.perf_counter() - start) / len(names)
            x_s, sigma = torch.stack([x for x, _ in decoded]), decoded[0][1]
            bpps[k] = [8 * len(data) / pixels for data in files[k]]
            for rho in task.decoders():
                start = time.perf_counter()
                with autocast_network_only(x0.device.type) as under_autocast:
                    denoise = under_autocast(self.denoiser)
                    x_hat = (tweedie(denoise, x_s, sigma) if rho is None
                             else score_scaled_pf_ode(denoise, x_s, sigma, rho, task.ode_steps, task.kappa))
                seconds = replay + (time.perf_counter() - start) / len(names)
                self._add(rcc_row(k, rho), x_hat, x0, names, bpp=bpps[k], encode_seconds=encode_seconds,
                          decode_seconds=[seconds] * len(names))
                if k == task.steps[-1]:
                    shown.append(x_hat)
        if task.qualities and x0.shape[1] in (1, 3):
            self._jpeg(x0, names, pixels, bpps, shown)
        elif task.qualities and batch_idx == 0:
            log.warning("no JPEG reference: JPEG takes 1- or 3-channel images, these have %d", x0.shape[1])
        self._save_grids(names, shown)

    def _jpeg(self, x0: Tensor, names: list[str], pixels: int, rcc_bpps: dict[int, list[float]],
              shown: list[Tensor]) -> None:
        """JPEG rows: every quality of the sweep, and per rate the highest quality within each image's RCC file size."""
        task = self.task
        trips = [[jpeg_roundtrip(image, q) for q in task.qualities] for image in x0]
        for index, quality in enumerate(task.qualities):
            output = torch.stack([trip[index][0] for trip in trips])
            self._add(jpeg_row(quality), output, x0, names, bpp=[8 * trip[index][1] / pixels for trip in trips],
                      quality=[quality] * len(names))
        for k in task.steps:
            chosen = []
            for trip, budget in zip(trips, rcc_bpps[k]):
                fitting = [i for i, (_, size) in enumerate(trip) if 8 * size / pixels <= budget]
                chosen.append(fitting[-1] if fitting else 0)
            output = torch.stack([trip[i][0] for trip, i in zip(trips, chosen)])
            self._add(matched_row(k), output, x0, names, bpp=[8 * trip[i][1] / pixels for trip, i in zip(trips, chosen)],
                      quality=[task.qualities[i] for i in chosen])
            if k == task.steps[-1]:
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
        self.results = {row: results[row] for row in self.task.rows() if row in results}
        for row, values in self.results.items():
            for metric, value in values.items():
                self.log(f"test/{row}/{metric}", value, rank_zero_only=True)
        if self.trainer.is_global_zero:
            points = [self.task.describe(row, values) for row, values in self.results.items()]
            notes = {**self.suite.notes, "bpp": "8 x file bytes / pixels, every byte counted (RCC .drc, JPEG by Pillow)",
                     "rcc": f"{self.task.ladder}, {self.task.chunking}, seed {self.task.seed}; PF-ODE "
                            f"{self.task.ode_steps} Heun steps, kappa {self.task.kappa:g}",
                     "jpeg_at_k": "per image the highest JPEG quality whose file is no larger than the RCC file"}
            paths = write_results(self.results, self.output_dir, stem="results", notes=notes)
            try:
                paths.update(write_rate_curves(points, self.output_dir))
                for logger in self.loggers:
                    log_rate_curves(logger, points)
            except ValueError as error:  # no perception measure in every row
                log.info("no rate curves: %s", error)
            print(f"\n{paths['results.md'].read_text()}\nwritten to {self.output_dir}", flush=True)
