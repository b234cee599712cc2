"""The compression task (issue 18 item 5): real .drc files per rate whose sizes are the reported bpp, prefix files equal
to direct encodings, rates and decoders ordered as the theory says, JPEG on the same images (matched within the RCC
file size), results that do not depend on the batch size, curves written; and the rcc_embedded pipeline end to end
(train a tiny denoiser briefly, evaluate, re-evaluate its checkpoint with mode=test)."""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from dirac.compression import Chunking, Codec, Ladder
from dirac.denoisers import GaussianDenoiser
from dirac.methods.base import Method
from dirac.metrics import MetricSuite
from dirac.data.embedded import photo
from dirac.reporting.files import read_csv
from dirac.data import PhotoCrops
from dirac.tasks.compression import CompressionTask, pillow_roundtrip
from tests.tasks.test_restoration import CropData

STEPS, LADDER, CHUNKING = (3, 6), Ladder(2.0, 0.05, 6), Chunking(6, 2)


pytestmark = pytest.mark.usefixtures("one_thread")


class GaussianMethod(Method):
    """A method whose denoiser is the exact one of N(0.5, 0.05 I): decoding at rho = 2 equals Tweedie's MMSE."""

    family = "denoiser"

    def __init__(self) -> None:
        super().__init__()
        self.denoiser = GaussianDenoiser(0.5, 0.05)


def make_task(**options) -> CompressionTask:
    metrics = partial(MetricSuite, lpips_net=None, fid=False, swd_projections=32, swd_patches_per_image=32)
    settings = dict(steps=STEPS, rhos=(1.0, 2.0), ladder=LADDER, chunking=CHUNKING, ode_steps=16,
                    jpeg_qualities=(10, 50, 90), save_images=1)
    return CompressionTask(metrics, **{**settings, **options})


def evaluate(task: CompressionTask, data, out: Path) -> dict:
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return task.evaluate(GaussianMethod(), trainer, data, out)


class FourCrops(CropData):
    """The first four named 16 px crops."""

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size)
        self.items = self.items[:4]


def test_files_rates_decoders_and_jpeg_on_the_gaussian_model(tmp_path: Path):
    task = make_task()
    task.check(GaussianMethod())
    results = evaluate(task, FourCrops(4), tmp_path / "four")
    names = [item["name"] for item in FourCrops(4).items]
    for k in STEPS:  # the reported bpp is the mean over the files on disk, every byte counted
        sizes = [(tmp_path / "four" / "files" / f"{Path(n).stem}_k{k:02d}.drc").stat().st_size for n in names]
        assert results[f"rcc_k{k:02d}_mmse"]["bpp"] == pytest.approx(np.mean([8 * s / 256 for s in sizes]), rel=1e-9)
    image = FourCrops(4).items[0]["image"]
    direct = Codec(GaussianDenoiser(0.5, 0.05), LADDER, CHUNKING).encode(image, steps=3).data
    assert (tmp_path / "four" / "files" / "crop_0_k03.drc").read_bytes() == direct  # a prefix is the 3-step encoding
    low, high = results["rcc_k03_mmse"], results["rcc_k06_mmse"]
    assert high["bpp"] > low["bpp"] and high["psnr"] > low["psnr"] + 1.0
    for k in STEPS:  # exact Gaussian denoiser: the rho = 2 ODE is the MMSE estimate; rho = 1 trades PSNR for realism
        assert results[f"rcc_k{k:02d}_rho200"]["psnr"] == pytest.approx(results[f"rcc_k{k:02d}_mmse"]["psnr"], abs=0.1)
        assert results[f"rcc_k{k:02d}_rho100"]["psnr"] < results[f"rcc_k{k:02d}_mmse"]["psnr"]
        assert results[f"rcc_k{k:02d}_rho100"]["encode_seconds"] > 0
        assert results[f"rcc_k{k:02d}_rho100"]["decode_seconds"] > 0
        matched = results[f"jpeg_at_k{k:02d}"]  # never a JPEG above the RCC file: n/a (only `matched`) instead
        assert (matched["matched"] == 1 and matched["bpp"] <= results[f"rcc_k{k:02d}_mmse"]["bpp"]) or \
            (matched["matched"] < 1 and set(matched) == {"matched"})
    jpeg = [results[f"jpeg_q{q:03d}"] for q in (10, 50, 90)]
    assert [row["bpp"] for row in jpeg] == sorted(row["bpp"] for row in jpeg)
    assert [row["psnr"] for row in jpeg] == sorted(row["psnr"] for row in jpeg)
    one = evaluate(make_task(), FourCrops(1), tmp_path / "one")  # batch size 1: the same numbers
    for row, values in results.items():
        for metric, value in values.items():
            if not metric.endswith("seconds"):
                assert one[row][metric] == pytest.approx(value, rel=1e-6, abs=1e-9), (row, metric)
    with open(tmp_path / "four" / "rd_curve.csv", newline="") as handle:
        points = list(csv.DictReader(handle))
    assert {point["method"] for point in points} == {row for row, values in results.items() if "psnr" in values} and \
        {"RCC rho=1", "RCC MMSE", "JPEG"} <= {point["rd_series"] for point in points}
    for name in ("rd_curve.png", "dp_curve.png", "dp_curve.csv", "results.md", "images/crop_0.png"):
        assert (tmp_path / "four" / name).stat().st_size > 0
    assert "rcc_k06_rho100" in (tmp_path / "four" / "results.md").read_text()


