"""`python -m dirac.compress` / `python -m dirac.decompress` (SPEC §3): one .drc per image and bpp.csv from the real
file sizes, one PNG per rho (and MMSE), bad images and foreign files skipped or refused with the codec's own error."""

from __future__ import annotations

import csv

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from PIL import Image

from dirac import compress as compress_cli
from dirac import decompress as decompress_cli
from dirac.checkpoints import save_checkpoint
from dirac.compression import CodecError, Ladder
from dirac.compression.files import read_image
from dirac.compress import compress
from dirac.decompress import decompress
from dirac.pipeline import model_config
from tests.framework.conftest import CONF, compose_config

FAST = ["ladder.levels=4", "ladder.sigma_min=0.2", "progress=false", "device=cpu"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """An untrained tiny denoiser.ckpt (the denoiser_embedded config at 16 px), two 16x16 images and a bad one."""
    root = tmp_path_factory.mktemp("rcc_cli")
    cfg = compose_config(["experiment=denoiser_embedded", "data.image_size=16", "net.model_channels=8",
                          "net.attn_resolutions=[]"], root / "run")
    torch.manual_seed(0)
    method = instantiate(cfg.model)
    method.run_config = model_config(cfg)
    ckpt = save_checkpoint(method, root / "denoiser.ckpt")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for name in ("a.png", "sub/b.png"):
        pixels = (torch.rand(16, 16, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(images / name)
    Image.fromarray(pixels[:8]).save(images / "small.png")
    (images / "notes.txt").write_text("not an image")
    return ckpt, images, root


def run_main(module, args: list[str]) -> None:
    """Call an entry point's main in-process on its root config composed with command-line overrides."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(module.__name__.rsplit(".", 1)[-1], overrides=args)
    module.main(cfg)


def test_compress_then_decompress_round_trip(workspace):
    ckpt, images, root = workspace
    out, decoded = root / "drc", root / "png"
    run_main(compress_cli, [f"ckpt={ckpt}", f"input={images}", f"output={out}", *FAST])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.drc")) == ["a.drc", "sub/b.drc"]
    rows = list(csv.DictReader((out / "bpp.csv").open()))
    for row in rows:
        size = (out / row["file"]).with_suffix(".drc").stat().st_size
        assert int(row["bytes"]) == size and float(row["bpp"]) == pytest.approx(8 * size / 256, rel=1e-5)
    assert not list(out.rglob(".*"))  # no temporary files left
    run_main(decompress_cli, [f"ckpt={ckpt}", f"input={out}", f"output={decoded}", "rho=[1,2]", "mmse=true",
                              "ode_steps=2", "progress=false", "device=cpu"])
    assert sorted(p.relative_to(decoded).as_posix() for p in decoded.rglob("*.png")) == [
        "a_mmse.png", "a_rho1.png", "a_rho2.png", "sub/b_mmse.png", "sub/b_rho1.png", "sub/b_rho2.png"]
    assert read_image(decoded / "a_rho1.png").shape == (3, 16, 16)


def test_bpp_target_and_skipped_files(workspace):
    ckpt, images, root = workspace
    report = compress(ckpt, images, root / "bpp", bpp=1.8, ladder=Ladder(2.0, 0.05, 8), progress=False, device="cpu")
    assert set(report.skipped) == {"small.png", "notes.txt"}
    assert "16x8 pixels but the model takes 16x16" in report.skipped["small.png"]
    assert "not a readable image" in report.skipped["notes.txt"]
    assert all(float(row["bpp"]) <= 1.8 for row in report.rows)


def test_user_errors_print_alone_and_exit_1(workspace, capsys):
    ckpt, images, root = workspace
    with pytest.raises(SystemExit) as exit_info:
        run_main(compress_cli, [f"ckpt={root / 'missing.ckpt'}", f"input={images}", f"output={root / 'x'}", *FAST])
    assert exit_info.value.code == 1 and "error: cannot use the model" in capsys.readouterr().err
    with pytest.raises(CodecError, match="could be decoded"):
        decompress(ckpt, images / "notes.txt", root / "y", progress=False, device="cpu")
    with pytest.raises(CodecError, match="either bpp= or steps="):
        compress(ckpt, images, root / "z", bpp=1.0, steps=2)
