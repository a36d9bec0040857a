"""The writer registry is a table that imports no format; the catalogue fills it on the first
lookup (built-ins, meshio's formats, entry-point plugins) and finds what was registered."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mesh_export import errors
from mesh_export.writers import catalog, registry
from mesh_export.writers.registry import Writer, register

WRITERS = Path(registry.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, function-local imports too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: inside mesh_export.writers
                base = "mesh_export.writers" + (f".{base}" if base else "")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def test_the_registry_imports_no_format_module():
    formats = {f"mesh_export.writers.{p.stem}" for p in WRITERS.glob("*.py")} - {"mesh_export.writers.registry"}
    assert imported_modules(WRITERS / "registry.py") & formats == set()
    # ... and so every format module can import it: the catalogue is what imports them.
    assert "mesh_export.writers.stl" in imported_modules(WRITERS / "catalog.py")


def run_python(code: str, *paths: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_formats_load_on_the_first_lookup_not_on_import():
    result = run_python("""
        import sys
        import mesh_export.api, mesh_export.writers.registry, mesh_export.writers.catalog
        formats = [m for m in sys.modules if m.rsplit(".", 1)[-1] in ("stl", "ply", "swc", "meshio_formats")]
        assert formats == [], formats
        from mesh_export.writers.catalog import get_writer
        assert get_writer("stl").name == "stl" and "mesh_export.writers.stl" in sys.modules
    """)
    assert result.returncode == 0, result.stderr


def test_a_writer_registered_in_process_is_found_by_the_catalogue():
    custom = Writer("test-loader-format", (".testloader",), lambda mesh, path: None, backend="test")
    catalog.ensure_loaded()
    register(custom)
    try:
        assert catalog.get_writer("TEST-loader-format") is custom
        assert catalog.get_writer(".testloader") is custom
        assert catalog.writer_for_path("cell.testloader") is custom
        assert custom in catalog.all_writers()
    finally:
        registry._WRITERS.pop(custom.name)
        registry._forget_index()
    with pytest.raises(errors.UnknownFormatError):
        catalog.get_writer("test-loader-format")


def test_entry_point_plugins_are_loaded_by_the_catalogue(tmp_path):
    site = tmp_path / "site"
    package = site / "loader_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent('''
        from mesh_export.writers.registry import SURFACE, Writer

        def write(mesh, path):
            open(path, "x").close()

        one = Writer("plugin-one", (".plugone",), write, accepts=(SURFACE,), backend="plugin")

        def several():
            return [Writer("plugin-two", (".plugtwo",), write, backend="plugin"),
                    Writer("stl", (".stl",), write, backend="plugin")]

        def broken():
            raise RuntimeError("no luck")
    '''))
    dist = site / "loader_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: loader-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[mesh_export.writers]\none = loader_plugin:one\nseveral = loader_plugin:several\n"
        "broken = loader_plugin:broken\n")
    result = run_python("""
        import warnings
        from mesh_export.writers.catalog import all_writers, get_writer, writer_for_path
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert get_writer("plugin-one").backend == "plugin"
        assert writer_for_path("a.plugtwo").name == "plugin-two"
        assert get_writer("stl").backend == "plugin"  # a plugin replaces a built-in of its name
        assert {"plugin-one", "plugin-two", "ply"} <= {w.name for w in all_writers()}
        assert [str(w.message) for w in caught] == ["mesh-export: skipping writer plugin 'broken': no luck"]
    """, site)
    assert result.returncode == 0, result.stderr


def test_registry_lookup_by_name_and_extension():
    from mesh_export.writers import registry
    from mesh_export.writers.catalog import get_writer, writer_for_path
    from mesh_export.writers.registry import Writer, register

    assert get_writer("stl").name == "stl" and writer_for_path("cell.PLY").name == "ply"
    assert writer_for_path("cell.stl", format="obj").name == "obj"
    with pytest.raises(errors.UnknownFormatError):
        get_writer("no-such-format")
    with pytest.raises(errors.UnknownFormatError):
        writer_for_path("cell.unknown-extension")
    custom = Writer("test-xyz-format", (".testxyz",), lambda mesh, path: None)
    register(custom)
    try:
        assert get_writer("test-xyz-format") is custom and writer_for_path("a.testxyz") is custom
        with pytest.raises(ValueError, match="already registered"):
            register(custom)
    finally:
        registry._WRITERS.pop("test-xyz-format")
        registry._forget_index()
    with pytest.raises(errors.UnknownFormatError):
        get_writer("test-xyz-format")