def test_a_folder_of_full_size_images_of_any_shape(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (12, 20), dtype=np.uint8)).save(folder / "wide.png")   # grey, 20x12
    Image.fromarray(rng.integers(0, 255, (24, 8), dtype=np.uint8)).save(folder / "tall.png")    # grey, 8x24
    (folder / "notes.txt").write_text("not an image")
    results = evaluate(make_task(images=str(folder), steps=(2,), jpeg_qualities=(50,)), None, tmp_path / "out")
    assert (tmp_path / "out" / "files" / "wide_k02.drc").is_file()
    assert (tmp_path / "out" / "files" / "tall_k02.drc").is_file()
    assert {"rcc_k02_mmse", "jpeg_q050", "jpeg_at_k02"} <= set(results)
    with pytest.raises(FileNotFoundError, match="task.images=.*missing"):
        evaluate(make_task(images=str(tmp_path / "missing")), None, tmp_path / "bad")


def test_jpeg_roundtrip_and_misfits_refused():
    ramp = torch.linspace(0, 1, 16)
    image = torch.stack([ramp[None, :].expand(16, 16), ramp[:, None].expand(16, 16), 0.5 * torch.ones(16, 16)])
    decoded, size = pillow_roundtrip(image, "jpeg", 90)
    assert decoded.shape == image.shape and size > 100 and float((decoded - image).abs().max()) < 0.05
    grey, _ = pillow_roundtrip(image[:1], "jpeg", 90)
    assert grey.shape == (1, 16, 16) and float((grey - image[:1]).abs().max()) < 0.05
    with pytest.raises(ValueError, match="JPEG takes 1- or 3-channel"):
        pillow_roundtrip(torch.rand(2, 8, 8), "jpeg", 50)
    with pytest.raises(ValueError, match="needs a method with a denoiser"):
        make_task().check(Method())
    with pytest.raises(ValueError, match=r"task.steps .* 1..6"):
        make_task(steps=(7,))
    with pytest.raises(ValueError, match="jpeg_qualities"):
        make_task(jpeg_qualities=(0,))
    with pytest.raises(ValueError, match=r"webp_qualities must lie in 0..100"):
        make_task(webp_qualities=(101,))
    crops = PhotoCrops(["chelsea"], 16, 1, downscale=8)
    with pytest.raises(ValueError, match="distinct non-empty names"):
        make_task(image_sets=[crops, crops])
    with pytest.raises(ValueError, match="task.images .* or task.image_sets, not both"):
        make_task(image_sets=[crops], images="photos")


def test_photo_crops_at_native_resolution_spread_over_each_photograph():
    crops = PhotoCrops(["chelsea", "coffee"], 64, 3)  # chelsea 451x300: a 4x7 grid of 64 px crops; coffee 600x400: 6x9
    assert crops.name == "64px" and len(crops) == 6
    assert crops.names[:3] == ["chelsea_64px_r00_c00", "chelsea_64px_r02_c00", "chelsea_64px_r03_c06"]
    assert crops.names[3:] == ["coffee_64px_r00_c00", "coffee_64px_r02_c08", "coffee_64px_r05_c08"]
    item = crops[1]  # the photograph's own pixels at rows 128..191, columns 0..63
    assert torch.equal(item["image"], photo("chelsea", 1.0)[:, 128:192, 0:64]) and item["name"] == crops.names[1]
    assert len(PhotoCrops(["chelsea", "coffee"], 256, 5)) == 1 + 2  # all there are when fewer than asked
    with pytest.raises(ValueError, match="no 512 px crop fits"):
        PhotoCrops(["chelsea"], 512, 1)
    with pytest.raises(ValueError, match="embedded photographs"):
        PhotoCrops(["lena"], 64, 1)


