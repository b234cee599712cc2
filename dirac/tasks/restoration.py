"""The restoration task: simulate y, run every restorer on the same y, and report the table, grids and the
perception–distortion curve (SPEC §1.3b, §1.4, §4)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torchmetrics import MeanMetric

from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.methods.base import Method
from dirac.metrics import MetricSuite, psnr, ssim
from dirac.reporting import (log_images, log_pd_curve, log_pd_scatter, save_grid, write_learning_curve, write_pd_curve,
                             write_pd_scatter, write_results)
from dirac.reporting.files import csv_text, write_text
from dirac.restorers.base import Restorer
from dirac.seeding import image_generators, per_image_normal
from dirac.tasks.base import Task
from dirac.tasks.calibration import calibrate

log = logging.getLogger(__name__)
CURVE_PREFIX = "curve_"
CURVE_SCALE = 10_000
PREVIEW_SHOWN = 8  # images per column of the logged preview (the PSNRs use all `preview_images`)
PER_IMAGE_COLUMNS = ("image", "method", "psnr", "ssim")


@dataclass(frozen=True)
class CurveSpec:
    """The perception–distortion curve: `restorer`'s output along `param` at every `every`-th value of its grid
    (and the last), or at the given `values`."""

    restorer: str
    param: str = "stop_t"
    every: int = 1
    values: tuple[float, ...] | None = None

    def points(self, restorer: Restorer) -> list[float]:
        """The curve's parameter values for `restorer`."""
        if self.values is not None:
            return sorted(float(value) for value in self.values)
        grid = restorer.grid(self.param)
        return sorted({*grid[:: max(1, int(self.every))], grid[-1]})


def curve_method(value: float) -> str:
    """The metric-suite row name of the curve point at parameter `value` (suite names may not contain dots)."""
    return f"{CURVE_PREFIX}{round(value * CURVE_SCALE):07d}"


def curve_rows(results: dict[str, dict[str, float]], param: str) -> list[dict[str, float]]:
    """The curve rows (sorted by `param`) among a suite's results, as `curve_method` named them."""
    rows = [{param: int(name[len(CURVE_PREFIX):]) / CURVE_SCALE, **values} for name, values in results.items()
            if name.startswith(CURVE_PREFIX)]
    return sorted(rows, key=lambda row: row[param])


