"""Imports run one way: a module never imports a higher layer, not even inside a function,
and within a layer no module is imported back by what it imports (no cycles). The CLI, on
top, reaches the rest only through the API: it imports api, errors, core and model, no more.

An AST walk (import-linter is not installable here) over every module of the package; it
sees function-local imports too, which is where the old cycles hid.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mesh_export

PACKAGE = Path(mesh_export.__file__).parent
# Highest first; a module may import its own package and any layer below it. Packages in
# SEPARATE never import each other, whatever their layers: processing never writes a file, a
# writer never processes or fetches. retrieve sits below process, not beside it: process reads
# through it (CAVE lookups, remeshed surfaces kept in the cache). model's types use core's units.
LAYERS = [
    ("cli",),
    ("api",),
    ("jobs",),
    ("look",),
    ("process", "writers"),
    ("retrieve",),
    ("model",),
    ("core",),
    ("errors", "_version"),
]
SEPARATE = [{"process", "writers"}, {"writers", "retrieve"}]
# Entry points above every layer (`python -m mesh_export`, the lazy public API), not a layer.
OUTSIDE = {"__main__", "__init__"}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "mesh_export" or len(parts) < 2:
        return None
    for rank, names in enumerate(LAYERS):
        if parts[1] in names:
            return rank
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def module_file(module: str) -> Path | None:
    """The file of ``module`` (a package's ``__init__.py``) in the tree being walked, if there is one."""
    base = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from mesh_export import api` and `from mesh_export.writers import gltf` name a
            # module, not an attribute: the package alone would hide which one (and its cycles).
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if module_file(f"{target}.{alias.name}") is not None
                      or (layer_of(target) is None and layer_of(f"{target}.{alias.name}") is not None)]
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path)
        if name.split(".")[1:2] and name.split(".")[1] in OUTSIDE:
            continue
        own = layer_of(name)
        if own is None:
            continue
        for line, target in imports_of(path):
            other = layer_of(target)
            pair = {name.split(".")[1], target.split(".")[1] if other is not None else ""}
            if other is not None and (other < own or (len(pair) == 2 and pair in SEPARATE)):
                bad.append(f"{path.relative_to(root)}:{line}: {name} imports {target}")
    return sorted(set(bad))


def test_imports_point_down():
    assert violations() == []


# Test and sample tooling only (LGPL zmesh, GPL navis): the installed package never imports them.
TEST_ONLY = {"zmesh", "navis"}


# The CLI is a thin layer over the API: besides its own package it imports the API and what every
# layer may (errors, core's parsing, model's types), never jobs, look, process, retrieve or writers.
CLI_MAY_IMPORT = {"cli", "api", "errors", "core", "model"}


def cli_violations(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted((root / "cli").rglob("*.py")):
        for line, target in imports_of(path):
            parts = target.split(".")
            # The bare package (`from mesh_export import errors` lists it too) is the lazy API.
            if parts[0] == "mesh_export" and len(parts) > 1 and parts[1] not in CLI_MAY_IMPORT:
                bad.append(f"{path.relative_to(root)}:{line}: {module_name(path)} imports {target}")
    return sorted(set(bad))


def test_the_cli_imports_only_the_api_errors_core_and_model():
    assert cli_violations() == []


def test_the_package_needs_no_test_only_library():
    found = [f"{path.relative_to(PACKAGE)}:{line}: {target}" for path in sorted(PACKAGE.rglob("*.py"))
             for line, target in imports_of(path) if target.split(".")[0] in TEST_ONLY]
    assert found == []


def test_every_import_of_the_package_names_a_module_that_exists():
    # A relative import left behind by a move (cli.py's `.batch` inside cli/) only fails when
    # its function runs; the walk finds it now.
    def exists(module: str) -> bool:
        return module_file(module) is not None

    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        # The module each statement imports from (imports_of also lists `from x import name`
        # as x.name, which may be an attribute).
        modules = [(line, target) for line, target in imports_of(path)
                   if target.split(".")[0] == "mesh_export"]
        statements = {node.lineno: node for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, (ast.Import, ast.ImportFrom))}
        for line, target in modules:
            node = statements[line]
            named = isinstance(node, ast.ImportFrom) and target.rsplit(".", 1)[-1] in {a.name for a in node.names}
            if not exists(target) and not (named and exists(target.rsplit(".", 1)[0])):
                missing.append(f"{path.relative_to(PACKAGE)}:{line}: {target}")
    assert missing == []


def copy_with(tmp_path, module: str, statement: str) -> Path:
    """A copy of the package with ``statement`` added to ``module`` inside a function."""
    import shutil

    copy = tmp_path / "mesh_export"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n\ndef _added():\n    {statement}\n")
    return copy


def violations_with(tmp_path, module: str, imported: str) -> list[str]:
    """The walk over a copy of the package with one function-local import added to ``module``."""
    return in_tree(copy_with(tmp_path, module, f"from {imported} import x"), violations)


@pytest.mark.parametrize("module, imported", [
    ("core/units.py", "mesh_export.jobs.export"),  # upwards
    ("writers/swc.py", "mesh_export.process.steps"),  # to a sibling
    ("process/steps.py", "mesh_export.writers.stl"),  # to a sibling
    ("writers/readers.py", "mesh_export.retrieve.fetch"),  # down, but kept apart
])
def test_a_wrong_way_import_is_caught(tmp_path, module, imported):
    found = violations_with(tmp_path, module, imported)
    assert any(module in v and imported in v for v in found), found


@pytest.mark.parametrize("module, statement, imported", [
    ("cli/export.py", "from mesh_export.jobs.batch import export_many", "mesh_export.jobs.batch"),
    ("cli/look.py", "from mesh_export.look.info import info", "mesh_export.look.info"),
    ("cli/options.py", "from mesh_export.process.steps import StepOptions", "mesh_export.process.steps"),
    ("cli/formats.py", "from mesh_export.writers import catalog", "mesh_export.writers.catalog"),
    ("cli/root.py", "import mesh_export.retrieve.auth", "mesh_export.retrieve.auth"),
    ("cli/cache.py", "from ..retrieve.cache import MeshCache", "mesh_export.retrieve.cache"),  # relative
])
def test_a_cli_import_past_the_api_is_caught(tmp_path, module, statement, imported):
    # Each of these points down, so the layer walk alone lets it through; the CLI rule does not.
    tree = copy_with(tmp_path, module, statement)
    assert in_tree(tree, violations) == []
    found = in_tree(tree, cli_violations)
    assert any(module in v and v.endswith(f"imports {imported}") for v in found), found


@pytest.mark.parametrize("statement", [
    "from mesh_export.api import export",
    "from mesh_export.errors import CheckFailedError",
    "from mesh_export.core.parsing import parse_point",
    "from mesh_export.model import Skeleton",
    "from mesh_export.cli.output import emit_json",
    "from mesh_export import api",
])
def test_the_cli_may_import_the_api_errors_core_model_and_itself(tmp_path, statement):
    assert in_tree(copy_with(tmp_path, "cli/look.py", statement), cli_violations) == []


def in_tree(root: Path, walk):
    """``walk(root)`` with the module names and files of the tree at ``root``."""
    global PACKAGE
    saved, PACKAGE = PACKAGE, root
    try:
        return walk(root)
    finally:
        PACKAGE = saved




def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside a function."""
    graph = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path)
        graph[name] = {target for _, target in imports_of(path)
                       if target != name and module_file(target) is not None}
    return graph


def cycles(root: Path = PACKAGE) -> list[frozenset[str]]:
    """The strongly connected components of the import graph with more than one module."""
    import networkx

    graph = networkx.DiGraph([(a, b) for a, targets in import_graph(root).items() for b in targets])
    return [frozenset(c) for c in networkx.strongly_connected_components(graph) if len(c) > 1]


def test_no_import_cycles():
    found = [sorted(c) for c in cycles()]
    assert found == []


@pytest.mark.parametrize("module, statement, cycle", [
    # The cycle this walk was written for: remesh recording its step through the step plan.
    ("process/derived.py", "from mesh_export.process.steps import apply_steps",
     {"mesh_export.process.derived", "mesh_export.process.steps"}),
    # A submodule named in a package's `from ... import`: the package alone would hide it.
    ("retrieve/sources.py", "from mesh_export.retrieve import fetch",
     {"mesh_export.retrieve.sources", "mesh_export.retrieve.fetch"}),
    # Relative: static_fetch imports fetched, so fetched importing it back closes a cycle.
    ("retrieve/fetched.py", "from . import static_fetch",
     {"mesh_export.retrieve.fetched", "mesh_export.retrieve.static_fetch"}),
])
def test_an_injected_cycle_is_caught(tmp_path, module, statement, cycle):
    found = in_tree(copy_with(tmp_path, module, statement), cycles)
    assert any(cycle <= c for c in found), found
