"""The native PLY/STL/OBJ/OFF readers: what they read equals what trimesh and meshio read from
the same files (written by mesh-export, trimesh and meshio), variants trimesh reads still load
(through trimesh), and damaged files are one-line input errors."""

from __future__ import annotations

from pathlib import Path

import meshio
import numpy as np
import pytest
import trimesh

import mesh_export
from conftest import grid_surface, run_cli
from mesh_export import errors
from mesh_export.writers import _read, readers, stl
from mesh_export.writers.readers import read_surface


def native(path):
    """The native reader's arrays (failing if it would hand the file to trimesh)."""
    path = Path(path)
    return readers.native_reader(path.suffix.lower())(path)


def soup(vertices, faces) -> np.ndarray:
    """The triangles as float64 corner coordinates, each turned to start at its smallest corner
    and in a canonical order (for meshes whose vertex order differs: STL, OBJ with texture
    indices, polygons triangulated another way)."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (n, 3, 3)
    flat = corners.reshape(-1, 3)
    rank = np.empty(len(flat), dtype=np.int64)
    rank[np.lexsort(flat.T[::-1])] = np.arange(len(flat))
    turn = rank.reshape(-1, 3).argmin(axis=1)
    corners = corners[np.arange(len(corners))[:, None], (turn[:, None] + np.arange(3)) % 3]
    triangles = corners.reshape(len(corners), 9)
    return triangles[np.lexsort(triangles.T[::-1])]


def assert_same_mesh(vertices, faces, ref_vertices, ref_faces, indexed=True):
    if indexed:
        np.testing.assert_array_equal(vertices, ref_vertices)
        np.testing.assert_array_equal(faces, ref_faces)
    else:
        np.testing.assert_array_equal(soup(vertices, faces), soup(ref_vertices, ref_faces))


def two_meshes(neuron_meshes, sphere):
    name, neuron = next(iter(neuron_meshes.items()))
    return {"neuron": neuron, "sphere": sphere, "grid": grid_surface(12)}


# (format, mesh-export options, read back indexed as written (else as a triangle soup))
OWN_FILES = [("ply", {}, True), ("ply", {"ascii": True}, True), ("stl", {}, False),
             ("stl", {"ascii": True}, False), ("obj", {}, True), ("off", {}, True)]


@pytest.mark.parametrize("case", OWN_FILES, ids=lambda c: c[0] + ("-ascii" if c[1] else ""))
def test_mesh_export_files_read_like_trimesh_and_meshio(case, neuron_meshes, sphere, tmp_path):
    extension, options, indexed = case
    for name, mesh in two_meshes(neuron_meshes, sphere).items():
        path = tmp_path / f"{name}.{extension}"
        mesh_export.write(mesh, path, **options)
        vertices, faces = native(path)
        assert faces.dtype == np.int32
        text_floats = extension in ("obj", "off") or (extension == "stl" and options)
        assert vertices.dtype == (np.float64 if text_floats else np.float32)  # PLY says float
        ref = trimesh.load(path, process=False, force="mesh")
        assert_same_mesh(vertices, faces, ref.vertices, ref.faces, indexed)
        ref = meshio.read(path)
        assert_same_mesh(vertices, faces, ref.points, ref.cells_dict["triangle"], indexed)
        if extension == "stl":  # corners merged exactly: the mesh's own vertex count
            assert len(vertices) == len(np.unique(np.asarray(mesh.vertices, np.float32), axis=0))
            assert len(faces) == len(mesh.faces)


TRIMESH_FILES = [("ply", {}), ("ply", {"encoding": "ascii"}), ("stl", {}), ("stl", {"file_type": "stl_ascii"}),
                 ("obj", {}), ("off", {})]


@pytest.mark.parametrize("case", TRIMESH_FILES, ids=lambda c: c[0] + ("-" + next(iter(c[1].values())) if c[1] else ""))
def test_trimesh_files_read_like_trimesh(case, neuron_meshes, sphere, tmp_path):
    extension, options = case
    for name, mesh in two_meshes(neuron_meshes, sphere).items():
        path = tmp_path / f"{name}.{extension}"
        mesh.export(path, **options)
        vertices, faces = native(path)
        ref = trimesh.load(path, process=False, force="mesh")
        assert_same_mesh(vertices, faces, ref.vertices, ref.faces, indexed=extension != "stl")


MESHIO_FILES = [("ply", {}), ("ply", {"binary": False}), ("stl", {"binary": True}), ("stl", {}),
                ("obj", {}), ("off", {})]


@pytest.mark.parametrize("case", MESHIO_FILES, ids=lambda c: c[0] + "".join(f"-{k}{v}" for k, v in c[1].items()))
def test_meshio_files_read_like_meshio(case, neuron_meshes, sphere, tmp_path):
    extension, options = case
    for name, mesh in two_meshes(neuron_meshes, sphere).items():
        path = tmp_path / f"{name}.{extension}"
        meshio.write(path, meshio.Mesh(np.asarray(mesh.vertices), [("triangle", np.asarray(mesh.faces, np.int32))]),
                     **options)
        vertices, faces = native(path)
        ref = meshio.read(path)
        assert_same_mesh(vertices, faces, ref.points, ref.cells_dict["triangle"], indexed=extension != "stl")


def test_load_returns_a_trimesh_with_units_from_the_header(sphere, tmp_path):
    for extension in ("ply", "stl", "obj", "off"):
        path = tmp_path / f"s.{extension}"
        mesh_export.write(sphere, path)
        mesh = mesh_export.load(path)
        assert isinstance(mesh, trimesh.Trimesh) and mesh.units == "nm", extension
        assert mesh.metadata["source"] == {"file": str(path)}
        assert len(mesh.faces) == len(sphere.faces)
    assert mesh_export.load(path, units="um").units == "um"  # declared beats recorded


# ---------------------------------------------------------------------------- PLY variants

def _ply(path, header: str, body: bytes) -> Path:
    path.write_bytes(header.encode() + body)
    return path


def test_ply_big_endian_doubles_extra_properties_and_uint_indices(sphere, tmp_path):
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    vertex = np.zeros(len(v), dtype=[("nx", ">f4"), ("x", ">f8"), ("y", ">f8"), ("z", ">f8"), ("red", "u1")])
    vertex["x"], vertex["y"], vertex["z"], vertex["red"] = v[:, 0], v[:, 1], v[:, 2], 7
    face = np.zeros(len(f), dtype=[("n", "u1"), ("i", ">u4", (3,)), ("flags", ">i2")])
    face["n"], face["i"], face["flags"] = 3, f, -1
    header = (f"ply\nformat binary_big_endian 1.0\ncomment units nm\nelement vertex {len(v)}\nproperty float nx\n"
              "property double x\nproperty double y\nproperty double z\nproperty uchar red\n"
              f"element face {len(f)}\nproperty list uchar uint vertex_index\nproperty short flags\n"
              "element edge 2\nproperty int vertex1\nproperty int vertex2\nend_header\n")
    path = _ply(tmp_path / "be.ply", header, vertex.tobytes() + face.tobytes() + np.zeros(4, ">i4").tobytes())
    vertices, faces = native(path)
    assert vertices.dtype == np.float64 and vertices.dtype.isnative and faces.dtype == np.int32
    assert_same_mesh(vertices, faces, v, f)
    ref = trimesh.load(path, process=False, force="mesh")
    assert_same_mesh(vertices, faces, ref.vertices, ref.faces)
    assert read_surface(path)[2]["units"] == "nm"


def test_ply_quads_are_fan_triangulated_binary_and_ascii(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]], dtype=np.float32)
    quads = np.array([[0, 1, 2, 3], [0, 1, 5, 4]])
    header = ("ply\nformat {} 1.0\nelement vertex 6\nproperty float x\nproperty float y\nproperty float z\n"
              "element face 2\nproperty list uchar int vertex_indices\nend_header\n")
    face = np.zeros(2, dtype=[("n", "u1"), ("i", "<i4", (4,))])
    face["n"], face["i"] = 4, quads
    binary = _ply(tmp_path / "q.ply", header.format("binary_little_endian"), v.tobytes() + face.tobytes())
    text = "".join(f"{a} {b} {c}\n" for a, b, c in v) + "".join("4 " + " ".join(map(str, q)) + "\n" for q in quads)
    ascii_ = _ply(tmp_path / "qa.ply", header.format("ascii"), text.encode())
    expected = [[0, 1, 2], [0, 2, 3], [0, 1, 5], [0, 5, 4]]
    for path in (binary, ascii_):
        vertices, faces = native(path)
        np.testing.assert_array_equal(faces, expected)
        ref = trimesh.load(path, process=False, force="mesh")
        assert_same_mesh(vertices, faces, ref.vertices, ref.faces, indexed=False)


def test_ply_mixed_polygons_are_fan_triangulated(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], dtype=np.float32)
    header = ("ply\nformat {} 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
              "element face 2\nproperty list uchar int vertex_indices\nproperty uchar red\nend_header\n")
    text = "".join(f"{a} {b} {c}\n" for a, b, c in v) + "4 0 1 2 3 9\n3 1 4 2 9\n"
    path = _ply(tmp_path / "mixed.ply", header.format("ascii"), text.encode())
    vertices, faces = native(path)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])
    body = v.tobytes() + bytes([4]) + np.array([0, 1, 2, 3], "<i4").tobytes()
    body += bytes([3]) + np.array([1, 4, 2], "<i4").tobytes()
    header = header.replace("property uchar red\n", "").format("binary_little_endian")
    path = _ply(tmp_path / "mixed_bin.ply", header, body)
    vertices, faces = native(path)  # trimesh cannot: it takes every list as long as the first
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(errors.InputError, match="truncated"):
        read_surface(path)


# ---------------------------------------------------------------------------- OBJ and OFF variants

_OBJ_V = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"


@pytest.mark.parametrize("faces_text, expected", [
    ("f 1 2 3\nf 1 3 4\n", [[0, 1, 2], [0, 2, 3]]),
    ("f 1/1/1 2/2/1 3/3/1\nf 1/1/1 3/3/1 4/4/1\n", [[0, 1, 2], [0, 2, 3]]),
    ("f 1//1 2//1 3//1 4//1\n", [[0, 1, 2], [0, 2, 3]]),
    ("f 1/1 2/2 3/3\r\nf -4/1 -2/3 -1/4\r\n", [[0, 1, 2], [0, 2, 3]]),
    ("f 1 2 3 4\nf 4 3 2\n", [[0, 1, 2], [0, 2, 3], [3, 2, 1]]),
], ids=["plain", "v-t-n", "v--n-quad", "v-t-negative-crlf", "mixed-polygons"])
def test_obj_face_forms(faces_text, expected, tmp_path):
    path = tmp_path / "m.obj"
    path.write_text("# c\nmtllib x.mtl\n" + _OBJ_V + "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvn 0 0 1\ng a\ns off\n" + faces_text)
    vertices, faces = native(path)
    np.testing.assert_array_equal(faces, expected)
    np.testing.assert_array_equal(vertices, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    tm = trimesh.load(path, process=False, force="mesh")
    assert_same_mesh(vertices, faces, tm.vertices, tm.faces, indexed=False)


def test_obj_objects_with_negative_indices_and_vertex_colours(tmp_path):
    path = tmp_path / "two.obj"
    path.write_text("o a\nv 0 0 0 1 0 0\nv 1 0 0 1 0 0\nv 0 1 0 1 0 0\nf -3 -2 -1\n"
                    "o b\nv 5 0 0 0 1 0\nv 6 0 0 0 1 0\nv 5 1 0 0 1 0\nf -3 -2 -1\nl 1 2\n")
    vertices, faces = native(path)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(vertices[:, 0], [0, 1, 0, 5, 6, 5])


def test_off_comments_blank_lines_quads_and_colours(tmp_path):
    path = tmp_path / "m.off"
    head = "OFF\n# made by hand\n\n4 2 0\n\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n\n"
    path.write_text(head + "4 0 1 2 3 255 0 0\n4 0 3 2 1 0 255 0\n")
    vertices, faces = native(path)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3], [0, 3, 2], [0, 2, 1]])
    ref = trimesh.load(path, process=False, force="mesh")
    np.testing.assert_array_equal(vertices, ref.vertices)
    path.write_text(head + "4 0 1 2 3 255 0 0\n3 0 2 1 0 255 0\n")  # polygons and colours:
    with pytest.raises(_read.NotNative):  # which number is which is for trimesh to say
        native(path)
    assert len(read_surface(path)[1]) >= 2


def test_stl_facets_with_identical_corners_are_kept(tmp_path):
    corners = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 0, 0], [-0.0, 0, 0], [1, 0, 0]]], np.float32)
    record = np.zeros(2, dtype=stl._FACET)
    record["corners"] = corners
    path = tmp_path / "d.stl"
    path.write_bytes(b"x" * 80 + np.uint32(2).tobytes() + record.tobytes())
    vertices, faces = native(path)
    assert len(faces) == 2 and len(vertices) == 3  # -0.0 and 0.0 are one vertex
    np.testing.assert_array_equal(vertices[faces], corners + 0.0)


# ---------------------------------------------------------------------------- text numbers

def test_text_numbers_read_exactly_what_float_reads():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1e5, 3000), rng.normal(0, 1, 3000), [0.0, -0.0, 1e-7, -3e4]])
    for fmt in ("%.3f", "%.9f", "%.0f", "%.17g", "%e", "%.6f"):
        tokens = [fmt % x for x in values]
        text = " \n".join(" ".join(tokens[i:i + 3]) for i in range(0, len(tokens), 3)).encode()
        parsed = _read.text_numbers(text).astype(np.float64)  # "%.0f" gives integers
        expected = np.array([float(t) for t in tokens])
        if fmt == "%.0f":
            np.testing.assert_array_equal(parsed, expected)
        else:  # bit for bit, -0.0 too
            assert parsed.view(np.uint64).tolist() == expected.view(np.uint64).tolist(), fmt
    for text, expected in [(b"+1.5 .5 5. -.25", [1.5, 0.5, 5.0, -0.25]), (b"1 -2 +3", [1, -2, 3]),
                           (b"  \n", []), (b"nan 1.5", [np.nan, 1.5])]:
        np.testing.assert_array_equal(_read.text_numbers(text), expected)
    assert _read.text_numbers(b"3 0 1 2").dtype == np.int64
    for bad in (b"1 - 2", b"1.0 - 2.0", b"1..2", b"1.2.3", b"v 1 2", b"1 2-"):
        with pytest.raises(_read.BadText):
            _read.text_numbers(bad)


# ---------------------------------------------------------------------------- damaged files

def _binary_ply(tmp_path, sphere) -> bytes:
    path = tmp_path / "good.ply"
    mesh_export.write(sphere, path)
    return path.read_bytes()


def _damaged(tmp_path, sphere):
    good = _binary_ply(tmp_path, sphere)
    stl = tmp_path / "good.stl"
    mesh_export.write(sphere, stl)
    faces = len(sphere.faces)
    return {
        "truncated.ply": good[:-7],
        "lying-more-faces.ply": good.replace(f"element face {faces}".encode(), f"element face {faces + 5}".encode()),
        "lying-fewer-faces.ply": good.replace(f"element face {faces}".encode(), f"element face {faces - 5}".encode()),
        "lying-vertices.ply": good.replace(f"element vertex {len(sphere.vertices)}".encode(),
                                           f"element vertex {len(sphere.vertices) + 1}".encode()),
        "no-end-header.ply": b"ply\nformat ascii 1.0\nelement vertex 3\n",
        "ascii-short.ply": (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                            b"property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
                            b"0 0 0\n1 0 0\n"),
        "truncated.stl": stl.read_bytes()[:-20],
        "no-endsolid.stl": b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\n",
        "short.stl": b"tiny",
        "off-short.off": b"OFF\n3 1 0\n0 0 0\n1 0 0\n",
    }


def test_damaged_files_are_one_line_input_errors(sphere, tmp_path):
    for name, data in _damaged(tmp_path, sphere).items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(errors.InputError, match="cannot read"):
            read_surface(path)
    for name in ("truncated.ply", "lying-fewer-faces.ply", "truncated.stl", "ascii-short.ply"):
        result = run_cli("convert", tmp_path / name, tmp_path / f"{name}.out.stl")
        assert result.returncode == errors.InputError.exit_code, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert not (tmp_path / f"{name}.out.stl").exists()


def test_bad_indices_get_the_mesh_validation(tmp_path):
    path = tmp_path / "zero.obj"
    path.write_text(_OBJ_V + "f 0 1 2\n")  # OBJ indices start at 1
    result = run_cli("convert", path, tmp_path / "out.stl")
    assert result.returncode == errors.InvalidMeshError.exit_code and "outside" in result.stderr


# ---------------------------------------------------------------------------- convert

def test_convert_hands_the_arrays_as_read_to_the_binary_writer(neuron_mesh, tmp_path):
    source = tmp_path / "n.ply"
    neuron_mesh.export(source)  # trimesh's binary PLY: float32 vertices, int32 faces
    out = tmp_path / "n.stl"
    written, mesh = mesh_export.convert(source, out, return_mesh=True)
    assert not isinstance(mesh, trimesh.Trimesh)  # no 64-bit copies on the way
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    ours = trimesh.load(out, process=False)
    theirs = trimesh.load(source, process=False)
    np.testing.assert_array_equal(ours.triangles, theirs.triangles.astype(np.float32))
    _, stepped = mesh_export.convert(source, tmp_path / "um.stl", units_in="nm", units="um", return_mesh=True)
    assert isinstance(stepped, trimesh.Trimesh) and stepped.units == "um"


# ---------------------------------------------------------------------------- meshio's formats

def test_meshio_formats_read_quietly_through_its_public_api(sphere, tmp_path, capfd):
    # meshio.read prints a failed attempt's reason and exits: a Gmsh .msh is tried as ANSYS
    # first, and a damaged file's reason must become the InputError, with nothing printed.
    gmsh = tmp_path / "sphere.msh"
    mesh_export.write(sphere, gmsh)
    capfd.readouterr()
    vertices, faces, _ = read_surface(gmsh)
    assert len(faces) == len(sphere.faces)
    damaged = tmp_path / "damaged.vtk"
    damaged.write_bytes(b"# vtk DataFile Version 4.2\nx\nASCII\nDATASET NONSENSE\n")
    with pytest.raises(errors.InputError, match="NONSENSE is not a VTK dataset type"):
        read_surface(damaged)  # (legacy VTK is read natively now)
    assert capfd.readouterr() == ("", "")
    source = open(readers.__file__).read()
    assert "meshio._" not in source
