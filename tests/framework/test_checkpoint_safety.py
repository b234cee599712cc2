"""A checkpoint is data (issue 33): the crafted files of the issue, built here from real checkpoints with benign
payloads (a victim file truncated, a marker file created), are refused before anything is built, read or written;
archives are checked before torch.load; a fuzzed stored config gives a CheckpointError or a module, nothing else."""

from __future__ import annotations

import copy
import os
import pathlib
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dirac.checkpoints import BUILDABLE, LIMIT_ENV, RECORDED, archive, build, load_checkpoint, module_from_checkpoint
from dirac.checkpoints import save_checkpoint
from dirac.checkpoints.stored import buildable
from dirac.data.source import ImageSource
from dirac.errors import CheckpointError
from dirac.methods.base import Method
from dirac.pipeline import model_config
from dirac.reporting import save_png
from tests.framework.conftest import CONF, TINY, compose_config

ROOT = Path(__file__).resolve().parents[2]
INCEPTION = "weights-inception-2015-12-05-6726825d.pth"


def saved_checkpoint(root: Path, overrides: list[str], name: str) -> tuple[Path, dict]:
    """An untrained checkpoint of the composed config written by save_checkpoint, and its contents."""
    cfg = compose_config(overrides, root / name)
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    module.run_config = model_config(cfg)
    path = save_checkpoint(module, root / f"{name}.ckpt")
    return path, torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def dirac_ckpt(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny Dirac checkpoint (the quickstart's operators)."""
    return saved_checkpoint(tmp_path_factory.mktemp("dirac"), TINY, "dirac")


@pytest.fixture(scope="module")
def denoiser_ckpt(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny denoiser checkpoint (denoiser_embedded at 16 px), what compress and decompress load."""
    return saved_checkpoint(tmp_path_factory.mktemp("denoiser"), [
        "experiment=denoiser_embedded", "data.image_size=16", "net.model_channels=8", "net.attn_resolutions=[]"],
        "denoiser")


def crafted(saved: tuple[Path, dict], path: Path, edit) -> Path:
    """A copy of a saved checkpoint with `edit(config)` applied to its stored config, written to `path`."""
    checkpoint = copy.deepcopy(saved[1])
    edit(checkpoint["dirac"]["config"])
    torch.save(checkpoint, path)
    return path


class Touch:
    """Pickles to `Path(marker).touch()`: what a full (weights_only=False) unpickling of the file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def victim(tmp_path: Path) -> Path:
    """A file an attack would truncate."""
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


def tuple_attacks(target: Path) -> dict[str, object]:
    """The issue's tuple payloads (a file truncation instead of a shell command) and an interpolation in a tuple."""
    return {"write_text": ({"_target_": "pathlib.Path.write_text", "self": str(target), "data": ""},),
            "open_args": ({"_target_": "builtins.open", "_args_": [str(target), "w"]},),
            "interpolation": ("${oc.env:HOME}",)}


@pytest.mark.parametrize("attack", ["write_text", "open_args", "interpolation"])
def test_a_tuple_anywhere_in_the_stored_config_is_refused_naming_its_place(dirac_ckpt, tmp_path, attack):
    target = victim(tmp_path)
    path = crafted(dirac_ckpt, tmp_path / "tuple.ckpt",
                   lambda config: config["model"]["net"].update(channel_mult=tuple_attacks(target)[attack]))
    with pytest.raises(CheckpointError, match=r"tuple.*config\.model\.net\.channel_mult"):
        module_from_checkpoint(load_checkpoint(path))
    assert target.read_text() == "precious"


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", bytearray(b"x"), torch.zeros(2), 1j])
def test_only_dicts_lists_and_scalars_may_be_stored(dirac_ckpt, tmp_path, value):
    checkpoint = copy.deepcopy(dirac_ckpt[1])
    checkpoint["dirac"]["config"]["model"]["val_seed"] = value
    with pytest.raises(CheckpointError, match=r"config\.model\.val_seed"):
        module_from_checkpoint(checkpoint)


@pytest.mark.parametrize("target", ["dirac.metrics.suite.MetricSuite", "dirac.metrics.MetricSuite",
                                    "dirac.data.EmbeddedSource", "dirac.denoisers.loading.load_denoiser",
                                    "dirac.denoisers.loading.SharedDenoiser", "dirac.data.FolderSource"])
def test_classes_that_read_files_are_not_buildable(dirac_ckpt, tmp_path, target):
    """The issue's MetricSuite attack: a folder whose Inception weights file would touch a marker when unpickled."""
    weights, marker = tmp_path / "weights", tmp_path / "marker"
    weights.mkdir()
    (weights / INCEPTION).write_bytes(pickle.dumps(Touch(marker)))
    path = crafted(dirac_ckpt, tmp_path / "reader.ckpt", lambda config: config["model"].update(
        loss={"_target_": target, "weights_dir": str(weights), "root": str(weights), "path": str(weights)}))
    with pytest.raises(CheckpointError, match=target.replace(".", r"\.")):
        module_from_checkpoint(load_checkpoint(path))
    assert not marker.exists()


@pytest.mark.parametrize("target", [["os.system"], {"a": 1}, 3, None])
def test_a_target_that_is_not_a_string_is_a_checkpoint_error(dirac_ckpt, target):
    checkpoint = copy.deepcopy(dirac_ckpt[1])
    checkpoint["dirac"]["config"]["model"]["loss"]["_target_"] = target
    with pytest.raises(CheckpointError, match="asks to build"):
        module_from_checkpoint(checkpoint)


@pytest.mark.parametrize("key", ["_args_", "_recursive_", "_convert_"])
def test_hydra_special_keys_other_than_partial_are_refused(dirac_ckpt, key):
    checkpoint = copy.deepcopy(dirac_ckpt[1])
    checkpoint["dirac"]["config"]["model"]["loss"][key] = [1.0]
    with pytest.raises(CheckpointError, match=f"special key.*{key}"):
        module_from_checkpoint(checkpoint)


def test_interpolations_in_keys_are_refused(dirac_ckpt):
    checkpoint = copy.deepcopy(dirac_ckpt[1])
    checkpoint["dirac"]["config"]["data"]["${oc.env:HOME}"] = 1
    with pytest.raises(CheckpointError, match="interpolation"):
        module_from_checkpoint(checkpoint)


def rewritten(source: Path, path: Path, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None,
              deflate: bool = False) -> Path:
    """A copy of a torch checkpoint archive with entries replaced (matched by name suffix) or added."""
    with zipfile.ZipFile(source) as archive_in:
        entries = {info.filename: archive_in.read(info) for info in archive_in.infolist()}
    prefix = next(iter(entries)).split("/")[0]
    for suffix, data in (replace or {}).items():
        name = next(name for name in entries if name.endswith(suffix))
        entries[name] = data
    entries.update({f"{prefix}/{name}": data for name, data in (add or {}).items()})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as archive_out:
        for name, data in entries.items():
            archive_out.writestr(name, data)
    return path


def test_a_200000_deep_nesting_is_refused_without_recursion(dirac_ckpt, tmp_path):
    placeholder = "PLACEHOLDER"
    path = crafted(dirac_ckpt, tmp_path / "plain.ckpt", lambda config: config["model"].update(val_seed=placeholder))
    with zipfile.ZipFile(path) as archive_in:
        pickled = next(archive_in.read(name) for name in archive_in.namelist() if name.endswith("data.pkl"))
    depth = 200_000
    nested = pickled.replace(b"X" + len(placeholder).to_bytes(4, "little") + placeholder.encode(),
                             b"]" * depth + b"a" * (depth - 1))
    deep = rewritten(path, tmp_path / "deep.ckpt", replace={"data.pkl": nested})
    assert deep.stat().st_size - path.stat().st_size < 500_000  # the 400 KB of nesting
    with pytest.raises(CheckpointError, match="deeper than"):
        load_checkpoint(deep)


def test_a_deep_format_1_config_is_refused_by_the_upgrade_without_recursion(dirac_ckpt):
    deep: list = []
    for _ in range(200_000):
        deep = [deep]
    metadata = {"config": {"model": {"net": deep}}, "stops": {}, "signature": {}}
    with pytest.raises(CheckpointError, match="deeper than"):
        module_from_checkpoint({"state_dict": dirac_ckpt[1]["state_dict"], "dirac": metadata})


def test_a_deflate_bomb_is_refused_before_torch_load(dirac_ckpt, tmp_path, monkeypatch):
    bomb = rewritten(dirac_ckpt[0], tmp_path / "bomb.ckpt", add={"data/999": bytes(64 << 20)}, deflate=True)
    assert bomb.stat().st_size < dirac_ckpt[0].stat().st_size + (1 << 20)  # 64 MiB in under 1 MiB more
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load read a decompression bomb"))
    with pytest.raises(CheckpointError, match="decompression bomb"):
        load_checkpoint(bomb)


def test_the_size_limit_is_stated_and_overridable(dirac_ckpt, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "1e-6")  # about 1 KiB
    with pytest.raises(CheckpointError, match=f"above the 0.00 GiB limit.*{LIMIT_ENV}"):
        load_checkpoint(dirac_ckpt[0])
    monkeypatch.setenv(LIMIT_ENV, "lots")
    with pytest.raises(CheckpointError, match="not a number"):
        load_checkpoint(dirac_ckpt[0])
    monkeypatch.setenv(LIMIT_ENV, "16")
    assert load_checkpoint(dirac_ckpt[0])["dirac"]["family"] == "dirac"


def test_an_archive_with_too_many_entries_is_refused(dirac_ckpt, monkeypatch):
    monkeypatch.setattr(archive, "MAX_ENTRIES", 3)
    with pytest.raises(CheckpointError, match="archive entries"):
        load_checkpoint(dirac_ckpt[0])


@pytest.mark.parametrize("metadata", [
    {"config": [], "stops": {}, "signature": {}},
    {"config": {}, "stops": [0.5], "signature": {}},
    {"config": {}, "stops": {"do": "half"}, "calibrated": ["do"], "signature": {}},
    {"config": {}, "stops": {}, "calibrated": "do", "signature": {}},
    {"family": 3, "format_version": 2, "config": {}, "signature": {}, "calibration": {}},
    {"family": "dirac", "format_version": 2, "config": {}, "signature": {}, "calibration": {"dirac_do": 0.5}},
    {"family": "dirac", "format_version": "2", "config": {}, "signature": {}, "calibration": {}},
])
def test_malformed_metadata_is_a_checkpoint_error(dirac_ckpt, metadata):
    with pytest.raises(CheckpointError):
        module_from_checkpoint({"state_dict": dirac_ckpt[1]["state_dict"], "dirac": metadata})


def test_a_schedule_path_is_never_read_the_signature_holds_its_knots(dirac_ckpt, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-LINE of a private file\n")
    path = crafted(dirac_ckpt, tmp_path / "schedule.ckpt",
                   lambda config: config["model"]["degradation"].update(schedule=str(secret)))
    module = module_from_checkpoint(load_checkpoint(path))  # the recorded knots replace the path: nothing is read
    reference = module_from_checkpoint(load_checkpoint(dirac_ckpt[0]))
    assert torch.equal(module.degradation.schedule.c_knots, reference.degradation.schedule.c_knots)
    checkpoint = copy.deepcopy(torch.load(path, weights_only=True))
    checkpoint["dirac"]["signature"]["degradation"]["schedule"] = {"kind": "linear", "c_min": 0.0, "c_max": 1.0}
    with pytest.raises(CheckpointError, match="names a file") as refused:
        module_from_checkpoint(checkpoint)
    assert "SECRET" not in str(refused.value)


def test_a_run_with_a_schedule_file_stores_its_knots_not_its_path(tmp_path):
    from dirac.degradations.schedules import default_blur_schedule

    schedule = tmp_path / "my_schedule.txt"
    default_blur_schedule().save(schedule)
    stored = model_config(compose_config([*TINY, f"degradation.schedule={schedule}"], tmp_path / "run"))
    node = stored["model"]["degradation"]["schedule"]
    assert node["_target_"] == "dirac.degradations.schedules.TabulatedSeverity"
    assert node["c_knots"] == default_blur_schedule().c_knots.tolist() and str(schedule) not in str(stored)


ENTRY_POINTS = {
    "restore": lambda ckpt, data, out: ["dirac.restore", f"ckpt={ckpt}", f"input={data}", f"output={out}"],
    "compress": lambda ckpt, data, out: ["dirac.compress", f"ckpt={ckpt}", f"input={data}", f"output={out}"],
    "decompress": lambda ckpt, data, out: ["dirac.decompress", f"ckpt={ckpt}", f"input={data}", f"output={out}"],
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_the_tuple_checkpoint_and_touches_nothing(dirac_ckpt, denoiser_ckpt, tmp_path,
                                                                            entry):
    target = victim(tmp_path)
    saved = dirac_ckpt if entry == "restore" else denoiser_ckpt
    ckpt = crafted(saved, tmp_path / "tuple.ckpt",
                   lambda config: config["model"]["net"].update(channel_mult=tuple_attacks(target)["write_text"]))
    data = tmp_path / "in"
    if entry == "decompress":
        data.mkdir()
        (data / "y.drc").write_bytes(b"DRC")
    else:
        save_png(torch.rand(3, 16, 16), data / "y.png")
    done = subprocess.run([sys.executable, "-m", *ENTRY_POINTS[entry](ckpt, data, tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1 and "refused" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert target.read_text() == "precious" and not (tmp_path / "out").exists()


def conf_targets(*groups: str) -> set[str]:
    """Every `_target_` named in the yaml files of these config groups."""
    import yaml

    def targets(node):
        if isinstance(node, dict):
            yield from ([node["_target_"]] if isinstance(node.get("_target_"), str) else [])
            for value in node.values():
                yield from targets(value)
        elif isinstance(node, list):
            for value in node:
                yield from targets(value)

    return {target for group in groups for path in (CONF / group).rglob("*.yaml")
            for target in targets(yaml.safe_load(path.read_text()))}


def test_the_allowlists_cover_every_config_group_and_name_no_reader():
    """Registry: each class a method config can name is buildable, each data class recorded; nothing buildable is a
    data source, data module, metric suite or loader."""
    import lightning as L

    method_groups = ("method", "net", "degradation", "noise", "loss", "severity", "sampler", "generator",
                     "discriminator", "prior", "chain", "lr_schedule", "epoch_schedule")
    assert conf_targets(*method_groups) - {"dirac.tasks.CurveSpec"} <= BUILDABLE
    assert conf_targets("data") <= RECORDED
    for name in BUILDABLE:
        cls = buildable(name, "test")
        assert isinstance(cls, type) and not issubclass(cls, ImageSource | L.LightningDataModule), name
        assert not cls.__module__.startswith(("dirac.metrics", "dirac.data", "dirac.denoisers.loading")), name


def test_no_constructor_reachable_from_a_checkpoint_opens_a_file(dirac_ckpt, denoiser_ckpt, monkeypatch):
    """Rebuilding a method from its stored config opens no file outside the dirac package (its own resources)."""
    import builtins
    import io

    import dirac

    package, opened, real_open = Path(dirac.__file__).resolve().parent, [], io.open

    def recording_open(file, *args, **kwargs):
        if not isinstance(file, int) and package not in Path(os.fspath(file)).resolve().parents:
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    monkeypatch.setattr(io, "open", recording_open)
    for saved in (dirac_ckpt, denoiser_ckpt):
        assert isinstance(build(saved[1]["dirac"]["config"]["model"]), Method)
    assert opened == []


@pytest.mark.parametrize("part", ["degradation", "noise", "loss", "sampler_do"])
def test_a_stored_dirac_config_missing_a_part_is_a_checkpoint_error_naming_it(dirac_ckpt, part):
    """Found by the fuzzer below: `noise: null` built a module that failed later with an AttributeError."""
    checkpoint = copy.deepcopy(dirac_ckpt[1])
    checkpoint["dirac"]["config"]["model"][part] = None
    with pytest.raises(CheckpointError, match=f"{part} must be a"):
        module_from_checkpoint(checkpoint)


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | st.binary(max_size=4)
    | st.sampled_from(["${oc.env:HOME}", "_target_", "dirac.nets.NCSNpp", "pathlib.Path.write_text"]),
    lambda children: (st.lists(children, max_size=3) | st.tuples(children, children)
                      | st.frozensets(st.integers(), max_size=2).map(set)
                      | st.dictionaries(st.sampled_from(["_target_", "_partial_", "_args_", "self", "data", "x"]),
                                        children, max_size=3)
                      | st.fixed_dictionaries({"_target_": st.sampled_from(sorted(BUILDABLE) + [
                          "pathlib.Path.write_text", "builtins.open", "dirac.metrics.suite.MetricSuite"]),
                          "self": st.just("VICTIM"), "data": st.just("")})),
    max_leaves=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(junk=JUNK, place=st.integers(min_value=0, max_value=10_000), mode=st.sampled_from(["replace", "add"]))
def test_a_fuzzed_stored_config_gives_a_checkpoint_error_or_a_module_and_no_side_effect(dirac_ckpt, tmp_path, junk,
                                                                                         place, mode):
    target = tmp_path / "VICTIM"
    target.write_text("precious")
    checkpoint = copy.deepcopy(dirac_ckpt[1])
    config = checkpoint["dirac"]["config"]
    containers = list(_containers(config["model"]))
    container, key = containers[place % len(containers)]
    junk = _with_victim(junk, str(target))
    if mode == "add" and isinstance(container, dict):
        container[f"extra{place % 3}"] = junk
    else:
        container[key] = junk
    before = sorted(os.listdir(tmp_path))
    try:
        module = module_from_checkpoint(checkpoint)
    except CheckpointError:
        pass
    else:
        assert isinstance(module, Method)
    assert target.read_text() == "precious" and sorted(os.listdir(tmp_path)) == before


def _containers(node):
    """(container, key) of every value below a dict/list config node."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        yield node, key
        if isinstance(value, dict | list):
            yield from _containers(value)


def _with_victim(value, path: str):
    """The junk with its "VICTIM" placeholders pointing at the victim file."""
    if value == "VICTIM":
        return path
    if isinstance(value, dict):
        return {key: _with_victim(item, path) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_with_victim(item, path) for item in value)
    return value
