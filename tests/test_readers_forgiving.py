"""Forgiving where the meaning is clear, strict where it is not (issue 27): files with lines and
points among their faces, byte-order marks, UTF-16, CRLF, comments anywhere, trailing bytes
after a complete body and binary OFF are read, what was skipped said once (stderr, metadata,
info); wrong counts, truncation, NaN and indices out of range are one-line errors naming the
line or byte. Whatever is read has the reference reader's area and bounding box. Units of 3MF
and per-vertex colours and uv are carried."""

from __future__ import annotations

import json
import zipfile

import meshio
import numpy as np
import pytest
import trimesh
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader, vtkXMLUnstructuredGridReader

import mesh_export
from conftest import run_cli
from mesh_export import api, errors
from mesh_export.model import VERTEX_ATTRIBUTES

V4 = "0 0 0\n1 0 0\n0 1 0\n0 0 1\n"
PLY_HEAD = ("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
            "element face {faces}\nproperty list uchar int vertex_indices\nend_header\n")
OBJ_LINES = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nl 1 4\np 4\nf 1 3 4\nf 2 4\n"


def _binary_ply(faces) -> bytes:
    head = PLY_HEAD.format(faces=len(faces)).replace("ascii", "binary_little_endian").encode()
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], "<f4").tobytes()
    return head + vertices + b"".join(bytes([len(f)]) + np.array(f, "<i4").tobytes() for f in faces)


def _binary_mixed_ply() -> bytes:
    return _binary_ply([[0, 1, 2], [0, 3], [0, 2, 3]])


