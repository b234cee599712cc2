"""Using a trained checkpoint on one's own images: evaluating a folder (mode=test) and restoring measurements."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from dirac.checkpoints import load_checkpoint, module_from_checkpoint
from dirac.data.embedded import patches, photo
from dirac.data.transforms import read_rgb, to_float
from dirac.pipeline import run
from dirac.reporting import save_png
from dirac.restore import main, output_names, read_measurement, restore
from tests.framework.conftest import CONF, TINY, compose_config

SIZE = 32
# A small net on a small folder: what these tests check does not need a good model, only a real checkpoint.
SMALL = ["net.model_channels=16", "data=folder", f"data.image_size={SIZE}", "data.num_workers=0", "data.batch_size=4"]


def natural_patches(name: str, count: int, size: int = SIZE, downscale: float = 4.0) -> torch.Tensor:
    """`count` textured `size` x `size` crops of a scikit-image photograph, in [0, 1]."""
    tiles, _ = patches(photo(name, downscale), size)
    return tiles[tiles.flatten(1).std(dim=1) > 0.05][:count]


def write_pngs(folder: Path, images: torch.Tensor, names: list[str]) -> list[Path]:
    return [save_png(image, folder / name) for image, name in zip(images, names)]


def train_folder(root: Path) -> Path:
    """train/, val/ and test/ subfolders of natural crops (none from the photographs the tests restore)."""
    photos = {"train": ("astronaut", "hubble_deep_field", "immunohistochemistry", "retina"), "val": ("rocket",),
              "test": ("rocket",)}
    for split, names in photos.items():
        for name in names:
            images = natural_patches(name, 8 if split == "train" else 2)
            write_pngs(root / split, images, [f"{name}_{index}.png" for index in range(len(images))])
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def restore_config(*overrides: str):
    """The composed `python -m dirac.restore` config."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("restore", overrides=list(overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A checkpoint of a 12-step tiny training run on a small folder, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("restore")
    data = train_folder(root / "data")
    cfg = compose_config([*TINY, *SMALL, f"data.root={data}", "trainer.max_steps=12"], root / "outputs" / "train")
    outcome = run(cfg)
    GlobalHydra.instance().clear()
    return Path(outcome["checkpoint"])


@pytest.fixture(scope="module")
def module(trained):
    return module_from_checkpoint(load_checkpoint(trained)).eval()