def restoration_generators(seed: int, names: Sequence[str], device: torch.device | str) -> list[torch.Generator]:
    """The restorers' per-image generators, seeded by (seed, image name): shared by the task and `dirac.restore`."""
    return image_generators(seed, names, "restoration", device)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so wall times around a restorer call measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class RestorationTask(Task):
    """Inverse problems y = A_1(x0) + sigma_1 z (SPEC §1.1): every restorer sees the same y and the same noise.

    The measurement noise and each restorer's noise are seeded per image by (seed, image name), so results do not
    change with the batch size, the number of processes or the image order, and `python -m dirac.restore` with
    the same seed reproduces a test output from its y. Restorers come from the method (`restorers`: names, or all
    it offers) and from `baselines` (restorers built by config, e.g. the SPEC §1.5 comparison baselines, tuned on
    validation data like the method's); each is a row of one table. `timing` adds each restorer's wall-clock
    seconds per image (device-synchronised around each call) to the table; `per_image` writes every image's PSNR and
    SSIM per row to `per_image.csv` (cross-validation reads it per photograph).
    """

    def __init__(self, degradation: Degradation, noise: NoiseSchedule, metrics: Callable[..., MetricSuite],
                 restorers: Sequence[str] | None = None, baselines: dict[str, Restorer] | None = None,
                 curve: CurveSpec | None = None, preview: str | Sequence[str] | None = None, preview_images: int = 4,
                 save_images: int | None = None, seed: int = 0, monitor: str = "", timing: bool = False,
                 per_image: bool = False) -> None:
        self.degradation = degradation
        self.noise = noise
        self.metrics = metrics
        self.names = None if restorers is None else list(restorers)
        self.baselines = dict(baselines or {})
        self.curve = curve
        self.preview = [preview] if isinstance(preview, str) else list(preview or [])
        self.preview_images = int(preview_images)
        self.save_images = save_images
        self.seed = int(seed)
        self.monitor = monitor
        self.timing = bool(timing)
        self.per_image = bool(per_image)

    def measure(self, x0: Tensor, names: Sequence[str]) -> Tensor:
        """y = A_1(x0) + sigma_1 z, with image b's z drawn from the generator of (seed, names[b]) (SPEC §1.1)."""
        self.degradation.check_image(x0)
        ones = x0.new_ones(x0.shape[0])
        generators = image_generators(self.seed, names, "measurement", x0.device)
        z = per_image_normal(x0.shape, generators, x0.device, x0.dtype)
        return self.degradation.apply(x0, ones) + self.noise.sigma(ones).view(-1, 1, 1, 1) * z

    def generators(self, names: Sequence[str], device: torch.device) -> list[torch.Generator]:
        """The restorers' per-image generators, seeded by (seed, image name)."""
        return restoration_generators(self.seed, names, device)

    def restorers_of(self, method: Method) -> dict[str, Restorer]:
        """The restorers evaluated: the selected ones the method offers (all by default), then the baselines with the
        parameters tuned on validation data (stored in the method's calibration) applied."""
        offered = method.restorers()
        names = list(offered) if self.names is None else self.names
        baselines = {name: restorer.with_params(**{param: value
                                                   for param, value in method.calibration.get(name, {}).items()
                                                   if param in restorer.tuned})
                     if method.calibration.get(name) else restorer
                     for name, restorer in self.baselines.items()}
        return {**{name: offered[name] for name in names}, **baselines}

    def check(self, method: Method) -> None:
        """The method must offer restorers, every selected name must exist, and its operators must be the task's."""
        offered = method.restorers()
        if not offered and not self.baselines:
            raise ValueError(f"the restoration task needs restorers, but the {method.family!r} method offers none "
                             "(it is not a restoration method); pick another task or method")
        unknown = [name for name in (self.names or []) if name not in offered]
        if unknown:
            raise ValueError(f"unknown restorer(s) {unknown}: the {method.family!r} method offers {sorted(offered)}")
        restorers = self.restorers_of(method)
        for role, name in (("curve", self.curve and self.curve.restorer),
                           *(("preview", name) for name in self.preview)):
            if name and name not in restorers:
                raise ValueError(f"the task's {role} restorer {name!r} is not evaluated; choose one of "
                                 f"{sorted(restorers)}")
        if self.curve is not None:
            self.curve.points(restorers[self.curve.restorer])  # an unknown parameter fails now
        self._check_operators(method)
        for restorer in restorers.values():
            restorer.prepare(self.degradation)  # e.g. DDRM without an SVD, a baseline's missing denoiser

    def _check_operators(self, method: Method) -> None:
        """Refuse a method trained for another degradation or noise than the task measures with."""
        signature = method.signature()
        mine = {"degradation": self.degradation.signature(), "noise": self.noise.signature()}
        differ = [part for part in mine if part in signature and signature[part] != mine[part]]
        if differ:
            raise ValueError(f"the method was built for another {' and '.join(differ)} than the task's: "
                             + "; ".join(f"{part}: method {signature[part]} vs task {mine[part]}" for part in differ))

    def fit_callbacks(self, method: Method) -> list[L.Callback]:
        """The preview restorations and learning curve logged at each validation during training."""
        if not self.preview or self.preview_images <= 0:
            return []
        return [RestorationPreview(self, self.preview, self.preview_images)]

    def calibrate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                  output_dir: Path | None = None) -> None:
        """Tune each restorer's `tuned` parameters on the validation split (SPEC §1.3: DO at the PSNR peak, PO at the
        perception minimum; guidance steps like stops), storing the choices in the method."""
        calibrate(self, method, trainer, datamodule, output_dir)

    def evaluate(self, method: Method, trainer: L.Trainer, datamodule: L.LightningDataModule,
                 output_dir: Path) -> dict[str, dict[str, float]]:
        """The measurement and every restorer on the test split: results.md/.csv, grids, the PD curve."""
        evaluation = RestorationEvaluation(self, method, output_dir)
        trainer.test(evaluation, datamodule=datamodule, verbose=False)
        return evaluation.results

    def restore_all(self, restorers: dict[str, Restorer], y: Tensor, names: Sequence[str],
                    on_curve: Callable[[float, Tensor], None] | None = None,
                    seconds: dict[str, float] | None = None) -> dict[str, Tensor]:
        """Every restorer's output on y; the curve restorer's sweep also gives the curve points (`on_curve`) and the
        outputs of the restorers that share its pass (e.g. Dirac-DO and Dirac-PO differ in stop_t alone).

        With a `seconds` dict, each restorer's wall time on the batch goes into it: measured around its own call
        (device-synchronised before and after), or, for the restorers that share the curve pass, that pass's time
        in proportion to their NFE over the pass's (the pass also computes the curve points' metrics)."""
        generators = lambda: self.generators(names, y.device)  # noqa: E731 - fresh generators for every run
        outputs: dict[str, Tensor] = {}
        clock = _Clock(y.device, seconds is not None)
        if self.curve is not None and on_curve is not None:
            lead = restorers[self.curve.restorer]
            points = set(self.curve.points(lead))
            riders: dict[float, list[str]] = {}
            for name, restorer in restorers.items():
                if name == self.curve.restorer or lead.shares_pass(restorer, self.curve.param):
                    riders.setdefault(float(restorer.params[self.curve.param]), []).append(name)

            def consume(value: float, output: Tensor) -> None:
                if value in points:
                    on_curve(value, output)
                outputs.update({name: output for name in riders.get(value, [])})

            with clock:
                lead.sweep(y, self.degradation, self.curve.param, sorted(points | set(riders)), consume, generators)
            if seconds is not None:
                full = max(1, lead.with_params(**{self.curve.param: min(points | set(riders))}).nfe)
                seconds.update({name: clock.elapsed * restorers[name].nfe / full
                                for name in (n for names_ in riders.values() for n in names_)})
        for name, restorer in restorers.items():
            if name not in outputs:
                with clock:
                    outputs[name] = restorer(y, self.degradation, generators())
                if seconds is not None:
                    seconds[name] = clock.elapsed
        return {name: outputs[name] for name in restorers}

    def consistency_input(self, x0_hat: Tensor) -> Tensor:
        """A_1(x0_hat), the measured prediction of the data consistency ||A_1(x0_hat) - y||."""
        return self.degradation.apply(x0_hat, x0_hat.new_ones(x0_hat.shape[0]))


