"""The compression task's rates and precision (issue 34 items 2 and 4d-f): files written under a bf16-mixed trainer
decode through `dirac.decompress` bit for bit to the task's own reconstructions; payload-only bpp beside file bpp;
target-bpp rates by `Codec.encode`'s rule; JPEG matched to an RCC file never larger than it (n/a instead)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from dirac.compression import Codec
from dirac.compression.bitstream import HEADER
from dirac.decompress import decode_file
from dirac.methods.base import Method
from dirac.tasks.compression import CompressionEvaluation
from tests.compression.conftest import tiny_edm
from tests.tasks.test_compression_task import CHUNKING, LADDER, FourCrops, GaussianMethod, make_task

pytestmark = pytest.mark.usefixtures("one_thread")


class NetworkMethod(Method):
    """A method whose denoiser is an (untrained) tiny EDM network: convolutions that bf16 autocast would change."""

    family = "denoiser"

    def __init__(self) -> None:
        super().__init__()
        self.denoiser = tiny_edm()


def evaluate(task, method: Method, data, out: Path, precision: str = "32-true") -> dict:
    trainer = L.Trainer(accelerator="cpu", precision=precision, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    return task.evaluate(method, trainer, data, out)


def test_files_written_under_bf16_mixed_decode_bit_for_bit_through_the_cli(tmp_path: Path, monkeypatch):
    outputs: dict[str, torch.Tensor] = {}
    add = CompressionEvaluation._add

    def record(self, row, output, x0, names, **extras):
        outputs.update({f"{row}/{name}": image.clone() for name, image in zip(names, output)})
        add(self, row, output, x0, names, **extras)

    monkeypatch.setattr(CompressionEvaluation, "_add", record)
    method, task = NetworkMethod(), make_task(steps=(2, 4), ode_steps=3, jpeg_qualities=())
    evaluate(task, method, FourCrops(2), tmp_path, precision="bf16-mixed")
    codec = Codec(method.denoiser, channels=3, image_size=16)  # as decompress() builds it from the checkpoint
    for item in FourCrops(2).items[:2]:
        name = Path(item["name"]).stem
        for k in (2, 4):
            images = decode_file(codec, tmp_path / "files" / f"{name}_k{k:02d}.drc", name, [1.0, 2.0], True,
                                 task.ode_steps, task.kappa, None)
            for row, image in zip((f"rcc_k{k:02d}_rho100", f"rcc_k{k:02d}_rho200", f"rcc_k{k:02d}_mmse"), images):
                assert torch.equal(outputs[f"{row}/{item['name']}"], image), (row, name)


def test_payload_bpp_target_bpp_rows_and_jpeg_never_above_the_rcc_file(tmp_path: Path):
    task = make_task(steps=(2,), bpps=(6.0, 30.0), jpeg_qualities=(10, 50))
    results = evaluate(task, GaussianMethod(), FourCrops(4), tmp_path)
    for rate in ("k02", "b0600", "b3000"):  # 16 px: the 38-byte header is 1.19 bpp
        row = results[f"rcc_{rate}_mmse"]
        assert row["payload_bpp"] == pytest.approx(row["bpp"] - 8 * HEADER.size / 256, rel=1e-9)
    codec = Codec(GaussianMethod().denoiser, LADDER, CHUNKING)
    for target, rate in ((6.0, "b0600"), (30.0, "b3000")):  # the files are Codec.encode(bpp=...)'s, within the target
        encodings = [codec.encode(item["image"], bpp=target) for item in FourCrops(4).items]
        for item, encoding in zip(FourCrops(4).items, encodings):
            assert (tmp_path / "files" / f"{Path(item['name']).stem}_{rate}.drc").read_bytes() == encoding.data
            assert 8 * len(encoding.data) / 256 <= target
        assert results[f"rcc_{rate}_rho100"]["steps"] == pytest.approx(sum(len(e.kl_bits) for e in encodings) / 4)
    assert results["rcc_b3000_mmse"]["psnr"] > results["rcc_b0600_mmse"]["psnr"]
    # at 6 bpp (192 bytes) no JPEG of a 16 px crop fits: n/a, not the lowest quality above the budget
    assert results["jpeg_at_b0600"] == {"matched": 0.0}
    fitted = results["jpeg_at_b3000"]  # at 30 bpp every image has one, no larger than its RCC file
    assert fitted["matched"] == 1.0 and fitted["bpp"] <= results["rcc_b3000_mmse"]["bpp"] and "psnr" in fitted
    assert "n/a" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="task.bpps"):
        make_task(bpps=(0.0,))
    with pytest.raises(ValueError, match="no rate"):
        make_task(steps=(), bpps=())
