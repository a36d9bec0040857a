"""Every writer round-trips through the readers users actually use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

import mesh_export
from conftest import run_cli
from consumers import assert_same_geometry, with_meshio, with_trimesh, with_vtk

# (format, options, readers that must reproduce the geometry)
NATIVE_CASES = [
    ("stl", {}, ["trimesh", "meshio"]),
    ("stl", {"ascii": True}, ["trimesh", "meshio"]),
    ("ply", {}, ["trimesh", "meshio"]),
    ("ply", {"ascii": True}, ["trimesh", "meshio"]),
    ("obj", {}, ["trimesh", "meshio"]),
    ("off", {}, ["trimesh", "meshio"]),
    ("vtk", {}, ["vtk"]),
    ("vtk", {"ascii": True}, ["vtk"]),
    ("vtp", {}, ["vtk"]),
    ("vtp", {"compress": True}, ["vtk"]),
    ("vtu", {}, ["meshio", "vtk"]),
    ("vtu", {"compress": True}, ["meshio", "vtk"]),
    ("glb", {}, ["trimesh"]),
    ("gltf", {}, ["trimesh"]),
]
READERS = {"trimesh": with_trimesh, "meshio": with_meshio, "vtk": with_vtk}


def _case_id(case):
    name, options, _ = case
    return name + "".join(f"-{k}" for k in options)


@pytest.mark.parametrize("case", NATIVE_CASES, ids=_case_id)
def test_native_writer_round_trips_real_neuron(case, neuron_mesh, tmp_path):
    name, options, readers = case
    path = tmp_path / f"neuron.{name}"
    mesh_export.write(neuron_mesh, path, **options)
    for reader in readers:
        assert_same_geometry(neuron_mesh, READERS[reader](path), f"{name} read by {reader}")


@pytest.mark.parametrize("case", NATIVE_CASES, ids=_case_id)
def test_native_writer_round_trips_synthetic(case, sphere, tmp_path):
    name, options, readers = case
    path = tmp_path / f"sphere.{name}"
    mesh_export.write(sphere, path, **options)
    for reader in readers:
        assert_same_geometry(sphere, READERS[reader](path), f"{name} read by {reader}")


def test_every_neuron_round_trips_binary_stl_and_ply(neuron_meshes, tmp_path):
    for neuron_id, mesh in neuron_meshes.items():
        for name in ("stl", "ply"):
            path = tmp_path / f"{neuron_id}.{name}"
            mesh_export.write(mesh, path)
            assert_same_geometry(mesh, with_trimesh(path), f"{neuron_id}.{name}")


@pytest.mark.slow
def test_million_face_mesh_round_trips(million_face_mesh, tmp_path):
    for name, options in (("stl", {}), ("ply", {}), ("obj", {}), ("vtu", {})):
        path = tmp_path / f"big.{name}"
        mesh_export.write(million_face_mesh, path, **options)
        reader = with_meshio
        assert_same_geometry(million_face_mesh, reader(path), f"1M-face {name}")


def _meshio_formats():
    return [f for f in mesh_export.formats() if f["backend"] == "meshio"]


@pytest.mark.parametrize("fmt", _meshio_formats(), ids=lambda f: f["name"])
def test_meshio_format_round_trips(fmt, sphere, tmp_path):
    extension = fmt["extensions"][0] if fmt["extensions"] else ".out"
    path = tmp_path / f"sphere{extension}"
    mesh_export.write(sphere, path, format=fmt["name"])
    from meshio._helpers import reader_map

    # meshio writes Gmsh 2.2 under its own name but reads it as "gmsh".
    read_as = fmt["name"] if fmt["name"] in reader_map else {"gmsh22": "gmsh"}[fmt["name"]]
    assert_same_geometry(sphere, with_meshio(path, file_format=read_as), fmt["name"])


def test_meshio_formats_are_registered_from_meshio():
    names = {f["name"] for f in _meshio_formats()}
    assert {"gmsh", "xdmf", "medit", "abaqus", "dolfin-xml"} <= names
    assert next(f for f in mesh_export.formats() if f["name"] == "gmsh")["extensions"] == [".msh"]


def test_meshio_formats_from_its_public_table_miss_none_of_its_writers():
    # The registry reads meshio.extension_to_filetypes and a short list of writers registered
    # without an extension; meshio's private writer map says whether that list is complete.
    from meshio._helpers import _writer_map

    from mesh_export.writers import meshio_formats

    names = {f["name"] for f in _meshio_formats()}
    assert {"gmsh22", "neuroglancer"} <= names
    assert names <= set(_writer_map)
    left_out = set(meshio_formats._NATIVE) | set(meshio_formats._UNSUITABLE) | {
        name for name, module in meshio_formats._OPTIONAL_MODULES.items()
        if not meshio_formats._module_available(module)}
    assert set(_writer_map) - names <= left_out
    source = open(meshio_formats.__file__).read()
    assert "from meshio._" not in source and "import meshio._" not in source


def test_3mf_round_trips_in_millimetres(sphere, tmp_path):
    from mesh_export.process import steps

    in_mm = steps.convert_units(sphere, "mm")
    path = tmp_path / "sphere.3mf"
    mesh_export.write(in_mm, path)
    loaded = trimesh.load(path, process=False, force="mesh")
    assert loaded.metadata["units"] in ("millimeters", "millimeter")
    # 3MF readers may reorder vertices; the surface must still be the same.
    assert len(loaded.faces) == len(sphere.faces)
    np.testing.assert_allclose(loaded.bounds, in_mm.bounds, rtol=1e-5)
    assert loaded.area == pytest.approx(in_mm.area, rel=1e-5)


def _3mf_unit(path) -> str:
    import zipfile

    from lxml import etree

    return etree.fromstring(zipfile.ZipFile(path).read("3D/3dmodel.model")).get("unit")


@pytest.mark.parametrize("units, unit", [("um", "micron"), ("mm", "millimeter"), ("cm", "centimeter"),
                                         ("m", "meter")])
def test_3mf_states_its_unit_and_is_read_back_at_the_right_size(units, unit, sphere, tmp_path):
    from mesh_export.process import steps

    converted = steps.convert_units(sphere, units)
    path = mesh_export.write(converted, tmp_path / "sphere.3mf")
    assert _3mf_unit(path) == unit
    loaded = trimesh.load(path, process=False, force="mesh")
    assert loaded.metadata["units"] == unit
    np.testing.assert_allclose(loaded.bounds, converted.bounds, rtol=1e-5)
    # In millimetres, whatever the file's unit: what a slicer shows.
    factor = trimesh.units.unit_conversion(unit, "millimeters")
    np.testing.assert_allclose(loaded.extents * factor, sphere.extents * 1e-6, rtol=1e-5)
    lib3mf = pytest.importorskip("lib3mf")
    model = lib3mf.get_wrapper().CreateModel()
    model.QueryReader("3mf").ReadFromFile(str(path))
    expected = {"micron": lib3mf.ModelUnit.MicroMeter, "millimeter": lib3mf.ModelUnit.MilliMeter,
                "centimeter": lib3mf.ModelUnit.CentiMeter, "meter": lib3mf.ModelUnit.Meter}[unit]
    assert model.GetUnit() == expected
    objects = model.GetMeshObjects()
    assert objects.MoveNext() and objects.GetCurrentMeshObject().GetTriangleCount() == len(sphere.faces)


def test_3mf_writes_nanometres_as_micrometres_and_says_so(sphere, tmp_path):
    """Through the API the writer converts; convert (and export) record the step."""
    path = mesh_export.write(sphere, tmp_path / "sphere.3mf")
    assert _3mf_unit(path) == "micron"
    np.testing.assert_allclose(trimesh.load(path, force="mesh").extents, sphere.extents / 1000, rtol=1e-5)
    ply = mesh_export.write(sphere, tmp_path / "sphere.ply")
    result = run_cli("convert", ply, tmp_path / "c.3mf", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["units"] == "um"
    assert summary["steps"] == [{"step": "convert_units", "from": "nm", "to": "um", "factor": 0.001,
                                 "reason": "3mf cannot state nm"}]
    assert _3mf_unit(tmp_path / "c.3mf") == "micron"


def test_3mf_of_unknown_units_is_millimetres(sphere, tmp_path):
    plain = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False)
    assert _3mf_unit(mesh_export.write(plain, tmp_path / "plain.3mf")) == "millimeter"


@pytest.mark.parametrize("name", ["stl", "ply", "obj", "off", "vtk", "vtp", "vtu"])
def test_units_and_tool_are_recorded_and_read_back(name, sphere, tmp_path):
    path = tmp_path / f"s.{name}"
    mesh_export.write(sphere, path)
    assert b"mesh-export" in path.read_bytes()[:400]
    if name in ("stl", "ply", "obj", "off"):
        assert mesh_export.load(path).units == "nm"


def test_gltf_records_units_in_asset_extras(sphere, tmp_path):
    import json

    path = tmp_path / "s.gltf"
    mesh_export.write(sphere, path)
    asset = json.loads(path.read_text())["asset"]
    assert asset["extras"]["units"] == "nm"
    assert "mesh-export" in asset["generator"]


def test_quads_are_triangulated_on_load(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    mesh = mesh_export.load(path)
    assert len(mesh.faces) == 2
    assert mesh.area == pytest.approx(1.0)

    import meshio

    vtu = tmp_path / "quad.vtu"
    meshio.write(vtu, meshio.Mesh(np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.0]]), [("quad", np.array([[0, 1, 2, 3]]))]))
    mesh = mesh_export.load(vtu)
    assert len(mesh.faces) == 2 and mesh.area == pytest.approx(1.0)


def test_load_legacy_vtk_polydata_written_by_us(sphere, tmp_path):
    path = tmp_path / "s.vtk"
    mesh_export.write(sphere, path)
    loaded = mesh_export.load(path, units="nm")
    assert_same_geometry(sphere, loaded.vertices[loaded.faces], "vtk via load()")


def test_text_writer_keeps_float32_precision_at_every_scale(tmp_path):
    rng = np.random.default_rng(1)
    for magnitude in (1e-4, 1.0, 1e3, 1e6, 1e9):
        vertices = rng.normal(size=(300, 3)) * magnitude
        faces = rng.integers(0, 300, size=(500, 3))
        mesh = trimesh.Trimesh(vertices, faces, process=False)
        path = tmp_path / f"m{magnitude:g}.obj"
        mesh_export.write(mesh, path, overwrite=True)
        assert_same_geometry(mesh, with_meshio(path), f"obj at scale {magnitude:g}")


@pytest.mark.parametrize(
    "vertices, faces, message",
    [
        (np.zeros((0, 3)), np.zeros((0, 3), dtype=int), "empty"),
        ([[0, 0, 0], [np.nan, 0, 0], [0, 1, 0]], [[0, 1, 2]], "NaN"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 3]], "outside"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, -1, 2]], "outside"),
    ],
    ids=["empty", "nan", "past-end", "negative"],
)
def test_invalid_meshes_are_refused_before_writing(vertices, faces, message, tmp_path):
    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=float), np.asarray(faces), process=False)
    for name in ("stl", "ply", "vtk", "vtp", "vtu", "obj", "msh"):
        with pytest.raises(mesh_export.errors.InvalidMeshError, match=message):
            mesh_export.write(mesh, tmp_path / f"bad.{name}")
    assert not list(tmp_path.iterdir())


BINARY_NATIVE = ["stl", "ply", "vtk", "vtp", "vtu"]


def _spoiled(mesh, where: str, how: str) -> trimesh.Trimesh:
    vertices, faces = mesh.vertices.copy(), mesh.faces.copy()
    row = {"first": 0, "last": -1}[where]
    if how == "nan":
        vertices[faces[row, 1], 2] = np.nan
    elif how == "float32-overflow":
        vertices[faces[row, 1], 0] = 1e39  # finite as float64, infinite as float32
    elif how == "past-end":
        faces[row, 2] = len(vertices)
    elif how == "negative":
        faces[row, 0] = -1
    return trimesh.Trimesh(vertices, faces, process=False)


@pytest.mark.parametrize("how, message", [("nan", "NaN"), ("float32-overflow", "float32"),
                                          ("past-end", "outside"), ("negative", "outside")])
@pytest.mark.parametrize("where", ["first", "last"])
def test_binary_writers_check_values_in_every_chunk(where, how, message, million_face_mesh, tmp_path):
    """The binary writers check vertices and faces a chunk at a time, on two threads for a
    mesh this size: a bad value in the first or the last chunk is refused like anywhere else,
    and nothing is left behind."""
    mesh = _spoiled(million_face_mesh, where, how)
    for name in BINARY_NATIVE:
        with pytest.raises(mesh_export.errors.InvalidMeshError, match=message):
            mesh_export.write(mesh, tmp_path / f"bad.{name}")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", BINARY_NATIVE)
def test_two_thread_writes_match_one_thread_writes_byte_for_byte(name, million_face_mesh, tmp_path, monkeypatch):
    from mesh_export.writers import _layout

    outputs = {}
    for threads, threshold in (("one", 1 << 62), ("two", 0)):
        monkeypatch.setattr(_layout, "PARALLEL_MIN_BYTES", threshold)
        outputs[threads] = tmp_path / f"{threads}.{name}"
        mesh_export.write(million_face_mesh, outputs[threads])
    assert outputs["one"].read_bytes() == outputs["two"].read_bytes()


def test_a_failure_on_the_helper_thread_reaches_the_caller(tmp_path):
    import threading

    from mesh_export.writers._layout import Rows, write_layout

    helper_failed = threading.Event()

    def fill(start, stop, scratch):
        if threading.current_thread() is threading.main_thread():
            helper_failed.wait(timeout=30)  # so the helper surely takes a chunk
            return bytes(stop - start)
        helper_failed.set()
        raise RuntimeError(f"chunk at row {start} failed")

    path = tmp_path / "out.bin"
    with open(path, "xb") as handle, pytest.raises(RuntimeError, match="failed"):
        write_layout(handle, [b"head", Rows(100, 1 << 20, fill, chunk_rows=1)])


@pytest.mark.parametrize("name", [*BINARY_NATIVE, "obj"])
def test_sha256_taken_while_writing_matches_the_file(name, sphere, neuron_mesh, million_face_mesh, tmp_path):
    """export's sidecar hashes the output as it is written (inline for a small file, on a
    pool thread beside the write for a mid-sized one, by two writing threads in file order
    for a large one); a writer that does not lay its file out with write_layout (text) gives
    no digest, and the caller reads the file back instead."""
    import hashlib

    from mesh_export.writers._layout import hashing_output

    for mesh in (sphere, neuron_mesh, million_face_mesh):
        with hashing_output() as digest:
            path = mesh_export.write(mesh, tmp_path / f"out.{name}", overwrite=True)
        taken = digest.hexdigest(path.stat().st_size)
        if name == "obj":
            assert taken is None
        else:
            assert taken == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_hashed_writes_work_in_a_forked_child(neuron_mesh, tmp_path):
    """The hashing pool's threads do not survive fork(); a child must not wait on them."""
    import hashlib
    import multiprocessing

    from mesh_export.writers._layout import hashing_output

    with hashing_output():
        mesh_export.write(neuron_mesh, tmp_path / "parent.ply")  # the parent's pool exists now

    def child(path):
        with hashing_output() as digest:
            written = mesh_export.write(neuron_mesh, path)
        assert digest.hexdigest(written.stat().st_size) == hashlib.sha256(written.read_bytes()).hexdigest()

    process = multiprocessing.get_context("fork").Process(target=child, args=(tmp_path / "child.ply",))
    process.start()
    process.join(timeout=60)
    if process.is_alive():
        process.kill()
    assert process.exitcode == 0, "the child hung or failed writing a hashed file"


