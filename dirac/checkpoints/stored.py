"""A checkpoint's stored config as a closed data type, and the project's own builder of it (issue 33).

Checked before anything is built: only dict (string keys), list, str, int, float, bool and None, at most MAX_DEPTH
deep and MAX_NODES large, no interpolation anywhere, `_target_` a string naming a class of BUILDABLE (what a method
is made of) or, outside the built `model` part, of RECORDED (data sources, stored for information only), and no
file path where a constructor would read one. Then `build` constructs the `model` part itself: a `_target_` node
becomes its class called with keyword arguments (`_partial_: true` a functools.partial), nothing else. Hydra's
`instantiate` never sees stored data.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator

from dirac.errors import CheckpointError

MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_STRING = 65_536  # characters of one string or key
TARGET, PARTIAL = "_target_", "_partial_"
# Constructor arguments that read a file when given a string: stored configs hold the file's contents instead.
PATH_KEYS = frozenset({"schedule"})
TABULATED = "dirac.degradations.schedules.TabulatedSeverity"
OPTIMISERS = frozenset({"torch.optim.Adam", "torch.optim.AdamW", "torch.optim.SGD", "torch.optim.RAdam",
                        "torch.optim.lr_scheduler.OneCycleLR", "torch.optim.lr_scheduler.CosineAnnealingLR"})
# The method classes a checkpoint's `model` part may be, by family.
METHODS = {"dirac.methods.denoiser.DenoiserModule": "denoiser", "dirac.methods.dirac.DiracModule": "dirac",
           "dirac.methods.rgm.RGMModule": "rgm"}
# The classes a checkpoint may build: methods, their losses, training severities and operator jitter, networks,
# degradations and their schedules, noise schedules, the Dirac sampler's settings, chains and priors. Each constructor
# takes values, never a path.
BUILDABLE = OPTIMISERS | frozenset(METHODS) | frozenset({
    "dirac.methods.dirac.LookAheadLoss", "dirac.methods.dirac.TiltedSeverity", "dirac.methods.dirac.OperatorJitter",
    "dirac.nets.NCSNpp", "dirac.nets.NCSNppGenerator", "dirac.nets.TimeDiscriminator", "dirac.nets.ToyDiscriminator",
    "dirac.nets.ToyGenerator",
    "dirac.degradations.BlockSuperResolution", "dirac.degradations.BoxInpainting", "dirac.degradations.Colorization",
    "dirac.degradations.GaussianBlur", "dirac.degradations.GaussianInpainting", "dirac.degradations.Identity",
    "dirac.degradations.schedules.LinearSeverity", "dirac.degradations.schedules.TabulatedSeverity",
    "dirac.degradations.ConstantNoise", "dirac.degradations.GeometricNoise",
    "dirac.restorers.DiracSampler",
    "dirac.chains.VPChain", "dirac.chains.SRChain", "dirac.chains.NaiveSRChain",
    "dirac.priors.KLDPrior", "dirac.priors.MMDPrior", "dirac.priors.DSWDPrior",
})
# Named in a stored config's `data` part (how the run was fed) but never built from a checkpoint: they read files.
RECORDED = frozenset({
    "dirac.data.ImageDataModule", "dirac.data.SplitDataModule", "dirac.data.ToyDataModule", "dirac.data.Dihedral",
    "dirac.data.Colour", "dirac.data.Chain",
    "dirac.data.EmbeddedSource", "dirac.data.Cifar10Source", "dirac.data.CelebAHQSource", "dirac.data.FFHQSource",
    "dirac.data.ImageNetSource", "dirac.data.FolderSource", "dirac.data.mixed.TrainTestSource",
    "dirac.data.source.KFold",  # a cross-validation fold's split (dirac.cross_validation sets it)
})
SCALARS = (str, int, float, bool, type(None))


def check_stored(config: object, built: str | None = "model") -> None:
    """Refuse (CheckpointError naming the place) a stored config that is not closed data, is too deep or large,
    holds an interpolation, names a class outside the allowlists or a file path; `built` is the part `build` makes
    (None: a part that names no class at all, such as the signature)."""
    if type(config) is not dict:
        raise _refusal("config", f"is a {type(config).__name__}, not a dict")
    for where, node, depth in _walk(config):
        if depth > MAX_DEPTH:
            raise _refusal(where, f"nests deeper than {MAX_DEPTH} levels")
        if type(node) is dict:
            _check_node(node, where, _allowed_targets(where, built))
        elif type(node) is str:
            _check_string(node, where)
        elif type(node) not in SCALARS and type(node) is not list:
            raise _refusal(where, f"holds a {type(node).__name__}; a stored config is only dict, list, str, int, "
                                  "float, bool and None")


def _allowed_targets(where: str, built: str | None) -> frozenset[str]:
    """The `_target_` names a node at `where` may hold: BUILDABLE inside the built part, also RECORDED elsewhere."""
    if built is None:
        return frozenset()
    prefix = f"config.{built}"
    return BUILDABLE if where == prefix or where.startswith((f"{prefix}.", f"{prefix}[")) else BUILDABLE | RECORDED


def _walk(config: object) -> Iterator[tuple[str, object, int]]:
    """(place, node, depth) of every node, depth first without recursion, refusing more than MAX_NODES nodes."""
    stack = [("config", config, 0)]
    for _ in range(MAX_NODES + 1):
        if not stack:
            return
        where, node, depth = stack.pop()
        yield where, node, depth
        if type(node) is dict and depth <= MAX_DEPTH:
            stack.extend((f"{where}.{key}", value, depth + 1) for key, value in node.items() if type(key) is str)
        elif type(node) is list and depth <= MAX_DEPTH:
            stack.extend((f"{where}[{index}]", value, depth + 1) for index, value in enumerate(node))
    raise _refusal("config", f"holds more than {MAX_NODES} values")


def _check_node(node: dict, where: str, allowed: frozenset[str]) -> None:
    """Keys are plain strings (no interpolation, only `_target_`/`_partial_` as special keys); `_target_` is allowed
    for this part; a path key holds no string."""
    for key, value in node.items():
        if type(key) is not str:
            raise _refusal(where, f"has a key of type {type(key).__name__}; keys are strings")
        _check_string(key, f"{where} (a key)")
        if key.startswith("_") and key.endswith("_") and key not in (TARGET, PARTIAL):
            raise _refusal(f"{where}.{key}", "is a special key; a stored config may only use _target_ and _partial_")
        if key in PATH_KEYS and type(value) is str:
            raise _refusal(f"{where}.{key}", f"names a file ({value[:80]!r}); a stored config holds the schedule's "
                                             "values, never a path to read")
    if PARTIAL in node and type(node[PARTIAL]) is not bool:
        raise _refusal(f"{where}.{PARTIAL}", "is not true or false")
    if TARGET in node:
        target = node[TARGET]
        if type(target) is not str or target not in allowed:
            raise CheckpointError(f"the checkpoint's stored config asks to build {target!r} at {where}; only the "
                                  "classes a dirac method is made of (and torch optimisers) may be built from a "
                                  "checkpoint, so it was refused")


def _check_string(text: str, where: str) -> None:
    """A string of bounded length holding no OmegaConf interpolation."""
    if len(text) > MAX_STRING:
        raise _refusal(where, f"holds a string of {len(text)} characters (at most {MAX_STRING})")
    if "${" in text:
        raise _refusal(where, f"holds an interpolation ({text[:80]!r}); stored configs are resolved, so this file "
                              "was not written by dirac")


def _refusal(where: str, problem: str) -> CheckpointError:
    """The CheckpointError of a stored config that `problem` at `where`."""
    return CheckpointError(f"the checkpoint's stored config {problem} (at {where}), so it was refused")


def build(config: object, where: str = "model") -> object:
    """The objects a checked stored config describes: `_target_` nodes built bottom-up as their BUILDABLE class with
    keyword arguments (a partial with `_partial_: true`), dicts and lists rebuilt, scalars as they are."""
    if type(config) is list:
        return [build(value, f"{where}[{index}]") for index, value in enumerate(config)]
    if type(config) is not dict:
        return config
    values = {key: build(value, f"{where}.{key}") for key, value in config.items() if key not in (TARGET, PARTIAL)}
    if TARGET not in config:
        return values
    factory = buildable(config[TARGET], where)
    if config.get(PARTIAL, False):
        return functools.partial(factory, **values)
    try:
        return factory(**values)
    except Exception as error:  # any failure of a constructor on stored values is a problem of the checkpoint
        raise CheckpointError(f"the checkpoint's stored config cannot build {config[TARGET]} at {where}: "
                              f"{type(error).__name__}: {error}") from error


def buildable(target: str, where: str) -> type:
    """The class a BUILDABLE name denotes (imported from its module), or a CheckpointError."""
    if target not in BUILDABLE:
        raise CheckpointError(f"the checkpoint's stored config asks to build {target!r} at {where}, which is not "
                              "one of the classes a checkpoint may build, so it was refused")
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def with_schedule_contents(config: object) -> object:
    """A run's resolved config as a checkpoint stores it: every schedule file path replaced by the file's knots (a
    TabulatedSeverity node), so loading the checkpoint reads no file."""
    return replace_paths(config, _schedule_node)


def replace_paths(config: object, replacement: Callable[[str], dict], depth: int = 0) -> object:
    """A copy of a config with every string under a PATH_KEYS key replaced by `replacement(path)`, down to MAX_DEPTH
    (deeper nesting is left as it is, for `check_stored` to refuse)."""
    if depth > MAX_DEPTH:
        return config
    if type(config) is list:
        return [replace_paths(value, replacement, depth + 1) for value in config]
    if type(config) is not dict:
        return config
    return {key: replacement(value) if key in PATH_KEYS and type(value) is str
            else replace_paths(value, replacement, depth + 1) for key, value in config.items()}


def _schedule_node(path: str) -> dict:
    """The TabulatedSeverity node of the schedule file at `path` (SPEC §1.1 schedules)."""
    from dirac.degradations.schedules import TabulatedSeverity

    schedule = TabulatedSeverity.from_file(path)
    return {TARGET: TABULATED, "t_knots": schedule.t_knots.tolist(), "c_knots": schedule.c_knots.tolist()}
