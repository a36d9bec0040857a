"""Imports run one way: a module never imports a higher layer, not even inside a function.

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
            # `from mesh_export import api` names a module, not an attribute
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if layer_of(target) is None and layer_of(f"{target}.{alias.name}") is not None]
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


def test_the_package_needs_no_test_only_library():
    found = [f"{path.relative_to(PACKAGE)}:{line}: {target}" for path in sorted(PACKAGE.rglob("*.py"))
             for line, target in imports_of(path) if target.split(".")[0] in TEST_ONLY]
    assert found == []


def test_every_import_of_the_package_names_a_module_that_exists():
    # A relative import left behind by a move (cli.py's `.batch` inside cli/) only fails when
    # its function runs; the walk finds it now.
    def exists(module: str) -> bool:
        base = PACKAGE.parent.joinpath(*module.split("."))
        return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()

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


def violations_with(tmp_path, module: str, imported: str) -> list[str]:
    """The walk over a copy of the package with one function-local import added to ``module``."""
    import shutil

    copy = tmp_path / "mesh_export"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n\ndef _added():\n    from {imported} import x\n")
    return violations_in(copy)


@pytest.mark.parametrize("module, imported", [
    ("core/units.py", "mesh_export.jobs.export"),  # upwards
    ("writers/swc.py", "mesh_export.process.steps"),  # to a sibling
    ("process/steps.py", "mesh_export.writers.stl"),  # to a sibling
    ("writers/readers.py", "mesh_export.retrieve.fetch"),  # down, but kept apart
])
def test_a_wrong_way_import_is_caught(tmp_path, module, imported):
    found = violations_with(tmp_path, module, imported)
    assert any(module in v and imported in v for v in found), found


def violations_in(root: Path) -> list[str]:
    global PACKAGE
    saved, PACKAGE = PACKAGE, root
    try:
        return violations(root)
    finally:
        PACKAGE = saved

