"""The Dirac LightningModule: look-ahead training, calibrated early stopping and evaluation (SPEC §1.2–§1.3)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn

from dirac.degradations.base import Degradation
from dirac.degradations.noise import NoiseSchedule
from dirac.metrics import MetricSuite, psnr
from dirac.models.evaluation import CurveRecorder, curve_rows, measure, write_evaluation
from dirac.models.losses import LookAheadLoss
from dirac.nets.wrappers import ResidualX0
from dirac.reporting import log_images, save_grid
from dirac.samplers import DiracSampler, TrajectoryRecorder, best_stop_t
from dirac.samplers.reverse import Generators, StepState

log = logging.getLogger(__name__)


class DiracModule(L.LightningModule):
    """Trains Phi(y_t, t) = y_t + net(y_t, sigma_t) with L(Δt) and reconstructs with the Dirac reverse process.

    `stops` holds the DO/PO stop times. A preset with `auto_stop` gets its stop from validation data
    (`trainer.validate` with `calibrating = True`): DO at the PSNR peak, PO at the minimum of the
    perception measure (LPIPS when its weights are there, patch SWD otherwise). Checkpoints carry the run configuration,
    the stops and the operator signatures, so a checkpoint refuses an incompatible degradation.
    """

    def __init__(
        self,
        net: nn.Module,
        degradation: Degradation,
        noise: NoiseSchedule,
        loss: LookAheadLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        sampler_do: DiracSampler,
        sampler_po: DiracSampler,
        metrics: Callable[[], MetricSuite] | None = None,
        curve_every: int = 1,
        val_images: int = 4,
        save_images: int | None = None,
        eval_seed: int = 0,
    ) -> None:
        super().__init__()
        self.phi_net = ResidualX0(net)
        self.degradation = degradation
        self.noise = noise
        self.loss = loss
        self.optimizer_factory = optimizer
        self.samplers = {"do": sampler_do, "po": sampler_po}
        self.stops = {"do": sampler_do.stop_t, "po": sampler_po.stop_t}
        self.metrics_factory = metrics or partial(MetricSuite, lpips_net=None, fid=False)
        self.curve_every = int(curve_every)
        self.val_images = int(val_images)
        self.save_images = save_images
        self.eval_seed = int(eval_seed)
        self.run_config: dict = {}
        self.output_dir = Path(".")
        self.calibrating = False
        self.calibrated_presets: set[str] = set()

    # ---------------------------------------------------------------- model
    def phi(self, y_t: Tensor, t: Tensor) -> Tensor:
        """x0_hat = Phi(y_t, t) = y_t + net(y_t, sigma_t), conditioned on the raw sigma_t (SPEC §1.2)."""
        return self.phi_net(y_t, self.noise.sigma(t))

    def degrade(self, x0: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y_t = A_t(x0) + sigma_t z (SPEC §1.1), t a `(B,)` tensor."""
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return self.degradation(x0, t) + self.noise.sigma(t).view(-1, 1, 1, 1) * z

    def measure(self, x0: Tensor, batch_idx: int) -> Tensor:
        """The measurement y = A_1(x0) + sigma_1 z with noise seeded by (eval_seed, rank, batch index)."""
        generator = torch.Generator(device=x0.device).manual_seed(self._batch_seed(batch_idx))
        return self.degrade(x0, x0.new_ones(x0.shape[0]), generator)

    def _batch_seed(self, batch_idx: int) -> int:
        rank = self.global_rank if self._trainer is not None else 0
        return self.eval_seed * 1_000_003 + rank * 65_537 + batch_idx

    @property
    def auto_presets(self) -> set[str]:
        """The presets whose stop is found on validation data (`auto_stop`)."""
        return {preset for preset, sampler in self.samplers.items() if sampler.auto_stop}

    @property
    def calibrated(self) -> bool:
        """Whether every auto-stopped preset has its stop from validation data."""
        return self.auto_presets <= self.calibrated_presets

    def sampler(self, preset: str) -> DiracSampler:
        """The DO or PO sampler stopped at its current stop time."""
        return self.samplers[preset].with_stop(self.stops[preset])

    def reconstruct(self, y: Tensor, preset: str = "po", callback=None, stop_t: float | None = None,
                    generator: Generators = None) -> Tensor:
        """Run the Dirac reverse process (SPEC §1.3) from measurements y with the DO or PO preset; `generator`
        (one, or one per image) draws its noise."""
        sampler = self.sampler(preset) if stop_t is None else self.samplers[preset].with_stop(stop_t)
        return sampler(self.phi, y, self.degradation, self.noise, generator=generator, callback=callback)

    # ------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        """One step of L(Δt) at t ~ U[0, 1) per image (SPEC §1.2)."""
        x0 = batch["image"]
        t = torch.rand(x0.shape[0], device=x0.device, dtype=x0.dtype)
        y_t = self.degrade(x0, t)
        loss = self.loss(self.phi(y_t, t), x0, t, self.degradation, self.noise)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {self.global_step}; "
                                     "lower the learning rate or check the data for NaNs")
        self.log("train/loss", loss, prog_bar=True, batch_size=x0.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam on the network parameters (SPEC §1.3b: lr 1e-4, no schedule)."""
        return self.optimizer_factory(self.phi_net.parameters())

    # ----------------------------------------------------------- validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Validation loss at seeded severities; a short PO reconstruction on the first batch; or stop calibration."""
        x0 = batch["image"]
        if self.calibrating:
            self._calibration_step(x0, batch_idx)
            return
        generator = torch.Generator(device=x0.device).manual_seed(self._batch_seed(batch_idx))
        t = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
        y_t = self.degrade(x0, t, generator)
        loss = self.loss(self.phi(y_t, t), x0, t, self.degradation, self.noise)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=x0.shape[0])
        if batch_idx == 0 and self.val_images > 0:
            self._validation_reconstruction(x0[: self.val_images])

    def _validation_reconstruction(self, x0: Tensor) -> None:
        y = self.measure(x0, 0)
        x0_hat = self.reconstruct(y, "po")
        self.log("val/psnr_measurement", psnr(y, x0).mean(), sync_dist=True, batch_size=x0.shape[0])
        self.log("val/psnr_po", psnr(x0_hat, x0).mean(), sync_dist=True, batch_size=x0.shape[0])
        if self.global_rank == 0 and self.logger is not None:
            log_images(self.logger, "val/reconstruction", [x0, y, x0_hat], ["ground truth", "measurement", "Dirac-PO"],
                       step=self.global_step)

    def on_validation_epoch_start(self) -> None:
        if self.calibrating:
            self.calibration_suites = {preset: self.metrics_factory(fid=False).to(self.device)
                                       for preset in sorted(self.auto_presets - self.calibrated_presets)}
            self.calibration_targets = {preset: calibration_target(preset, suite.available)
                                        for preset, suite in self.calibration_suites.items()}

    def _calibration_step(self, x0: Tensor, batch_idx: int) -> None:
        """Measure every step's output of one full pass per auto-stopped preset (one pass when they share it)."""
        y = self.measure(x0, batch_idx)
        passes: dict[DiracSampler, list[CurveRecorder]] = {}
        for preset, suite in self.calibration_suites.items():
            full = self.samplers[preset].with_stop(0.0)
            passes.setdefault(full, []).append(CurveRecorder(suite, x0, y, self.degradation, full.output, every=1))
        for sampler, recorders in passes.items():
            sampler(self.phi, y, self.degradation, self.noise, callback=fan_out(recorders))

    def on_validation_epoch_end(self) -> None:
        if not self.calibrating:
            return
        for preset, suite in self.calibration_suites.items():
            rows = curve_rows(suite.compute())  # torchmetrics sums the states over DDP ranks
            key, mode = self.calibration_targets[preset]
            self.stops[preset] = best_stop_t(rows, key=key, mode=mode)
            self.calibrated_presets.add(preset)
            best = next(row[key] for row in rows if row["stop_t"] == self.stops[preset])
            log.info("Dirac-%s stop_t = %.3f (validation %s %s %.4g; set sampler.%s.auto_stop=false to use "
                     "sampler.%s.stop_t instead)", preset.upper(), self.stops[preset], key,
                     "minimum" if mode == "min" else "peak", best, preset, preset)

    # ----------------------------------------------------------------- test
    def on_test_epoch_start(self) -> None:
        self.suite = self.metrics_factory().to(self.device)
        self.curve_suite = self.metrics_factory(fid=False).to(self.device)  # FID per curve point would cost an Inception pass each
        self._saved_images = 0

    def test_step(self, batch: dict, batch_idx: int) -> None:
        """Measurement, Dirac-DO and Dirac-PO on a test batch, with the perception–distortion curve along stop_t."""
        x0, names = batch["image"], batch["name"]
        y = self.measure(x0, batch_idx)
        outputs = self._reconstruct_presets(x0, y)
        measure(self.suite, "measurement", y, x0)
        for method, x0_hat in outputs.items():
            measure(self.suite, method, x0_hat, x0, self.degradation, y)
        self._save_grids(names, [x0, y, outputs["dirac_do"], outputs["dirac_po"]])

    def _reconstruct_presets(self, x0: Tensor, y: Tensor) -> dict[str, Tensor]:
        """DO and PO outputs, from one full pass when they share settings (the curve comes from PO's pass)."""
        do, po = self.sampler("do"), self.sampler("po")
        curve = CurveRecorder(self.curve_suite, x0, y, self.degradation, po.output, self.curve_every)
        recorder = TrajectoryRecorder(x0, y, self.degradation, {}, every=10**9, keep=(do.stop_t, po.stop_t))
        full_po = po.with_stop(0.0)
        full_po(self.phi, y, self.degradation, self.noise, callback=fan_out([curve, recorder]))
        po_out = recorder.kept(po.stop_t, po.output)
        same = do.with_stop(0.0) == full_po
        do_out = recorder.kept(do.stop_t, do.output) if same else do(self.phi, y, self.degradation, self.noise)
        return {"dirac_do": do_out, "dirac_po": po_out}

    def _save_grids(self, names: list[str], columns: list[Tensor]) -> None:
        limit = len(names) if self.save_images is None else max(0, self.save_images - self._saved_images)
        for index, name in enumerate(names[:limit]):
            flat = Path(name).with_suffix("").as_posix().replace("/", "__")
            save_grid(self.output_dir / "images" / f"{flat}.png", [c[index : index + 1] for c in columns])
        self._saved_images += min(limit, len(names))

    def on_test_epoch_end(self) -> None:
        results = self.suite.compute()
        rows = curve_rows(self.curve_suite.compute())
        self.test_results = results
        self.test_curve = rows
        for method, values in results.items():
            for metric, value in values.items():
                if isinstance(value, float):
                    self.log(f"test/{method}/{metric}", value, rank_zero_only=True)
        if self.trainer.is_global_zero:
            paths = write_evaluation(self.output_dir, results, rows, self.stops, self.suite.notes, self.logger)
            print(f"\n{paths['results.md'].read_text()}\nwritten to {self.output_dir}", flush=True)

    # ---------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store what is needed to use the checkpoint alone: config, stops, operator signatures (issue 10)."""
        checkpoint["dirac"] = {
            "config": self.run_config,
            "stops": dict(self.stops),
            "calibrated": sorted(self.calibrated_presets),
            "signature": self.signature(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint made for another degradation/noise/image size; take its calibrated stops for the
        auto-stopped presets (a preset with a fixed stop keeps the configured `stop_t`, so stop_t sweeps work)."""
        stored = checkpoint.get("dirac")
        if stored is None:
            raise ValueError("this checkpoint was not written by dirac's DiracModule (no 'dirac' entry)")
        check_signature(stored["signature"], self.signature())
        self.calibrated_presets = set(stored["calibrated"]) & self.auto_presets
        self.stops.update({preset: stored["stops"][preset] for preset in self.calibrated_presets})

    def signature(self) -> dict:
        """Degradation, noise and image geometry a checkpoint is only valid for."""
        return {"degradation": self.degradation.signature(), "noise": self.noise.signature(), "image_range": [0.0, 1.0]}


def calibration_target(preset: str, available: tuple[str, ...]) -> tuple[str, str]:
    """The validation measure a preset's automatic stop optimises (SPEC §1.3): DO the PSNR peak, PO the
    perception minimum (LPIPS when its weights are there, else the offline patch SWD)."""
    if preset == "do":
        return "psnr", "max"
    perception = next((key for key in ("lpips", "swd") if key in available), None)
    if perception is None:
        raise ValueError("sampler.po.auto_stop needs a perception measure to minimise: "
                         "turn on metrics.swd or supply the LPIPS weights")
    return perception, "min"


def fan_out(callbacks: list[Callable[[StepState], None]]) -> Callable[[StepState], None]:
    """One sampler callback that calls each of `callbacks` in turn."""
    def call_all(state: StepState) -> None:
        for callback in callbacks:
            callback(state)
    return call_all


def check_signature(stored: dict, current: dict) -> None:
    """Raise a ValueError listing every field in which a checkpoint's signature differs from the current one."""
    differences = [f"{part}.{key}: checkpoint {stored.get(part, {}).get(key)!r} vs config {current[part].get(key)!r}"
                   for part in ("degradation", "noise") for key in sorted(set(stored.get(part, {})) | set(current[part]))
                   if stored.get(part, {}).get(key) != current[part].get(key)]
    if differences:
        raise ValueError("checkpoint is incompatible with the configured model: " + "; ".join(differences))
