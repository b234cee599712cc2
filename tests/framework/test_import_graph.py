"""No import circle in `dirac/` (issue 32): the graph of module-level imports (ast over every .py; imports inside
functions and under `if TYPE_CHECKING:` do not run at import time and are left out) has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dirac"


def module_name(path: Path) -> str:
    """`dirac.x.y` of dirac/x/y.py, `dirac.x` of dirac/x/__init__.py."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    """Whether `node` is `if TYPE_CHECKING:` (or `if typing.TYPE_CHECKING:`)."""
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_time_statements(body: list[ast.stmt]):
    """The statements of `body` that run when the module is imported: not function bodies, not TYPE_CHECKING blocks."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If):
            if not is_type_checking(node):
                yield from import_time_statements(node.body)
            yield from import_time_statements(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from import_time_statements([child for child in children if isinstance(child, ast.stmt)]
                                                  + [s for h in children if isinstance(h, ast.ExceptHandler)
                                                     for s in h.body])


def imported(node: ast.stmt, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The `dirac` modules an import statement of module `name` names (`from p import m` names p.m if it is one)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        anchor = name.split(".") if is_package else name.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return {base} | {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules}


def import_graph() -> dict[str, set[str]]:
    """Module -> the dirac modules importing it runs: each target and the packages above it (their __init__ runs
    first) that do not already contain the importer."""
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for node in import_time_statements(tree.body):
            for target in imported(node, name, is_package, set(files)):
                parts = target.split(".")
                targets |= {".".join(parts[:end]) for end in range(1, len(parts) + 1)}
        own = {".".join(name.split(".")[:end]) for end in range(1, name.count(".") + 2)}
        graph[name] = {target for target in targets if target in files and target not in own}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_dirac_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in dirac/: " + " -> ".join(cycle)


def test_the_checker_names_a_cycle_and_ignores_function_and_type_checking_imports():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dirac.b\n"
              "def later():\n    import dirac.b\n")
    tree = ast.parse(source)
    assert not [target for node in import_time_statements(tree.body)
                for target in imported(node, "dirac.a", False, {"dirac.b"}) if target.startswith("dirac.b")]
    relative = ast.parse("from .b import c\nfrom .. import d\n").body
    assert imported(relative[0], "dirac.x.a", False, {"dirac.x.b.c"}) == {"dirac.x.b", "dirac.x.b.c"}
    assert imported(relative[1], "dirac.x.a", False, set()) == {"dirac"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
