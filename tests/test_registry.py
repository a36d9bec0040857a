"""The writer registry (writers/registry.py) and the catalogue (writers/catalog.py): the registry is a
table that imports no format; the catalogue fills it on the first lookup (built-ins, meshio's formats,
entry-point plugins) and answers lookups by name and extension. Tests that register writers
restore the table (the ``writer_table`` fixture in conftest) or run in a subprocess, so nothing leaks."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mesh_export import errors
from mesh_export.writers import catalog, registry
from mesh_export.writers.catalog import get_writer, writer_for_path
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
    assert "mesh_export.writers.registry" in imported_modules(WRITERS / "catalog.py")
    assert "stl" in catalog.BUILTIN_MODULES  # imported by name, one at a time


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


def test_a_built_in_format_is_looked_up_without_the_rest_of_the_catalogue():
    """`--format stl` (or an output named *.stl) imports the STL module alone, not every format
    module and meshio's formats (0.15-0.2 s of every export's start-up)."""
    result = run_python("""
        import sys
        from mesh_export.writers.catalog import get_writer, writer_for_path
        assert get_writer("stl").name == "stl" and writer_for_path("864_lod0.STL").name == "stl"
        assert get_writer(".ply").name == "ply" and writer_for_path("cell.cell.nml").name == "neuroml"
        others = [m for m in sys.modules if m.startswith("mesh_export.writers.") and m.rsplit(".", 1)[-1]
                  in ("gltf", "vtk_scene", "vtk_xml", "obj", "hoc", "sonata", "meshio_formats")]
        assert others == [] and "meshio" not in sys.modules, others
    """)
    assert result.returncode == 0, result.stderr


def test_the_table_of_built_in_modules_is_what_they_register():
    result = run_python("""
        import importlib, json
        from mesh_export.writers import catalog, registry
        found = {}
        for module in catalog.BUILTIN_MODULES:
            before = set(registry._WRITERS)
            importlib.import_module("mesh_export.writers." + module)
            found[module] = {name: list(registry._WRITERS[name].extensions) for name in registry._WRITERS
                             if name not in before}
        print(json.dumps(found))
    """)
    assert result.returncode == 0, result.stderr
    table = {module: {name: list(ext) for name, ext in names.items()} for module, names in catalog.BUILTIN_MODULES.items()}
    assert json.loads(result.stdout) == table
    on_disk = {p.stem for p in WRITERS.glob("*.py")} - {"__init__", "registry", "catalog", "readers", "output",
                                                          "meshio_formats", "swc", "synapse_hoc", "synapse_table", "gltf_scene"}
    assert {m for m in on_disk if not m.startswith("_")} <= set(catalog.BUILTIN_MODULES)


def test_writers_registered_in_process_win_as_before_whatever_was_looked_up_first():
    """Lookups of a built-in import its module alone; the answers stay those of the whole
    catalogue: a replacement registered after a first lookup wins, a name is matched before an
    extension, and an extension goes to the first writer in listing order, in any case."""
    result = run_python("""
        from mesh_export.writers.catalog import all_writers, get_writer, writer_for_path
        from mesh_export.writers.registry import Writer, register

        def write(mesh, path):
            pass

        early = register(Writer("astl", (".STL",), write))  # sorts before "stl", upper-case extension
        named_nml = register(Writer("nml", (".other",), write))
        assert get_writer("stl").name == "stl" and writer_for_path("a.stl") is early
        mine = register(Writer("ply", (".ply",), write), replace=True)  # ply's module not imported yet
        assert get_writer("ply") is mine and writer_for_path("cell.ply") is mine
        assert get_writer("nml") is named_nml and get_writer(".NML") is named_nml
        assert writer_for_path("a.nml").name == "neuroml"
        assert mine in all_writers() and get_writer("ply") is mine and get_writer("vtp").name == "vtp"
    """)
    assert result.returncode == 0, result.stderr


def noop(mesh, path):
    pass


def test_a_writer_registered_in_process_is_found_by_the_catalogue(writer_table):
    custom = register(Writer("test-loader-format", (".testloader",), noop, backend="test"))
    assert catalog.get_writer("TEST-loader-format") is custom
    assert catalog.get_writer(".testloader") is custom and catalog.get_writer("testloader") is custom
    assert catalog.writer_for_path("cell.testloader") is custom
    assert custom in catalog.all_writers()
    with pytest.raises(ValueError, match="already registered"):
        register(Writer("Test-Loader-Format", (".other",), noop))  # names are case-insensitive
    assert writer_table.named("test-loader-format") is custom


def test_a_registered_writer_is_gone_once_the_table_is_restored():
    # Runs after the test above (file order): its writer did not leak.
    assert not registry.is_registered("test-loader-format")
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
    # A built-in name looked up first, before anything else is loaded: the plugin's still wins,
    # and keeps winning once the whole catalogue is loaded after it.
    # Reading an STL imports the STL module after the plugins: its own writer yields the name.
    result = run_python(f"""
        import warnings
        warnings.simplefilter("ignore")
        import trimesh
        from mesh_export import api
        from mesh_export.writers.catalog import all_writers, get_writer, writer_for_path
        assert get_writer("stl").backend == "plugin" and writer_for_path("a.stl").backend == "plugin"
        trimesh.creation.icosphere().export({str(tmp_path / "in.stl")!r})
        api.convert({str(tmp_path / "in.stl")!r}, {str(tmp_path / "out.ply")!r})
        assert writer_for_path("a.ply").name == "ply" and writer_for_path("a.plugtwo").name == "plugin-two"
        assert {{"plugin-one", "ply", "vtu"}} <= {{w.name for w in all_writers()}}
        assert get_writer("stl").backend == "plugin"
    """, site)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.ply").stat().st_size > 0


def test_registry_lookup_by_name_and_extension():
    from mesh_export.writers.catalog import get_writer, writer_for_path

    assert get_writer("stl").name == "stl" and writer_for_path("cell.PLY").name == "ply"
    assert writer_for_path("cell.stl", format="obj").name == "obj"
    assert get_writer("STL").name == get_writer(".stl").name == "stl"
    with pytest.raises(errors.UnknownFormatError, match="unknown format 'no-such-format'; `mesh-export formats`"):
        get_writer("no-such-format")
    with pytest.raises(errors.UnknownFormatError, match="from its extension; pass --format"):
        writer_for_path("cell.unknown-extension")
    with pytest.raises(errors.UnknownFormatError):
        writer_for_path("no-extension")
    assert errors.UnknownFormatError.exit_code == 4


def test_register_refuses_a_taken_name_unless_replacing(writer_table):
    first = register(Writer("test-xyz-format", (".testxyz",), noop))
    assert get_writer("test-xyz-format") is first and writer_for_path("a.testxyz") is first
    second = Writer("test-xyz-format", (".testxyz2",), noop, description="second")
    with pytest.raises(ValueError, match="'test-xyz-format' is already registered"):
        register(second)
    assert get_writer("test-xyz-format") is first
    assert register(second, replace=True) is second
    # The index is rebuilt: the new extension is found, the old one no longer is.
    assert writer_for_path("a.testxyz2") is second
    with pytest.raises(errors.UnknownFormatError):
        writer_for_path("a.testxyz")
    # A built-in replaced in process (as a plugin's writer replaces one of its name).
    mine = register(Writer("stl", (".stl",), noop, backend="test"), replace=True)
    assert get_writer("stl") is mine and writer_for_path("cell.stl") is mine


def test_native_writers_win_a_shared_extension_then_listing_order(writer_table):
    meshio_one = register(Writer("test-b-meshio", (".testshared",), noop, backend="meshio"))
    assert writer_for_path("x.testshared") is meshio_one
    native = register(Writer("test-z-native", (".testshared",), noop, backend="native"))
    trimesh_one = register(Writer("test-a-trimesh", (".testshared",), noop, backend="trimesh"))
    assert writer_for_path("x.testshared") is native  # native > trimesh > meshio, names aside
    order = [w.name for w in writer_table.in_listing_order()]
    assert order.index("test-z-native") < order.index("test-a-trimesh") < order.index("test-b-meshio")
    backends = [registry._BACKEND_ORDER.get(w.backend, 3) for w in writer_table.in_listing_order()]
    assert backends == sorted(backends)
    # Among equals, the first name in order; an unknown backend lists last.
    other = register(Writer("test-a-native", (".testshared",), noop, backend="native"))
    assert writer_for_path("x.testshared") is other
    plugin = register(Writer("test-0-plugin", (".testplugin",), noop, backend="someplugin"))
    assert writer_table.in_listing_order()[-1] is plugin
    assert trimesh_one in catalog.all_writers()


def test_the_longest_matching_extension_wins(writer_table):
    short = register(Writer("test-short", (".testgz",), noop))
    long = register(Writer("test-long", (".inner.testgz",), noop))
    assert writer_for_path("cell.inner.testgz") is long
    assert writer_for_path("cell.other.testgz") is short
    assert writer_for_path("/a.inner.testgz/dir/cell.testgz") is short  # only the file name counts
    assert writer_for_path("cell.nml").name == writer_for_path("cell.cell.nml").name


def test_the_built_in_formats_are_in_the_catalogue():
    names = {w.name for w in catalog.all_writers()}
    assert {"stl", "obj", "off", "ply", "vtk", "vtp", "vtu", "gltf", "glb", "3mf", "swc", "hoc"} <= names
    assert len(names) > 20  # meshio's formats too
    assert catalog.all_writers() == registry.in_listing_order()


def test_the_plugin_contract_is_importable_from_the_registry():
    from mesh_export.writers.registry import ENTRY_POINT_GROUP, SKELETON, SURFACE, VOLUME, Writer

    assert ENTRY_POINT_GROUP == "mesh_export.writers"
    assert {SURFACE, SKELETON, VOLUME} == {"surface", "skeleton", "volume"}
    writer = Writer("test-contract", (".tc",), noop, accepts=(SURFACE, SKELETON), modes=("binary", "ascii"),
                    options={"precision": "digits"}, description="d", units=("mm",))
    assert writer.describe() == {"name": "test-contract", "extensions": [".tc"], "accepts": ["surface", "skeleton"],
                                 "modes": ["binary", "ascii"], "options": {"precision": "digits"},
                                 "backend": "native", "description": "d", "units": ["mm"]}
    assert "units" not in Writer("x", (".x",), noop).describe()
    with pytest.raises(AttributeError):
        writer.name = "changed"  # frozen: a registered writer cannot change under the table
