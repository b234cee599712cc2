"""`python -m dirac.compress` / `python -m dirac.decompress` (SPEC §3): one .drc per image and bpp.csv from the real
file sizes, one PNG per rho (and MMSE), bad images and foreign files skipped or refused with the codec's own error;
crafted files skipped by name while the rest decode, outputs that collide or replace an input refused up front,
symbolic links in input folders skipped."""

from __future__ import annotations

import csv
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from PIL import Image

from dirac import compress as compress_cli
from dirac import decompress as decompress_cli
from dirac.checkpoints import save_checkpoint
from dirac.compression import Codec, CodecError, Ladder, model_fingerprint, read_header
from dirac.compression.files import read_image
from dirac.compression.model import load_codec_model
from dirac.compress import compress
from dirac.data.source import LINK_SKIPPED
from dirac.decompress import decompress
from dirac.pipeline import model_config
from tests.compression.conftest import flat_payload, forge_file
from tests.framework.conftest import CONF, compose_config

FAST = ["ladder.levels=4", "ladder.sigma_min=0.2", "progress=false", "device=cpu"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """An untrained tiny denoiser.ckpt (the denoiser_embedded config at 16 px: sides must be multiples of 4), two 16x16
    images, a 16x6 one the net cannot halve twice and a file that is no image."""
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
    Image.fromarray(pixels[:6]).save(images / "small.png")
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
    assert "16x6 pixels but the model needs sides that are multiples of 4" in report.skipped["small.png"]
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


@contextmanager
def address_space_limit(extra: int):
    """Allow this process only `extra` bytes more address space than it has (Linux), restoring the limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture
def one_file(workspace, tmp_path):
    """The bytes of a real 4-step .drc file of a.png (default chunking: 2^12 candidates, chunk KL 8; format 2)."""
    ckpt, images, _ = workspace
    compress(ckpt, images / "a.png", tmp_path / "one", ladder=Ladder(2.0, 0.2, 4), progress=False, device="cpu")
    return (tmp_path / "one" / "a.drc").read_bytes()


@pytest.fixture(scope="module")
def fingerprint(workspace):
    """The workspace model's fingerprint (what a forged file's checksum must cover)."""
    return model_fingerprint(load_codec_model(workspace[0]).denoiser)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads its address space size from /proc")
def test_crafted_files_are_skipped_by_name_and_the_valid_file_after_them_is_decoded(workspace, one_file, fingerprint,
                                                                                     tmp_path):
    """The issue's bombs, each built from a real file with its CRC fixed: a block of 2^20 candidates x 768 dims
    (3 GiB), 65,535 steps (one denoiser call each), both as format-1 files (format 2 cannot hold them), and
    sigma_max = 65504 (format 2's largest); decoded with 1 GiB more address space than the process has, so a block
    that is drawn fails at once instead of filling the machine's memory."""
    ckpt, _, _ = workspace
    folder = tmp_path / "in"
    folder.mkdir()
    crafted = {"0_memory.drc": forge_file(one_file, fingerprint, flat_payload(1, 2**20, 20, 768), chunk_kl=20, pad=0,
                                          max_log2=20, block_log2=20, steps=1, version=1),
               "1_steps.drc": forge_file(one_file, fingerprint, flat_payload(2**16 - 1, 1024, 8, 768),
                                         levels=2**16 - 1, steps=2**16 - 1, version=1),
               "2_sigma.drc": forge_file(one_file, fingerprint, sigma_max=65504.0), "3_valid.drc": one_file}
    for name, data in crafted.items():
        (folder / name).write_bytes(data)
    start = time.perf_counter()
    with address_space_limit(2**30):
        report = decompress(ckpt, folder, tmp_path / "out", ode_steps=2, progress=False, device="cpu")
    assert time.perf_counter() - start < 60
    assert list(report.written) == ["3_valid.drc"] and (tmp_path / "out" / "3_valid_rho1.png").is_file()
    assert sorted(report.skipped) == ["0_memory.drc", "1_steps.drc", "2_sigma.drc"]
    assert all(message.startswith(name) for name, message in report.skipped.items())
    assert "above the limit" in report.skipped["0_memory.drc"]
    assert "2..1024 levels" in report.skipped["1_steps.drc"]
    assert "sigma_max=65504" in report.skipped["2_sigma.drc"]


def test_any_decoder_failure_of_one_file_names_it_and_the_run_goes_on(workspace, one_file, fingerprint, tmp_path,
                                                                      monkeypatch):
    """A MemoryError or RuntimeError (a CUDA out-of-memory) inside the decoder of one file is that file's CodecError."""
    ckpt, _, _ = workspace
    folder = tmp_path / "in"
    folder.mkdir()
    for seed, name in enumerate(["ok.drc", "out_of_memory.drc", "runtime.drc"]):
        (folder / name).write_bytes(forge_file(one_file, fingerprint, seed=seed))
    failures = {1: MemoryError(), 2: RuntimeError("CUDA out of memory (simulated)")}
    decode_noisy = Codec.decode_noisy

    def failing(codec, data, steps=None):
        seed = read_header(data)[0].seed
        if seed in failures:
            raise failures[seed]
        return decode_noisy(codec, data, steps)

    monkeypatch.setattr(Codec, "decode_noisy", failing)
    report = decompress(ckpt, folder, tmp_path / "out", ode_steps=2, progress=False, device="cpu")
    assert list(report.written) == ["ok.drc"]
    assert report.skipped == {"out_of_memory.drc": "out_of_memory.drc: MemoryError while decoding",
                              "runtime.drc": "runtime.drc: RuntimeError while decoding: CUDA out of memory (simulated)"}


def test_outputs_that_collide_or_replace_an_input_are_refused_before_anything_is_written(workspace, one_file,
                                                                                         tmp_path):
    ckpt, images, _ = workspace
    image = Image.open(images / "a.png")
    for names in (["a.png", "a.jpg"], ["b.png", "B.png"]):
        folder = tmp_path / names[0]
        folder.mkdir()
        for name in names:
            image.save(folder / name, format="PNG")
        first, second = sorted(names)
        with pytest.raises(CodecError, match=f"{first} and .*{second} would both be written to .*case-insensitively"):
            compress(ckpt, folder, tmp_path / "out", progress=False, device="cpu")
    drc = tmp_path / "drc"
    drc.mkdir()
    for name in ("a.drc", "a.DRC"):
        (drc / name).write_bytes(one_file)
    with pytest.raises(CodecError, match=r"a.DRC and .*a.drc would both be written to .*a_rho1.png"):
        decompress(ckpt, drc, tmp_path / "out", progress=False, device="cpu")
    assert not (tmp_path / "out").exists()
    photo = tmp_path / "dir" / "photo.drc"  # an image under a .drc name: its output would be itself
    photo.parent.mkdir()
    image.save(photo, format="PNG")
    before = photo.read_bytes()
    with pytest.raises(CodecError, match="over the input file .*photo.drc"):
        compress(ckpt, photo, photo.parent, progress=False, device="cpu")
    assert photo.read_bytes() == before and sorted(photo.parent.iterdir()) == [photo]


def test_symbolic_links_in_input_folders_are_skipped_and_named(workspace, one_file, tmp_path, caplog):
    ckpt, images, _ = workspace
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes((images / "a.png").read_bytes())
    (folder / "link.png").symlink_to(images / "sub" / "b.png")
    (folder / "linked").symlink_to(images / "sub", target_is_directory=True)
    out = tmp_path / "drc"
    report = compress(ckpt, folder, out, ladder=Ladder(2.0, 0.2, 4), progress=False, device="cpu")
    assert [row["file"] for row in report.rows] == ["a.png"] and sorted(report.skipped) == ["link.png", "linked"]
    assert sorted(path.name for path in out.rglob("*.drc")) == ["a.drc"]
    assert "link.png" in caplog.text and "linked" in caplog.text
    (out / "elsewhere.drc").symlink_to(folder / "a.png")
    decoded = decompress(ckpt, out, tmp_path / "png", ode_steps=2, progress=False, device="cpu")
    assert list(decoded.written) == ["a.drc"] and decoded.skipped == {"elsewhere.drc": LINK_SKIPPED}


def test_an_image_of_another_size_than_the_training_patches_round_trips(workspace):
    """The denoiser is convolutional: a 24x32 image (sides multiples of 4, not the 16 px it trained on) is encoded and
    decoded by the CLI's model at its own size, never resized."""
    ckpt, _, root = workspace
    (root / "wide").mkdir()
    pixels = (torch.rand(24, 32, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(root / "wide" / "w.png")
    report = compress(ckpt, root / "wide", root / "wide_drc", steps=2, ladder=Ladder(2.0, 0.2, 4), progress=False,
                      device="cpu")
    assert [row["file"] for row in report.rows] == ["w.png"] and not report.skipped
    decompress(ckpt, root / "wide_drc", root / "wide_png", rho=[1.0], ode_steps=2, progress=False, device="cpu")
    assert read_image(root / "wide_png" / "w_rho1.png").shape == (3, 24, 32)
