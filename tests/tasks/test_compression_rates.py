"""The compression task's rates, precision and bad input (issues 34 items 2 and 4d-f, 31): files written under a
bf16-mixed trainer decode through `dirac.decompress` bit for bit to the task's own reconstructions; payload-only bpp
beside file bpp; target-bpp rates by `Codec.encode`'s rule, a target below the first step or above the whole ladder
skipped by name (n/a); JPEG matched to an RCC file never larger than it (n/a instead); images the network refuses
skipped by name, another denoiser's file an error naming it, nothing written half."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from dirac.compression import Codec, CodecError, header_bytes
from dirac.compression.files import write_bytes
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
    evaluate(task, method, FourCrops(1), tmp_path, precision="bf16-mixed")  # one per batch, as decompress
    codec = Codec(method.denoiser, channels=3, size_multiple=4)  # as decompress() builds it from the checkpoint
    for item in FourCrops(1).items[:2]:
        name = Path(item["name"]).stem
        for k in (2, 4):
            images = decode_file(codec, tmp_path / "files" / f"{name}_k{k:02d}.drc", name, [1.0, 2.0], True,
                                 task.ode_steps, task.kappa, None)
            for row, image in zip((f"rcc_k{k:02d}_rho100", f"rcc_k{k:02d}_rho200", f"rcc_k{k:02d}_mmse"), images):
                assert torch.equal(outputs[f"{row}/{item['name']}"], image), (row, name)


def test_payload_bpp_target_bpp_rows_and_jpeg_never_above_the_rcc_file(tmp_path: Path):
    task = make_task(steps=(2,), bpps=(6.0, 12.0), jpeg_qualities=(10, 50, 90))
    results = evaluate(task, GaussianMethod(), FourCrops(4), tmp_path)
    for rate in ("k02", "b0600", "b1200"):  # payload-only: without each file's own header
        row, files = results[f"rcc_{rate}_mmse"], sorted((tmp_path / "files").glob(f"*_{rate}.drc"))
        header = np.mean([header_bytes(path.read_bytes()) for path in files])
        assert len(files) == 4 and row["payload_bpp"] == pytest.approx(row["bpp"] - 8 * header / 256, rel=1e-9)
    codec = Codec(GaussianMethod().denoiser, LADDER, CHUNKING)
    for target, rate in ((6.0, "b0600"), (12.0, "b1200")):  # the files are Codec.encode(bpp=...)'s, within the target
        encodings = [codec.encode(item["image"], bpp=target) for item in FourCrops(4).items]
        for item, encoding in zip(FourCrops(4).items, encodings):
            assert (tmp_path / "files" / f"{Path(item['name']).stem}_{rate}.drc").read_bytes() == encoding.data
            assert 8 * len(encoding.data) / 256 <= target
        assert results[f"rcc_{rate}_rho100"]["steps"] == pytest.approx(sum(len(e.kl_bits) for e in encodings) / 4)
        assert results[f"rcc_{rate}_mmse"]["reached"] == 1.0
    assert results["rcc_b1200_mmse"]["psnr"] > results["rcc_b0600_mmse"]["psnr"]
    # at 6 bpp (192 bytes) no JPEG of a 16 px crop fits: n/a, not the lowest quality above the budget
    assert results["jpeg_at_b0600"] == {"matched": 0.0}
    fitted = results["jpeg_at_b1200"]  # at 12 bpp: no larger than the RCC files where every image has one
    assert (fitted["matched"] == 1.0 and fitted["bpp"] <= results["rcc_b1200_mmse"]["bpp"] and "psnr" in fitted) or \
        (fitted["matched"] < 1 and set(fitted) == {"matched"})
    assert "n/a" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="task.bpps"):
        make_task(bpps=(0.0,))
    with pytest.raises(ValueError, match="no rate"):
        make_task(steps=(), bpps=())


def test_targets_below_the_first_step_or_above_the_whole_ladder_are_skipped_by_name(tmp_path: Path, caplog):
    # 16 px crops: the .drc header alone is over 0.5 bpp; the 6-step ladder stops near 14 bpp
    task = make_task(steps=(), bpps=(0.5, 6.0, 40.0), jpeg_qualities=())
    with caplog.at_level("WARNING", logger="dirac.tasks.compression"):
        results = evaluate(task, GaussianMethod(), FourCrops(4), tmp_path)
    for rate in ("b0050", "b4000"):  # n/a, only the fraction of images that reached the target
        assert all(results[f"rcc_{rate}_{decoder}"] == {"reached": 0.0} for decoder in ("rho100", "rho200", "mmse"))
        assert not list((tmp_path / "files").glob(f"*_{rate}.drc"))
    assert results["rcc_b0600_mmse"]["reached"] == 1.0 and "psnr" in results["rcc_b0600_mmse"]
    messages = [record.getMessage() for record in caplog.records]
    assert any("crop_0.png: no file at 0.5 bpp (crop_0_b0050.drc): one step already takes" in m for m in messages)
    assert any("crop_3.png: no file at 40 bpp (crop_3_b4000.drc): the whole ladder (6 steps) takes" in m
               for m in messages)
    table = (tmp_path / "results.md").read_text()
    assert "| rcc_b0050_mmse | n/a |" in table and "reached" in table


def test_images_the_network_refuses_are_skipped_by_name_before_anything_is_written(tmp_path: Path):
    folder = tmp_path / "photos"  # the tiny network halves once: sides must be even
    folder.mkdir()
    for name, (height, width) in {"fine.png": (16, 16), "odd.png": (15, 16), "dot.png": (1, 1)}.items():
        Image.fromarray(np.full((height, width, 3), 120, dtype=np.uint8)).save(folder / name)
    task = make_task(images=str(folder), steps=(2,), ode_steps=2, jpeg_qualities=(50,))
    results = evaluate(task, NetworkMethod(), None, tmp_path / "out")
    assert "psnr" in results["rcc_k02_mmse"] and "psnr" in results["jpeg_q050"]
    assert [path.name for path in (tmp_path / "out" / "files").iterdir()] == ["fine_k02.drc"]
    notes = (tmp_path / "out" / "results.md").read_text()
    assert "odd.png (the model cannot denoise a 3x15x16 image" in notes and "divisible by 2" in notes
    assert "dot.png (the model cannot denoise a 3x1x1 image" in notes
    (folder / "fine.png").unlink()
    with pytest.raises(CodecError, match="no image could be compressed: .*odd.png: .*divisible by 2"):
        evaluate(task, NetworkMethod(), None, tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_a_file_of_another_denoiser_is_an_error_naming_it_and_no_results_are_written(tmp_path: Path, monkeypatch):
    import dirac.tasks.compression as compression

    other = Codec(tiny_edm(seed=1), LADDER, CHUNKING)  # another network's weights: another fingerprint

    def swapped(path: Path, data: bytes) -> Path:  # the file on disk replaced by one the other denoiser made
        return write_bytes(path, other.encode(FourCrops(1).items[0]["image"], steps=2).data)

    monkeypatch.setattr(compression, "write_bytes", swapped)
    with pytest.raises(CodecError, match=r"files/crop_0_k02\.drc: the file was made with another model"):
        evaluate(make_task(steps=(2,), ode_steps=2), NetworkMethod(), FourCrops(1), tmp_path)
    assert not (tmp_path / "results.md").exists() and not (tmp_path / "results.csv").exists()