class _Clock:
    """Wall time of a block, the device synchronised before and after it (only when `enabled`)."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.device, self.enabled, self.elapsed = device, enabled, 0.0

    def __enter__(self) -> _Clock:
        if self.enabled:
            synchronize(self.device)
            self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            synchronize(self.device)
            self.elapsed = time.perf_counter() - self.start


class RestorationEvaluation(L.LightningModule):
    """The test loop of the restoration task (runs under the run's Trainer: devices, DDP, loggers)."""

    def __init__(self, task: RestorationTask, method: Method, output_dir: Path) -> None:
        super().__init__()
        self.task = task
        self.method = method
        self.degradation = task.degradation  # a submodule, so Lightning moves it to the device
        self.noise = task.noise
        self.output_dir = Path(output_dir)
        self.results: dict[str, dict[str, float]] = {}

    def on_test_epoch_start(self) -> None:
        self.restorers = self.task.restorers_of(self.method)
        self.suite = self.task.metrics().to(self.device)
        # FID per point would cost an Inception pass each
        self.curve_suite = self.task.metrics(fid=False).to(self.device)
        self.saved_images = 0
        self.timers = torch.nn.ModuleDict({name: MeanMetric() for name in self.restorers} if self.task.timing else {})
        self.timers.to(self.device)
        self.per_image_rows: list[dict[str, str]] = []

    def test_step(self, batch: dict, batch_idx: int) -> None:
        """The measurement and every restorer on one test batch, plus the curve points."""
        x0, names = batch["image"], list(batch["name"])
        y = self.task.measure(x0, names)
        self.suite.update("measurement", y, x0, image_names=names)

        def on_curve(value: float, output: Tensor) -> None:
            self.curve_suite.update(curve_method(value), output, x0, self.task.consistency_input(output), y, names)

        seconds: dict[str, float] | None = {} if self.task.timing else None
        outputs = self.task.restore_all(self.restorers, y, names, on_curve, seconds)
        for name, elapsed in (seconds or {}).items():
            self.timers[name].update(torch.tensor(elapsed / len(names), device=self.device), weight=len(names))
        for name, output in outputs.items():
            self.suite.update(name, output, x0, self.task.consistency_input(output), y, names)
        if self.task.per_image:
            self._record_per_image(names, x0, {"measurement": y, **outputs})
        self._save_grids(names, [x0, y, *outputs.values()])

    def _record_per_image(self, names: list[str], x0: Tensor, outputs: dict[str, Tensor]) -> None:
        """Each image's PSNR and SSIM (of the clipped images, SPEC §1.3b) for every row of the table."""
        for method, output in outputs.items():
            scores = zip(psnr(output, x0).tolist(), ssim(output, x0).tolist())
            self.per_image_rows += [{"image": name, "method": method, "psnr": repr(value), "ssim": repr(structure)}
                                    for name, (value, structure) in zip(names, scores)]

    def _gathered_per_image(self) -> list[dict[str, str]]:
        """The per-image rows of every DDP rank, each (image, method) once (a distributed sampler may pad)."""
        rows = self.per_image_rows
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list[list[dict[str, str]]] = [[] for _ in range(torch.distributed.get_world_size())]
            torch.distributed.all_gather_object(parts, rows)
            rows = [row for part in parts for row in part]
        unique = {(row["image"], row["method"]): row for row in rows}
        return sorted(unique.values(), key=lambda row: (row["method"], row["image"]))

    def _save_grids(self, names: list[str], columns: list[Tensor]) -> None:
        """ground truth | measurement | each restorer, one PNG per image (`sub/a.png` -> `sub__a.png`)."""
        limit = len(names) if self.task.save_images is None else max(0, self.task.save_images - self.saved_images)
        for index, name in enumerate(names[:limit]):
            flat = Path(name).with_suffix("").as_posix().replace("/", "__")
            save_grid(self.output_dir / "images" / f"{flat}.png", [column[index : index + 1] for column in columns])
        self.saved_images += min(limit, len(names))

    def on_test_epoch_end(self) -> None:
        results = self.suite.compute()  # torchmetrics sums the states over DDP ranks
        for name, restorer in self.restorers.items():
            results[name]["nfe"] = float(restorer.nfe)
            if name in self.timers:
                results[name]["seconds_per_image"] = float(self.timers[name].compute())
        param = self.task.curve.param if self.task.curve else "stop_t"
        rows = curve_rows(self.curve_suite.compute(), param)
        per_image = self._gathered_per_image() if self.task.per_image else []
        self.results = results
        for row_name, values in results.items():
            for metric, value in values.items():
                self.log(f"test/{row_name}/{metric}", value, rank_zero_only=True)
        if self.trainer.is_global_zero:
            paths = self._write(results, rows, param)
            if per_image:
                write_text(self.output_dir / "per_image.csv", csv_text(PER_IMAGE_COLUMNS, per_image))
            print(f"\n{paths['results.md'].read_text()}\nwritten to {self.output_dir}", flush=True)

    def _write(self, results: dict, rows: list[dict], param: str) -> dict[str, Path]:
        """results.md/.csv (notes: metric settings and every restorer's parameters) and the PD curve."""
        notes = {**self.suite.notes, **{f"{name} {key}": f"{value:.3f}" for name, restorer in self.restorers.items()
                                         for key, value in restorer.params.items()}}
        if self.task.timing:
            notes["seconds per image"] = ("wall clock around each restorer call, device-synchronised; "
                                          "restorers sharing the curve pass get its time in proportion to their "
                                          "NFE")
        paths = write_results(results, self.output_dir, stem="results", notes=notes)
        if rows:
            paths.update(write_pd_curve(rows, self.output_dir, x=param, stem="pd_curve"))
            log_pd_curve(self.logger, rows, x=param)
        if len(results) > 1:
            try:
                paths.update(write_pd_scatter(results, rows, self.output_dir, curve_label=self.task.curve and
                                              f"{self.task.curve.restorer} along {param}"))
                log_pd_scatter(self.logger, results, rows)
            except ValueError as error:  # no perception measure in every row: no scatter
                log.info("no perception–distortion scatter: %s", error)
        return paths


class RestorationPreview(L.Callback):
    """During training, at each validation: the preview restorers on the first validation images, their PSNR beside
    the measurement's (`val/psnr_measurement`, `val/psnr_<restorer>`), the images (`val/reconstruction`) and the
    learning curve so far, PSNR against step, as `learning_curve.csv/.png` in the run folder."""

    def __init__(self, task: RestorationTask, restorers: Sequence[str], images: int) -> None:
        self.task, self.restorers, self.images = task, list(restorers), images
        self.rows: list[dict[str, float]] = []

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch: dict,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not isinstance(pl_module, Method):
            return
        x0, names = batch["image"][: self.images], list(batch["name"][: self.images])
        self.task.degradation.to(x0.device)
        y = self.task.measure(x0, names)
        offered = self.task.restorers_of(pl_module)
        restored = self.task.restore_all({name: offered[name] for name in self.restorers}, y, names)
        pl_module.log("val/psnr_measurement", psnr(y, x0).mean(), sync_dist=True, batch_size=len(names))
        for name, x0_hat in restored.items():
            pl_module.log(f"val/psnr_{name}", psnr(x0_hat, x0).mean(), sync_dist=True, batch_size=len(names))
        if trainer.is_global_zero and pl_module.logger is not None:
            shown = [images[:PREVIEW_SHOWN] for images in (x0, y, *restored.values())]
            log_images(pl_module.logger, "val/reconstruction", shown,
                       ["ground truth", "measurement", *restored], step=pl_module.global_step)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        keys = ["val/loss", "val/psnr_measurement", *(f"val/psnr_{name}" for name in self.restorers)]
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or not trainer.is_global_zero or f"val/psnr_{self.restorers[0]}" not in metrics:
            return
        self.rows.append({"step": trainer.global_step,
                          **{key.removeprefix("val/"): float(metrics[key]) for key in keys if key in metrics}})
        write_learning_curve(self.rows, trainer.default_root_dir)
