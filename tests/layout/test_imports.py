"""The layout holds: no import cycle between modules, no import from a lower layer to a higher one.

A small AST walk over ``tasks/``, ``schemas/`` and ``flows/``: every ``import`` and ``from ... import`` of our
own modules, at any depth (a function-level import is still a dependency). Layers, lowest first; a module
may import its own layer's modules and lower layers' only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tasks", "schemas", "flows")

#: Lowest first. Prefixes: the longest that matches a module names its layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tasks", "tasks.constants", "tasks.errors", "tasks.vocabulary", "tasks.transactions"),
    ("tasks.audio",),
    ("tasks.features", "tasks.synth"),
    ("schemas",),
    ("tasks.similarity",),
    ("tasks.catalog",),
    ("tasks.export",),
    ("flows",),
)
#: Packages of one layer that must not import each other.
SEPARATE: tuple[tuple[str, str], ...] = (("tasks.features", "tasks.synth"),)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Our modules that ``path`` (module ``name``) imports; ``from pkg import mod`` counts as ``pkg.mod``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t.split(".")[0] in PACKAGES and t in known}
    return found - {name}


def layer_of(name: str) -> int:
    best = max((p for layer in LAYERS for p in layer if name == p or name.startswith(p + ".")), key=len)
    return next(i for i, layer in enumerate(LAYERS) if best in layer)


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


def _package(name: str) -> str:
    return next((p for pair in SEPARATE for p in pair if name == p or name.startswith(p + ".")), name)


def test_no_upward_import():
    bad = [
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, deps in graph().items()
        for b in deps
        if layer_of(b) > layer_of(a)
        or (
            layer_of(b) == layer_of(a)
            and _package(a) != _package(b)
            and {_package(a), _package(b)} in map(set, SEPARATE)
        )
    ]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g[node]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for start in sorted(g):
        if start not in state:
            visit(start, [start])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_tasks_never_import_prefect():
    for name, path in modules().items():
        if name.startswith(("tasks", "schemas")):
            tree = ast.parse(path.read_text())
            names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            assert not [m for m in names if m.split(".")[0] == "prefect"], f"{name} imports Prefect"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tasks.catalog import store\n", {"tasks.catalog.store"}),
        ("import tasks.audio.decode as d\n", {"tasks.audio.decode"}),
        ("def f():\n    from flows.cli.app import app\n", {"flows.cli.app"}),
        ("from flows import settings\n", {"flows.settings"}),
    ],
)
def test_the_walk_sees_every_kind_of_import(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert imports_of(path, "tasks.x", set(modules())) == expected


def test_the_checks_catch_a_cycle_and_an_upward_import():
    assert layer_of("tasks.catalog.store") > layer_of("tasks.similarity.index") > layer_of("tasks.features.analyze")
    assert layer_of("tasks.vocabulary") == 0 and layer_of("flows.cli.app") == len(LAYERS) - 1


def test_the_command_line_imports_no_numeric_library():
    """Importing the CLI stays light. Spawned analysis workers re-import the ``cratedig`` script as their main
    module; numpy imported there, before the worker's initializer sets one BLAS thread, changed the features
    in their last digits (and every command would pay ~1 s of imports)."""
    import subprocess
    import sys

    code = "import sys, flows.cli; print(sorted({'numpy', 'polars', 'duckdb', 'prefect'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
