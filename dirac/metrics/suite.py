"""Per-method evaluation accumulators for PSNR, SSIM, MSE, LPIPS, FID, patch SWD and data consistency (SPEC §1.3b)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance

from dirac.metrics.distortion import check_pair, clip01, data_consistency, mse, psnr, ssim
from dirac.metrics.swd import PatchSWD
from dirac.metrics.weights import FrozenNetwork, MissingWeightsError, load_inception, load_lpips

log = logging.getLogger(__name__)

DISTORTION = ("psnr", "ssim", "mse")


class PerImageMeans(Metric):
    """Running means of named per-image measures (SPEC §1.3b); sums and counts add up across DDP ranks (§4)."""

    full_state_update = False

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = tuple(names)
        self.add_state("sums", torch.zeros(len(self.names), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(len(self.names), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: Mapping[str, Tensor]) -> None:
        """Add the `(B,)` per-image values of each named measure."""
        for name, value in values.items():
            if name not in self.names:
                raise ValueError(f"unknown measure {name!r}; expected one of {self.names}")
            index = self.names.index(name)
            self.sums[index] += value.detach().double().sum()
            self.counts[index] += value.numel()

    def compute(self) -> tuple[Tensor, Tensor]:
        """The per-measure means (0 where nothing was seen) and image counts."""
        return self.sums / self.counts.clamp_min(1), self.counts


def to_rgb(x: Tensor) -> Tensor:
    """Grey images expanded to three channels; LPIPS and FID networks take RGB."""
    if x.shape[1] not in (1, 3):
        raise ValueError(f"LPIPS and FID need 1- or 3-channel images, got {x.shape[1]} channels")
    return x.expand(-1, 3, -1, -1)


def to_uint8_rgb(x: Tensor) -> Tensor:
    """Clipped RGB images quantised to 8 bits, as PNGs of the test set: the FID input (SPEC §1.3b)."""
    return (clip01(to_rgb(x)) * 255).round().to(torch.uint8)


class MethodMetrics(nn.Module):
    """The accumulators of one method (e.g. "measurement", "dirac_do", "dirac_po") for the SPEC §1.3b table."""

    def __init__(self, names: Sequence[str], fid_features: nn.Module | None, swd: dict | None) -> None:
        super().__init__()
        self.means = PerImageMeans(names)
        self.fid = FrechetInceptionDistance(feature=fid_features) if fid_features is not None else None
        self.swd = PatchSWD(**swd) if swd is not None else None

    def update(self, pred: Tensor, target: Tensor, values: Mapping[str, Tensor],
               names: Sequence[str] | None = None) -> None:
        """Add a batch of clipped outputs, their targets and their per-image values (`names` seed the patch SWD)."""
        self.means.update(values)
        if self.fid is not None:
            self.fid.update(to_uint8_rgb(target), real=True)
            self.fid.update(to_uint8_rgb(pred), real=False)
        if self.swd is not None:
            self.swd.update(pred, target, names)

    def compute(self) -> dict[str, float]:
        """Means of the per-image measures, FID (with at least two images) and patch SWD."""
        means, counts = self.means.compute()
        row = {name: float(means[i]) for i, name in enumerate(self.means.names) if counts[i] > 0}
        if self.fid is not None and counts[self.means.names.index("psnr")] >= 2:
            row["fid"] = float(self.fid.compute())
        if self.swd is not None:
            row["swd"] = float(self.swd.compute())
        return row


class MetricSuite(nn.Module):
    """Per-method PSNR/SSIM/MSE/LPIPS/FID/patch-SWD/data-consistency over an evaluation set (SPEC §1.3b, §4).

    Metrics whose pretrained weights are missing are switched off with one warning naming the files;
    `available` lists the active ones and `notes` records clipping, LPIPS net and FID features. Metric
    networks are kept out of `state_dict`, so checkpoints never carry them. Under DDP every rank must
    update the same method names.
    """

    def __init__(self, lpips_net: str | None = "vgg", fid: bool = True, swd: bool = True,
                 weights_dir: str | Path | None = None, fid_features: nn.Module | None = None,
                 swd_patch: int = 7, swd_projections: int = 256, swd_patches_per_image: int = 256,
                 swd_max_patches: int = 16384, seed: int = 0) -> None:
        super().__init__()
        missing: list[MissingWeightsError] = []
        self.lpips = _load(lambda: load_lpips(lpips_net, weights_dir), missing) if lpips_net else None
        if not fid:
            self.fid_features = None
        elif fid_features is not None:
            self.fid_features = FrozenNetwork(fid_features, getattr(fid_features, "num_features", None))
        else:
            self.fid_features = _load(lambda: load_inception(weights_dir), missing, num_features=2048)
        self.swd = dict(patch=swd_patch, projections=swd_projections, patches_per_image=swd_patches_per_image,
                        max_patches=swd_max_patches, seed=seed) if swd else None
        fid_kind = ("custom features, not comparable with published FID" if fid_features is not None
                    else "Inception-v3 pool features on 8-bit images")
        self.notes = {
            "clipping": "outputs and targets clipped to [0, 1]",
            "lpips_net": _status(lpips_net, self.lpips is not None),
            "fid": _status(fid_kind if fid else None, self.fid_features is not None),
            "swd": f"{swd_patch}x{swd_patch} patches, {swd_projections} projections" if swd else "off",
        }
        self.methods = nn.ModuleDict()
        if missing:
            log.warning("metric weights missing, continuing without those metrics: %s",
                        " | ".join(map(str, missing)))

    @property
    def available(self) -> tuple[str, ...]:
        """The active metrics, in table order."""
        optional = (("lpips", self.lpips), ("fid", self.fid_features), ("swd", self.swd))
        return DISTORTION + tuple(name for name, part in optional if part is not None) + ("data_consistency",)

    def _per_image(self) -> tuple[str, ...]:
        """The per-image measures averaged by each method's accumulator."""
        return DISTORTION + (("lpips",) if self.lpips is not None else ()) + ("data_consistency",)

    def _method(self, name: str, device: torch.device) -> MethodMetrics:
        """The accumulators of method `name`, created on `device` on first use."""
        if not name or "." in name:
            raise ValueError(f"method names must be non-empty and contain no '.', got {name!r}")
        if name not in self.methods:
            self.methods[name] = MethodMetrics(self._per_image(), self.fid_features, self.swd).to(device)
        return self.methods[name]

    @torch.no_grad()
    def update(self, name: str, pred: Tensor, target: Tensor, measured_pred: Tensor | None = None,
               measurement: Tensor | None = None, image_names: Sequence[str] | None = None) -> None:
        """Accumulate a batch of outputs of method `name` against targets; with `measured_pred` = A_1(x0_hat)
        and `measurement` = y also the data consistency ||A_1(x0_hat) - y||; `image_names` make the patch SWD
        independent of batching (each image its own patch positions)."""
        check_pair(pred, target)
        if (measured_pred is None) != (measurement is None):
            raise ValueError("data consistency needs both measured_pred (A_1(x0_hat)) and measurement (y)")
        pred, target = clip01(pred), clip01(target)
        values = {"psnr": psnr(pred, target), "ssim": ssim(pred, target), "mse": mse(pred, target)}
        if self.lpips is not None:
            values["lpips"] = self.lpips(to_rgb(pred), to_rgb(target), normalize=True).flatten()
        if measured_pred is not None:
            values["data_consistency"] = data_consistency(measured_pred, measurement)
        self._method(name, pred.device).update(pred, target, values, image_names)

    def compute(self) -> dict[str, dict[str, float]]:
        """Per method (sorted by name, the same order on every rank), the value of every active metric."""
        return {name: self.methods[name].compute() for name in sorted(self.methods)}

    def reset(self) -> None:
        """Forget every method's accumulated state."""
        self.methods.clear()


def _load(factory: Callable[[], nn.Module], missing: list[MissingWeightsError],
          num_features: int | None = None) -> FrozenNetwork | None:
    """The network `factory` builds as a FrozenNetwork, or None (recording the error) when its weights are missing."""
    try:
        return FrozenNetwork(factory(), num_features)
    except MissingWeightsError as error:
        missing.append(error)
        return None


def _status(setting: str | None, active: bool) -> str:
    """A notes entry: the setting, "off" when disabled, or the setting marked not computed when weights are missing."""
    if not setting:
        return "off"
    return str(setting) if active else f"{setting} (weights missing, not computed)"