def test_image_sets_webp_and_bd_rates_against_jpeg_and_webp(tmp_path: Path):
    sets = [PhotoCrops(["chelsea", "coffee"], 16, 2, downscale=4), PhotoCrops(["coffee"], 32, 1, downscale=4)]
    task = make_task(steps=(2, 3, 4, 5, 6), rhos=(1.0,), jpeg_qualities=(10, 50, 90), webp_qualities=(0, 50, 90),
                     image_sets=sets, batch_size=2, monitor="rcc_k06_mmse@32px/psnr")
    results = evaluate(task, None, tmp_path)
    assert task.monitored(results) == results["rcc_k06_mmse@32px"]["psnr"]
    for images, pixels in (("16px", 256), ("32px", 1024)):
        webp = [results[f"webp_q{q:03d}@{images}"] for q in (0, 50, 90)]
        assert [row["bpp"] for row in webp] == sorted(row["bpp"] for row in webp)
        assert results[f"rcc_k06_mmse@{images}"]["bpp"] > results[f"rcc_k02_mmse@{images}"]["bpp"]
    assert len(list((tmp_path / "files").glob("*.drc"))) == 5 * (4 + 1)
    assert (tmp_path / "files" / "coffee_32px_r00_c00_k04.drc").is_file()
    points = read_csv(tmp_path / "rd_curve.csv")
    assert {(p["images"], p["rd_series"]) for p in points} >= {("16px", "WebP"), ("32px", "JPEG"), ("32px", "RCC MMSE")}
    rates = read_csv(tmp_path / "bd_rate.csv")  # every RCC series against JPEG and WebP on each image set
    assert {(r["images"], r["test"], r["reference"]) for r in rates} == \
        {(i, t, r) for i in ("16px", "32px") for t in ("RCC rho=1", "RCC MMSE") for r in ("JPEG", "WebP")}
    assert all(r["bd_rate_percent"] or r["note"] for r in rates)  # a number, or n/a with the reason
    assert "BD-rate" in (tmp_path / "bd_rate.md").read_text() and (tmp_path / "rd_curve.png").stat().st_size > 0


def test_rcc_embedded_trains_briefly_evaluates_and_mode_test_reproduces_it(tmp_path: Path):
    from dirac.pipeline import run
    from tests.framework.conftest import compose_config

    tiny = ["experiment=rcc_embedded", "logger=csv", "metrics=offline", "data.image_size=16", "data.batch_size=4",
            "data.eval_batch_size=2", "trainer.max_steps=2", "trainer.val_check_interval=2",
            "+trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
            "callbacks.model_checkpoint.every_n_train_steps=2", "task.steps=[2,3]", "task.ladder.levels=4",
            "task.ladder.sigma_min=0.2", "task.chunking.chunk_kl=6", "task.ode_steps=3", "task.rhos=[1,2]",
            "task.jpeg_qualities=[20,80]", "task.webp_qualities=[50]", "metrics.swd_projections=16",
            "metrics.swd_patches_per_image=16", "task.bpps=[]", "task.batch_size=2",
            "task.image_sets=[{_target_:dirac.data.PhotoCrops,photos:[chelsea,coffee],size:16,"
            "per_photo:1,downscale:8}]", "task.monitor=rcc_k03_mmse@16px/psnr"]
    try:
        outcome = run(compose_config(tiny, tmp_path / "outputs" / "train"))
        again = run(compose_config([*tiny, "mode=test", f"ckpt_path={outcome['checkpoint']}"],
                                   tmp_path / "outputs" / "test"))
    finally:
        GlobalHydra.instance().clear()
    assert outcome["checkpoint"].endswith("denoiser.ckpt") and outcome["monitored"] is not None
    for row in ("rcc_k02_rho100@16px", "rcc_k03_mmse@16px", "jpeg_q020@16px", "webp_q050@16px"):
        assert again["results"][row]["psnr"] == pytest.approx(outcome["results"][row]["psnr"], abs=1e-4), row
        assert again["results"][row]["bpp"] == outcome["results"][row]["bpp"], row
    assert again["results"]["jpeg_at_k03@16px"] == outcome["results"]["jpeg_at_k03@16px"]  # n/a: no JPEG that small
    assert len(list((tmp_path / "outputs" / "test" / "files").glob("*.drc"))) == 2 * 2