def test_morphology_text_holds_values_past_the_integer_formatting(tmp_path):
    """Fixed-point text is laid out by integer arithmetic; a coordinate that cannot be scaled into
    it (1e20 um) is still written exactly as %.Nf writes it, not wrapped round."""
    from mesh_export.model import Skeleton, read_swc

    nodes = np.array([[0.0, 0.0, 0.0], [1e20, -3e19, 5.5], [2.0, 1.0, 0.25]])
    skeleton = Skeleton(nodes, np.array([-1, 0, 0]), np.array([1.0, 2.0, 0.5]), np.array([1, 3, 3]), units="um")
    read = read_swc(mesh_export.write(skeleton, tmp_path / "far.swc"))
    order = np.argsort(read.nodes[:, 0])
    assert np.allclose(read.nodes[order], nodes[np.argsort(nodes[:, 0])], rtol=1e-12, atol=1e-3)
    # A chunk written the slow way reads as the fast way writes: no "-0.000", halves to even.
    from mesh_export.writers import _text

    values = np.array([-0.0, -0.0001, 0.0005, 2.5, -3.25, 1e20])
    slow = b"".join(_text.iter_text([_text.Fixed(values, 3), b"\n"], len(values)))
    fast = b"".join(_text.iter_text([_text.Fixed(values[:-1], 3), b"\n"], len(values) - 1))
    assert slow.splitlines()[:-1] == fast.splitlines() and slow.splitlines()[-1] == b"%.3f" % 1e20
