"""Checkpoints are data, never code (issue 15): an allowlist over the whole stored config, one loader for every
family, format 1 upgraded, clear errors for foreign, other-family and other-format files."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from dirac.checkpoints import load_checkpoint, module_from_checkpoint, save_checkpoint
from dirac.errors import CheckpointError
from dirac.methods.dirac import DiracModule
from dirac.pipeline import model_config
from dirac.reporting import save_png
from tests.framework.conftest import TINY, compose_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict]:
    """An untrained tiny Dirac checkpoint written by `save_checkpoint`, and its loaded contents."""
    root = tmp_path_factory.mktemp("checkpoints")
    cfg = compose_config(TINY, root / "run")
    module = instantiate(cfg.model)
    module.run_config = model_config(cfg)
    module.tune("dirac_do", "stop_t", 0.75)
    path = save_checkpoint(module, root / "dirac.ckpt")
    return path, torch.load(path, weights_only=True)


def write(path: Path, checkpoint: dict) -> Path:
    torch.save(checkpoint, path)
    return path


def crafted(saved, tmp_path: Path, victim: Path, place: str) -> Path:
    """The saved checkpoint with a call of `pathlib.Path.write_text` on `victim` hidden at `place` of its config."""
    checkpoint = copy.deepcopy(saved[1])
    attack = {"_target_": "pathlib.Path.write_text", "self": str(victim), "data": ""}
    config = checkpoint["dirac"]["config"]
    if place == "net":
        config["model"]["net"]["channel_mult"] = [attack]
    elif place == "optimizer":
        config["model"]["optimizer"] = {**attack, "_partial_": True}
    else:  # an unused part of the stored config: refused all the same
        config["data"]["source"]["extra"] = [{"nested": attack}]
    return write(tmp_path / f"crafted_{place}.ckpt", checkpoint)


def test_save_and_load_round_trip_with_the_family_format_and_calibration(saved):
    path, _ = saved
    checkpoint = load_checkpoint(path, family="dirac")
    module = module_from_checkpoint(checkpoint)
    assert isinstance(module, DiracModule) and checkpoint["dirac"]["format_version"] == 2
    assert module.restorers()["dirac_do"].params["stop_t"] == 0.75
    assert all(torch.equal(module.state_dict()[key], value) for key, value in checkpoint["state_dict"].items())


@pytest.mark.parametrize("place", ["net", "optimizer", "data"])
def test_a_target_outside_the_allowlist_anywhere_is_refused_without_side_effects(saved, tmp_path, place):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = crafted(saved, tmp_path, victim, place)
    with pytest.raises(CheckpointError, match="pathlib.Path.write_text"):
        module_from_checkpoint(load_checkpoint(path))
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("target", ["dirac.reporting.files.write_text", "dirac.reporting.files.Path", "os.system",
                                    "dirac.nonexistent.Thing"])
def test_only_dirac_classes_may_be_built(saved, tmp_path, target):
    """A dirac function, a class a dirac module merely imports, an outside callable: all refused by name."""
    checkpoint = copy.deepcopy(saved[1])
    checkpoint["dirac"]["config"]["model"]["loss"]["_target_"] = target
    with pytest.raises(CheckpointError, match=target.replace(".", r"\.")):
        load_checkpoint(write(tmp_path / "bad.ckpt", checkpoint))


def test_interpolations_in_a_stored_config_are_refused(saved, tmp_path):
    checkpoint = copy.deepcopy(saved[1])
    checkpoint["dirac"]["config"]["model"]["val_seed"] = "${oc.env:HOME}"
    with pytest.raises(CheckpointError, match="interpolation"):
        load_checkpoint(write(tmp_path / "interp.ckpt", checkpoint))


def test_dirac_restore_refuses_a_crafted_checkpoint_and_touches_nothing(saved, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = crafted(saved, tmp_path, victim, "net")
    save_png(torch.rand(3, 32, 32), tmp_path / "in" / "y.png")
    done = subprocess.run([sys.executable, "-m", "dirac.restore", f"ckpt={path}", f"input={tmp_path / 'in'}",
                           f"output={tmp_path / 'out'}"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1 and "refused" in done.stderr and "Traceback" not in done.stderr
    assert victim.read_text() == "precious" and not (tmp_path / "out").exists()


def test_other_families_and_format_versions_get_clear_errors(saved, tmp_path):
    checkpoint = copy.deepcopy(saved[1])
    checkpoint["dirac"]["family"] = "rgm"
    other = write(tmp_path / "rgm.ckpt", checkpoint)
    with pytest.raises(CheckpointError, match="'rgm' checkpoint, but a 'dirac' checkpoint is needed"):
        load_checkpoint(other, family="dirac")
    with pytest.raises(CheckpointError, match="is a .rgm. checkpoint"):
        DiracModule.on_load_checkpoint(module_from_checkpoint(load_checkpoint(saved[0])), load_checkpoint(other))
    checkpoint["dirac"]["format_version"] = 3
    with pytest.raises(CheckpointError, match="format version 3 is not supported"):
        load_checkpoint(write(tmp_path / "v3.ckpt", checkpoint))


def test_a_format_1_checkpoint_of_the_previous_main_still_loads(saved, tmp_path):
    """Format 1 (before methods and tasks were split): model at dirac.models.DiracModule with evaluation settings,
    stops and calibrated presets beside the signature."""
    new = saved[1]
    config = copy.deepcopy(new["dirac"]["config"])
    config["model"].update({"_target_": "dirac.models.DiracModule", "metrics": {"_target_": "dirac.metrics.MetricSuite",
                            "_partial_": True}, "curve_every": 1, "val_images": 4, "save_images": None, "eval_seed": 3})
    del config["model"]["val_seed"]
    config["loss"]["_target_"] = config["model"]["loss"]["_target_"] = "dirac.models.LookAheadLoss"
    old = {"state_dict": new["state_dict"], "dirac": {"config": config, "stops": {"do": 0.6, "po": 0.25},
                                                      "calibrated": ["do"], "signature": new["dirac"]["signature"]}}
    module = module_from_checkpoint(load_checkpoint(write(tmp_path / "v1.ckpt", old)))
    assert module.calibration == {"dirac_do": {"stop_t": 0.6}} and module.val_seed == 3
    assert module.restorers()["dirac_do"].params["stop_t"] == 0.6


def retargeted(value, old: str, new: str) -> tuple[object, int]:
    """A copy of a stored config with every `_target_` `old` renamed `new`, and how many were renamed."""
    if isinstance(value, list):
        pairs = [retargeted(item, old, new) for item in value]
        return [item for item, _ in pairs], sum(count for _, count in pairs)
    if not isinstance(value, dict):
        return value, 0
    pairs = {key: retargeted(item, old, new) for key, item in value.items()}
    out = {key: item for key, (item, _) in pairs.items()}
    hits = sum(count for _, count in pairs.values())
    if out.get("_target_") == old:
        out["_target_"], hits = new, hits + 1
    return out, hits


def test_a_checkpoint_written_before_the_samplers_restorers_split_loads_upgraded(saved, tmp_path):
    """Issue 32: checkpoints name the Dirac sampler's settings `dirac.samplers.DiracSampler` (model.sampler_do/po and
    the sampler group); the explicit old -> new map renames them on load, as data, before the allowlist check."""
    checkpoint = copy.deepcopy(saved[1])
    config, renamed = retargeted(checkpoint["dirac"]["config"], "dirac.restorers.DiracSampler",
                                 "dirac.samplers.DiracSampler")
    assert renamed == 4  # model.sampler_do, model.sampler_po, sampler.do, sampler.po
    checkpoint["dirac"]["config"] = config
    module = module_from_checkpoint(load_checkpoint(write(tmp_path / "before_32.ckpt", checkpoint)))
    expected = module_from_checkpoint(load_checkpoint(saved[0]))
    assert module.samplers == expected.samplers and module.calibration == {"dirac_do": {"stop_t": 0.75}}
    assert retargeted(module.metadata()["config"], "dirac.samplers.DiracSampler", "x")[1] == 0
    assert module.restorers()["dirac_do"].params["stop_t"] == 0.75


def test_moved_names_outside_the_map_are_still_refused(saved, tmp_path):
    """Only the mapped name is upgraded: another old path (never buildable) is refused as before."""
    checkpoint = copy.deepcopy(saved[1])
    checkpoint["dirac"]["config"]["model"]["sampler_do"]["_target_"] = "dirac.samplers.reverse.DiracSampler"
    with pytest.raises(CheckpointError, match="dirac.samplers.reverse.DiracSampler"):
        load_checkpoint(write(tmp_path / "unmapped.ckpt", checkpoint))


def test_truncated_and_foreign_files_get_clear_errors(saved, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(saved[0].read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated, corrupted"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="not written by dirac"):
        load_checkpoint(write(tmp_path / "foreign.ckpt", {"weights": torch.zeros(2)}))