def _binary_off(faces) -> bytes:
    """Geomview binary OFF of the four vertices; ``faces``: (indices, colour floats) pairs."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], ">f4")
    records = b"".join(np.array([len(i), *i, len(c)], ">i4").tobytes() + np.array(c, ">f4").tobytes()
                       for i, c in faces)
    return b"OFF BINARY\n" + np.array([4, len(faces), 0], ">i4").tobytes() + vertices.tobytes() + records


# name -> (bytes, faces read, a phrase of what was skipped (None: nothing), the reference reader)
READ = {
    "mixed.ply": ((PLY_HEAD.format(faces=3) + V4 + "3 0 1 2\n2 0 3\n3 0 2 3\n").encode(), 2,
                  "left out: faces of 1 or 2 vertices (lines, points): 1", "trimesh"),
    "mixed-binary.ply": (_binary_mixed_ply(), 2, "left out: faces of 1 or 2 vertices (lines, points): 1", None),  # trimesh refuses it
    "lines.obj": (OBJ_LINES.encode(), 2, "left out: 'l' lines (polylines): 1", "trimesh"),
    "utf16.obj": (OBJ_LINES.encode("utf-16"), 2, "UTF-16 byte-order mark", None),
    "bom.obj": (b"\xef\xbb\xbf" + b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", 1, "UTF-8 byte-order mark", None),
    "bom.ply": (b"\xef\xbb\xbf" + (PLY_HEAD.format(faces=1) + V4 + "3 0 1 2\n").encode(), 1, "UTF-8 byte-order", None),
    "crlf.off": (b"OFF\r\n4 2 0\r\n" + V4.replace("\n", "\r\n").encode() + b"3 0 1 2\r\n3 0 2 3\r\n", 2, None,
                 "trimesh"),
    "crlf.ply": ((PLY_HEAD.format(faces=1) + V4 + "3 0 1 2\n").replace("\n", "\r\n").encode(), 1, None,
                 "meshio"),  # trimesh reads its vertices wrong (the last one's z as 0)
    # Comments after the numbers: neither trimesh nor meshio reads them.
    "comments.obj": (b"# made by hand\nv 0 0 0 # origin\nv 1 0 0\nv 0 1 0\nf 1 2 3 # the only face\n", 1, None, None),
    "bom.stl": (b"\xef\xbb\xbfsolid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\n"
                b"endloop\nendfacet\nendsolid t\n", 1, "UTF-8 byte-order mark", None),
    "comments.off": (b"OFF # a comment\n# another\n4 2 0\n0 0 0 # origin\n1 0 0\n\n# between\n0 1 0\n0 0 1\n"
                     b"3 0 1 2 # first\n3 0 2 3\n", 2, "comments among the numbers", None),
    "trailing.off": (b"OFF\n4 2 0\n" + V4.encode() + b"3 0 1 2\n3 0 2 3\n\nend of file, says the exporter\n", 2,
                     "bytes of text after the complete body (from line 10)", None),
    "trailing-binary.ply": (_binary_ply([[0, 1, 2], [0, 2, 3]]) + b"\r\n", 2, "2 bytes after the complete body",
                            None),  # trimesh refuses the trailing bytes
    # The smallest lines the size check allows, and no newline at the end.
    "tight.off": (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2", 1, None, "trimesh"),
    "tight.ply": ((PLY_HEAD.format(faces=1).replace("vertex 4", "vertex 3") + "0 0 0\n1 0 0\n0 1 0\n3 0 1 2").encode(),
                  1, None, "trimesh"),
    "trailing-text.ply": (_binary_ply([[0, 1, 2]]) + b"\nexported by a scanner, 2026\n", 1,
                          "29 bytes after the complete body (from byte 230)", None),
    "nan-colour.obj": (b"v 0 0 0 nan 0 0\nv 1 0 0 1 0 0\nv 0 1 0 0 1 0\nf 1 2 3\n", 1, "vertex colours with NaN", None),
    "binary.off": (_binary_off([([0, 1, 2], []), ([0, 1, 3, 2], [0.5, 0.5, 0.5, 1.0])]), 3, None, None),
}


def _read(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", sorted(READ))
def test_clear_variants_are_read_and_what_was_skipped_is_said(name, tmp_path, capsys):
    data, faces, skipped, reference = READ[name]
    path = _read(tmp_path, name, data)
    capsys.readouterr()
    report = api.info(path)
    err = capsys.readouterr().err
    assert report["faces"] == faces
    if skipped:
        assert any(skipped in s for s in report["skipped"]), report.get("skipped")
        assert err.count("mesh-export: ") == 1 and skipped in err, err  # said once
    else:
        assert "skipped" not in report and err == ""
    if reference == "trimesh":  # trimesh reads it too: the same area and box
        theirs = trimesh.load(path, process=False, force="mesh")
        assert report["surface_area"] == pytest.approx(theirs.area, rel=1e-12)
        np.testing.assert_allclose(report["bbox"]["min"], theirs.bounds[0])
        np.testing.assert_allclose(report["bbox"]["max"], theirs.bounds[1])
    if reference == "meshio":
        theirs = meshio.read(path)
        corners = theirs.points[theirs.cells_dict["triangle"]]
        area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
        assert report["surface_area"] == pytest.approx(area, rel=1e-12)
        np.testing.assert_allclose(report["bbox"]["min"], theirs.points.min(axis=0))
        np.testing.assert_allclose(report["bbox"]["max"], theirs.points.max(axis=0))


def test_binary_off_reads_what_the_same_text_off_holds(tmp_path):
    binary = _read(tmp_path, "b.off", READ["binary.off"][0])
    text = _read(tmp_path, "t.off", b"OFF\n4 2 0\n" + V4.encode() + b"3 0 1 2\n4 0 1 3 2 1 0 0 0\n")
    ours, reference = api.info(binary), api.info(text)
    assert (ours["faces"], ours["surface_area"], ours["bbox"]["max"]) == (
        reference["faces"], reference["surface_area"], reference["bbox"]["max"])


def test_utf16_and_crlf_files_read_as_the_plain_file(tmp_path):
    plain = api.info(_read(tmp_path, "plain.obj", OBJ_LINES.encode()))
    for variant in (OBJ_LINES.encode("utf-16-le"), OBJ_LINES.encode("utf-16-be"), OBJ_LINES.replace("\n", "\r\n").encode()):
        bom = b"\xff\xfe" if variant[:1] == b"v" and variant[1:2] == b"\x00" else b"\xfe\xff" if variant[:1] == b"\x00" else b""
        info = api.info(_read(tmp_path, "variant.obj", bom + variant))
        assert (info["faces"], info["surface_area"]) == (plain["faces"], plain["surface_area"])


# name -> (bytes, error class, words the one-line message holds: the place first)
REFUSED = {
    "short.ply": ((PLY_HEAD.format(faces=2) + V4 + "3 0 1 2\n").encode(), errors.InputError, "line 15: the file ends 1"),
    "more.ply": ((PLY_HEAD.format(faces=1) + V4 + "3 0 1 2\n3 0 2 3\n").encode(), errors.InputError,
                 "line 15: more elements than the header declares"),
    "extra-records.ply": (_binary_mixed_ply() + bytes([3]) + bytes(12), errors.InputError,
                          "13 bytes of binary data after the last face record"),
    "truncated.ply": (_binary_ply([[0, 1, 2], [0, 2, 3]])[:-3], errors.InputError, "byte 240: the file ends inside"),
    "trailing-binary.off": (_binary_off([([0, 1, 2], [])]) + np.arange(6, dtype=">i4").tobytes(), errors.InputError,
                            "24 bytes of binary data after the last face"),
    "word.off": (b"OFF\n4 1 0\n0 0 0\n1 0 0\n0 one 0\n0 0 1\n3 0 1 2\n", errors.InputError, "line 5: not numbers"),
    "nan.ply": ((PLY_HEAD.format(faces=1) + "0 0 0\n1 0 0\n0 nan 0\n0 0 1\n3 0 1 2\n").encode(),
                errors.InvalidMeshError, "line 12: NaN or infinite coordinate"),
    "inf-binary.off": (_binary_off([([0, 1, 2], [])]).replace(np.array([1, 0, 0], ">f4").tobytes(),
                                                                   np.array([np.inf, 0, 0], ">f4").tobytes()),
                       errors.InvalidMeshError, "byte 35: NaN or infinite"),
    "index.off": (b"OFF\n4 2 0\n" + V4.encode() + b"3 0 1 2\n3 0 2 4\n", errors.InvalidMeshError,
                  "line 8: a face index outside the 4 vertices"),
    "index-binary.ply": (_binary_mixed_ply().replace(b"\x03\x00\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00",
                                                     b"\x03\x00\x00\x00\x00\x02\x00\x00\x00\x09\x00\x00\x00"),
                         errors.InvalidMeshError, "triangle 1: a face index outside"),
    "fraction.ply": ((PLY_HEAD.format(faces=1) + V4 + "3 0 1 2.5\n").encode(), errors.InputError, "not a whole number"),
    "huge.off": (b"OFF\n2000000000 1 0\n" + V4.encode(), errors.InputError, "declares 2,000,000,000 vertices"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unclear_files_are_refused_in_one_line_naming_the_place(name, tmp_path):
    data, error, words = REFUSED[name]
    path = _read(tmp_path, name, data)
    with pytest.raises(error) as caught:
        api.info(path)
    message = str(caught.value)
    assert words in message and "\n" not in message, message
    assert type(caught.value) is error or error is errors.InputError


def test_the_cli_says_skipped_once_and_refuses_with_the_exit_code(tmp_path):
    mixed = _read(tmp_path, "mixed.ply", READ["mixed.ply"][0])
    result = run_cli("convert", mixed, tmp_path / "out.stl", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("faces of 1 or 2 vertices") == 1, result.stderr
    assert json.loads(result.stdout)["read"]["skipped"] == ["left out: faces of 1 or 2 vertices (lines, points): 1"]
    nan = _read(tmp_path, "nan.ply", REFUSED["nan.ply"][0])
    result = run_cli("info", nan)
    assert result.returncode == errors.InvalidMeshError.exit_code
    assert result.stderr.strip().splitlines() == [f"mesh-export: error: {nan}: line 12: NaN or infinite coordinate "
                                                  "(vertex 2)"]


# ---------------------------------------------------------------------------- units and colours

@pytest.mark.parametrize("unit, short, millimetres", [("micron", "um", 1e-3), ("millimeter", "mm", 1.0),
                                                      ("centimeter", "cm", 10.0), ("inch", "in", 25.4),
                                                      ("foot", "ft", 304.8), ("meter", "m", 1000.0)])
def test_every_3mf_unit_is_read_and_reported(unit, short, millimetres, tmp_path):
    made = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    box = trimesh.Trimesh(made.vertices, made.faces, process=False)
    box.metadata["units"] = short
    path = tmp_path / f"box-{short}.3mf"
    mesh_export.write(box, path)
    assert f'unit="{unit}"'.encode() in zipfile.ZipFile(path).read("3D/3dmodel.model")
    report = api.info(path)
    assert report["units"] == short
    assert report["bbox"]["um"]["size"][2] == pytest.approx(3.0 * millimetres * 1000.0)
    # --units-in takes the same names, on a file that states none.
    stl = tmp_path / "box.stl"
    mesh_export.write(box, stl)
    assert api.info(stl, units=unit)["bbox"]["um"]["size"][0] == pytest.approx(millimetres * 1000.0)


def _coloured_sphere():
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=100.0)
    sphere.visual.vertex_colors = np.random.default_rng(5).integers(0, 256, (len(sphere.vertices), 4), dtype=np.uint8)
    return sphere


@pytest.mark.parametrize("source", ["ply-binary", "ply-ascii"])
def test_vertex_colours_and_uv_pass_through_convert(source, tmp_path):
    sphere = _coloured_sphere()
    path = tmp_path / "in.ply"
    path.write_bytes(trimesh.exchange.ply.export_ply(sphere, encoding="ascii" if source == "ply-ascii" else "binary"))
    colours = np.asarray(sphere.visual.vertex_colors)
    for target in ("out.ply", "out-ascii.ply", "out.glb", "out.gltf", "out.obj"):
        out = tmp_path / target
        mesh_export.convert(path, out, ascii=True if target == "out-ascii.ply" else None)
        # Read back by trimesh, not only by us.
        theirs = trimesh.load(out, process=False, force="mesh")
        ours = mesh_export.load(out).metadata[VERTEX_ATTRIBUTES]["color"]
        rgb = 3 if target == "out.obj" else 4  # OBJ's v lines hold r g b
        np.testing.assert_array_equal(np.asarray(theirs.visual.vertex_colors)[:, :rgb], colours[:, :rgb], target)
        np.testing.assert_array_equal(ours[:, :rgb], colours[:, :rgb], target)
    for target, compress in (("out.vtp", None), ("out-z.vtp", True), ("out.vtu", None)):  # read by VTK itself
        mesh_export.convert(path, tmp_path / target, compress=compress)
        reader = (vtkXMLPolyDataReader if target.endswith(".vtp") else vtkXMLUnstructuredGridReader)()
        reader.SetFileName(str(tmp_path / target))
        reader.Update()
        np.testing.assert_array_equal(vtk_to_numpy(reader.GetOutput().GetPointData().GetScalars()), colours, target)
    uv = np.random.default_rng(6).random((len(sphere.vertices), 2)).astype(np.float32)
    plain = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False)
    plain.metadata.update(units="nm", **{VERTEX_ATTRIBUTES: {"uv": uv}})
    for target in ("uv.ply", "uv.glb", "uv.obj"):
        mesh_export.write(plain, tmp_path / target)
        np.testing.assert_allclose(mesh_export.load(tmp_path / target).metadata[VERTEX_ATTRIBUTES]["uv"], uv, atol=1e-6)
    np.testing.assert_allclose(trimesh.load(tmp_path / "uv.glb", force="mesh").visual.uv[:, 0], uv[:, 0], atol=1e-6)
    theirs = trimesh.load(tmp_path / "uv.obj", process=False)  # f a/a b/b c/c: one vt per vertex
    assert len(theirs.vertices) == len(uv)
    np.testing.assert_allclose(theirs.visual.uv, uv, atol=1e-6)


def test_colours_a_format_cannot_hold_are_said_once_and_recorded(tmp_path):
    path = tmp_path / "in.ply"
    path.write_bytes(trimesh.exchange.ply.export_ply(_coloured_sphere()))
    result = run_cli("convert", path, tmp_path / "out.stl", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("per-vertex color not written: stl holds none") == 1, result.stderr
    assert json.loads(result.stdout)["not_written"] == ["per-vertex color not written: stl holds none"]
    result = run_cli("convert", path, tmp_path / "out.obj", "--json")
    assert "alpha not written" in result.stderr and "alpha" in json.loads(result.stdout)["not_written"][0]
    assert "per vertex    color" in run_cli("info", path).stdout


def test_a_glb_of_colours_and_uv_says_it_keeps_only_the_uv(tmp_path):
    """trimesh's glTF exporter writes one visual: uv wins, and the colours are said to be lost."""
    sphere = _coloured_sphere()
    mesh = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False)
    uv = np.random.default_rng(7).random((len(mesh.vertices), 2)).astype(np.float32)
    colours = np.full((len(mesh.vertices), 4), 200, dtype=np.uint8)
    mesh.metadata.update(units="nm", **{VERTEX_ATTRIBUTES: {"uv": uv, "color": colours}})
    mesh_export.write(mesh, tmp_path / "both.glb")
    assert mesh.metadata["not_written"] == ["per-vertex color not written: glb holds only uv"]
    assert set(mesh_export.load(tmp_path / "both.glb").metadata[VERTEX_ATTRIBUTES]) == {"uv"}


def test_finite_doubles_whose_sum_overflows_are_read(tmp_path):
    header = (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty double x\nproperty double y\n"
              b"property double z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n")
    vertices = np.array([[1e308, 1e308, 0], [1e308, 0, 0], [0, 1e308, 0]], dtype="<f8")
    face = np.array([3], "u1").tobytes() + np.array([0, 1, 2], "<i4").tobytes()
    path = tmp_path / "far.ply"
    path.write_bytes(header + vertices.tobytes() + face)
    read = mesh_export.load(path, units="nm")
    np.testing.assert_array_equal(np.asarray(read.vertices), vertices)