@pytest.fixture
def measurements(module, tmp_path) -> Path:
    """A folder of measurements y = A_1(x0) + sigma_1 z of natural crops, made with the model's own operators and
    saved as PNGs: two RGB (one in a subfolder) and one 8-bit grayscale."""
    x0 = torch.cat([natural_patches("chelsea", 2), natural_patches("coffee", 1)])
    generator = torch.Generator().manual_seed(3)
    y = module.degrade(x0, torch.ones(len(x0)), generator).clamp(0.0, 1.0)
    folder = tmp_path / "measurements"
    write_pngs(folder, y[:2], ["cat.png", "sub/cat_2.png"])
    gray = (y[2].mean(dim=0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(gray, mode="L").save(folder / "coffee_gray.png")
    return folder


def test_module_from_checkpoint_carries_weights_operators_and_stops(trained, module):
    checkpoint = load_checkpoint(trained)
    assert module.calibration == checkpoint["dirac"]["calibration"]
    assert module.restorers()["dirac_do"].params["stop_t"] == checkpoint["dirac"]["calibration"]["dirac_do"]["stop_t"]
    assert module.signature() == checkpoint["dirac"]["signature"]
    state = module.state_dict()
    assert all(torch.equal(state[key], value) for key, value in checkpoint["state_dict"].items())


def test_evaluating_a_folder_writes_results_grids_and_names_unusable_files(trained, tmp_path):
    folder = tmp_path / "photos"
    write_pngs(folder, torch.cat([natural_patches("chelsea", 2), natural_patches("coffee", 1)]),
               ["cat_0.png", "cat_1.png", "sub/coffee.png"])
    save_png(natural_patches("coffee", 1, size=48)[0][:, :40], folder / "larger.png")  # cropped and resized to 32
    (folder / "notes.txt").write_text("not an image")
    cfg = compose_config([*TINY, *SMALL, "mode=test", f"ckpt_path={trained}", f"data.root={folder}"], tmp_path / "eval")
    with pytest.warns(UserWarning, match="notes.txt"):
        outcome = run(cfg)
    assert set(outcome["results"]) == {"measurement", "dirac_do", "dirac_po"}
    out = tmp_path / "eval"
    assert {row["method"] for row in read_rows(out / "results.csv")} == {"measurement", "dirac_do", "dirac_po"}
    assert "dirac_do" in (out / "results.md").read_text()
    grids = sorted(path.name for path in (out / "images").glob("*.png"))
    assert grids == ["cat_0.png", "cat_1.png", "larger.png", "sub__coffee.png"]
    assert (out / "pd_curve.csv").is_file()


def test_restore_round_trip_writes_one_png_per_measurement_and_its_data_consistency(trained, module, measurements,
                                                                                   tmp_path):
    folder = measurements
    output = tmp_path / "restored"
    main(restore_config(f"ckpt={trained}", f"input={folder}", f"output={output}", "batch_size=2", "progress=false"))
    names = sorted(path.relative_to(output).as_posix() for path in output.rglob("*.png"))
    assert names == ["cat.png", "coffee_gray.png", "sub/cat_2.png"]
    rows = {row["file"]: float(row["data_consistency"]) for row in read_rows(output / "data_consistency.csv")}
    assert sorted(rows) == names
    for name in names:
        restored = to_float(read_rgb(output / name))[None]
        y = read_measurement(folder / name, module.degradation.channels, SIZE)[None]
        assert restored.shape == (1, 3, SIZE, SIZE) and 0.0 <= restored.min() and restored.max() <= 1.0
        # the table's ||A_1(x0_hat) - y|| recomputed from the written 8-bit PNG (quantisation moves it by < 0.1)
        recomputed = (module.degradation.apply(restored, torch.ones(1)) - y).norm()
        assert float(recomputed) == pytest.approx(rows[name], abs=0.1)


def test_restore_is_reproducible_and_the_stop_time_matters(trained, module, measurements, tmp_path):
    folder = measurements
    first = restore(trained, folder / "cat.png", tmp_path / "a", progress=False)
    again = restore(trained, folder / "cat.png", tmp_path / "b", progress=False)
    other_stop = 0.0 if module.restorers()["dirac_do"].params["stop_t"] > 0.5 else 1.0
    other = restore(trained, folder / "cat.png", tmp_path / "c", stop_t=other_stop, progress=False)
    assert first.consistency == again.consistency and list(first.consistency) == ["cat.png"]
    assert (tmp_path / "a" / "cat.png").read_bytes() == (tmp_path / "b" / "cat.png").read_bytes()
    assert (tmp_path / "a" / "cat.png").read_bytes() != (tmp_path / "c" / "cat.png").read_bytes()
    assert other.consistency != first.consistency
    with pytest.raises(ValueError, match="unknown restorer 'mmse'.*dirac_do, dirac_po"):
        restore(trained, folder, tmp_path / "d", preset="mmse")


def test_an_images_restoration_does_not_depend_on_its_batch(trained, measurements, tmp_path):
    """Each image draws its reverse-process noise from a generator seeded by the seed and its name."""
    together = restore(trained, measurements, tmp_path / "together", preset="po", stop_t=0.0, batch_size=3,
                       progress=False)
    alone = restore(trained, measurements / "cat.png", tmp_path / "alone", preset="po", stop_t=0.0, progress=False)
    assert alone.consistency["cat.png"] == pytest.approx(together.consistency["cat.png"], abs=1e-5)
    assert (tmp_path / "alone" / "cat.png").read_bytes() == (tmp_path / "together" / "cat.png").read_bytes()
    reseeded = restore(trained, measurements / "cat.png", tmp_path / "seed1", preset="po", stop_t=0.0, seed=1,
                       progress=False)
    assert reseeded.consistency["cat.png"] != alone.consistency["cat.png"]


def test_wrong_size_and_undecodable_images_are_named_and_skipped_while_the_rest_are_restored(trained, measurements,
                                                                                             tmp_path, caplog):
    folder = measurements
    save_png(torch.rand(3, 40, SIZE), folder / "wrong.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    output = tmp_path / "restored"
    report = restore(trained, folder, output, progress=False)
    assert set(report.skipped) == {"wrong.png", "broken.png"}
    assert "32x40" in report.skipped["wrong.png"] and "32x32" in report.skipped["wrong.png"]
    assert "wrong.png" in caplog.text and "broken.png" in caplog.text
    assert sorted(report.consistency) == ["cat.png", "coffee_gray.png", "sub/cat_2.png"]
    assert not (output / "wrong.png").exists() and (output / "cat.png").is_file()


def test_bad_checkpoints_fail_clearly_and_leave_earlier_outputs_unchanged(trained, measurements, tmp_path, capsys):
    folder = measurements
    output = tmp_path / "restored"
    restore(trained, folder / "cat.png", output, progress=False)
    (output / "mine.txt").write_text("kept")
    before = snapshot(output)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained.read_bytes()[:50_000])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(SystemExit) as exit_info:  # a user error: its message alone, exit status 1
        main(restore_config(f"ckpt={foreign}", f"input={folder}", f"output={output}"))
    assert exit_info.value.code == 1 and "not written by dirac" in capsys.readouterr().err
    command = [sys.executable, "-m", "dirac.restore", f"ckpt={truncated}", f"input={folder}", f"output={output}"]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert finished.returncode != 0 and "truncated, corrupted" in finished.stderr
    assert snapshot(output) == before


def test_missing_input_and_clashing_output_names_are_refused(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        restore(trained, tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(ValueError, match="a.png and .*a.jpg would both be written to .*a.png"):
        output_names([tmp_path / "a.png", tmp_path / "a.jpg"], tmp_path, tmp_path / "out")
    (tmp_path / "in").mkdir()
    with pytest.raises(ValueError, match="replace"):
        restore(trained, tmp_path / "in", tmp_path / "in")
    assert not (tmp_path / "out").exists()


def test_case_insensitive_clashes_are_refused_and_symbolic_links_skipped(trained, measurements, tmp_path, caplog):
    """Cat.png and cat.png are one file on a case-insensitive file system: refused before anything is written. A
    linked file or folder inside the input folder (here pointing outside it) is never followed, and is named."""
    folder = measurements
    (folder / "Cat.png").write_bytes((folder / "cat.png").read_bytes())
    with pytest.raises(ValueError, match=r"Cat.png and .*cat.png would both be written to .*case-insensitively"):
        restore(trained, folder, tmp_path / "clash", progress=False)
    assert not (tmp_path / "clash").exists()
    (folder / "Cat.png").unlink()
    elsewhere = tmp_path / "elsewhere"
    save_png(torch.rand(3, SIZE, SIZE), elsewhere / "secret.png")
    (folder / "linked.png").symlink_to(elsewhere / "secret.png")
    (folder / "linked_folder").symlink_to(elsewhere, target_is_directory=True)
    output = tmp_path / "restored"
    report = restore(trained, folder, output, progress=False)
    assert report.skipped == {"linked.png": "a symbolic link, not followed",
                              "linked_folder": "a symbolic link, not followed"}
    assert "linked.png" in caplog.text and "linked_folder" in caplog.text
    assert sorted(report.consistency) == ["cat.png", "coffee_gray.png", "sub/cat_2.png"]
    assert sorted(path.relative_to(output).as_posix() for path in output.rglob("*.png")) == sorted(report.consistency)


def test_measurements_are_converted_to_the_model_channels_without_resizing(tmp_path):
    rgb = natural_patches("coffee", 1)[0]
    path = save_png(rgb, tmp_path / "rgb.png")
    quantised = to_float(read_rgb(path))
    gray = read_measurement(path, channels=1, image_size=SIZE)
    luma = (quantised * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(dim=0, keepdim=True)
    torch.testing.assert_close(gray, luma)
    assert read_measurement(path, channels=3, image_size=SIZE).equal(quantised)
    with pytest.raises(ValueError, match=r"rgb.png is 32x32 pixels but the model restores 64x64"):
        read_measurement(path, channels=3, image_size=64)


@pytest.mark.slow
def test_a_longer_trained_model_beats_the_measurement_on_a_folder_of_photographs(tmp_path):
    data = train_folder(tmp_path / "data")
    overrides = [*TINY, *SMALL, "model.optimizer.lr=2e-3", "data.batch_size=8"]
    cfg = compose_config([*overrides, f"data.root={data}", "trainer.max_steps=500", "trainer.val_check_interval=500",
                          "callbacks.model_checkpoint.every_n_train_steps=500"], tmp_path / "train")
    checkpoint = run(cfg)["checkpoint"]
    folder = tmp_path / "photos"
    write_pngs(folder, torch.cat([natural_patches("chelsea", 2), natural_patches("coffee", 2)]),
               ["cat_0.png", "cat_1.png", "coffee_0.png", "coffee_1.png"])
    results = run(compose_config([*overrides, "mode=test", f"ckpt_path={checkpoint}", f"data.root={folder}"],
                                 tmp_path / "eval"))["results"]
    assert results["dirac_do"]["psnr"] > results["measurement"]["psnr"] + 0.5
