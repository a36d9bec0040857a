"""VTK XML (.vtp, .vtu) and legacy (.vtk) files read natively, in every encoding VTK writes, and
read right: faces, area and bounding box equal what VTK's own readers and triangle filter give.
Mixed cells: surfaces kept, strips and pixels as VTK decomposes them, quadratic cells by their
corners, lines and points dropped and counted. The files are made by VTK itself, once per module.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

import mesh_export
import mesh_export.api
import mesh_export.writers.readers
from conftest import run_cli
from mesh_export import errors

pytest.importorskip("vtkmodules")

from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402
from vtkmodules.vtkCommonCore import vtkPoints  # noqa: E402
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData, vtkUnstructuredGrid  # noqa: E402
from vtkmodules.vtkFiltersCore import vtkTriangleFilter  # noqa: E402
from vtkmodules.vtkFiltersGeometry import vtkDataSetSurfaceFilter  # noqa: E402
from vtkmodules.vtkFiltersSources import vtkSphereSource  # noqa: E402
from vtkmodules.vtkFiltersVerdict import vtkCellSizeFilter  # noqa: E402
from vtkmodules.vtkIOLegacy import vtkDataSetReader, vtkPolyDataWriter, vtkUnstructuredGridWriter  # noqa: E402
from vtkmodules.vtkIOXML import (vtkXMLGenericDataObjectReader, vtkXMLPolyDataWriter,  # noqa: E402
                                 vtkXMLUnstructuredGridWriter)

# ---------------------------------------------------------------------------- VTK as the reference


def _vtk_read(path):
    reader = vtkDataSetReader() if str(path).endswith(".vtk") else vtkXMLGenericDataObjectReader()
    reader.SetFileName(str(path))
    reader.Update()
    return reader


def vtk_surface(path) -> tuple[np.ndarray, np.ndarray]:
    """(points, triangles) of a file's surface cells as VTK gives them: its surface filter (no
    subdivision of quadratic cells), then its triangle filter without lines and points."""
    reader = _vtk_read(path)  # held: the pipeline does not keep it alive
    surface = vtkDataSetSurfaceFilter()
    surface.SetInputData(reader.GetOutputDataObject(0))
    surface.SetNonlinearSubdivisionLevel(0)
    triangles = vtkTriangleFilter()
    triangles.SetInputConnection(surface.GetOutputPort())
    triangles.PassLinesOff()
    triangles.PassVertsOff()
    triangles.Update()
    out = triangles.GetOutput()
    return vtk_to_numpy(out.GetPoints().GetData()), vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3)


def vtk_volume(path) -> float:
    reader = _vtk_read(path)
    sizes = vtkCellSizeFilter()
    sizes.SetInputData(reader.GetOutputDataObject(0))
    sizes.Update()
    return float(vtk_to_numpy(sizes.GetOutput().GetCellData().GetArray("Volume")).sum())


def area(points, triangles) -> float:
    p = np.asarray(points, dtype=np.float64)[triangles]
    return float(np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum() / 2)


# ---------------------------------------------------------------------------- the files


def _points(coordinates) -> vtkPoints:
    points = vtkPoints()
    for p in coordinates:
        points.InsertNextPoint(*p)
    return points


GRID = [(x, y, z) for z in range(3) for y in range(3) for x in range(3)]


def _at(x, y, z) -> int:
    return x + 3 * y + 9 * z


# Surface cells of every kind, with a line and a vertex (VTK type id, points).
MIXED_SURFACE = [
    (5, [_at(0, 0, 0), _at(1, 0, 0), _at(1, 1, 0)]),  # triangle
    (9, [_at(1, 0, 0), _at(2, 0, 0), _at(2, 1, 0), _at(1, 1, 0)]),  # quad
    (8, [_at(0, 1, 0), _at(1, 1, 0), _at(0, 2, 0), _at(1, 2, 0)]),  # pixel: x first, then y
    (6, [_at(0, 0, 1), _at(1, 0, 1), _at(0, 1, 1), _at(1, 1, 1), _at(0, 2, 1), _at(1, 2, 1)]),  # strip
    (7, [_at(0, 0, 2), _at(1, 0, 2), _at(2, 0, 2), _at(2, 1, 2), _at(1, 1, 2)]),  # pentagon
    (22, [_at(2, 2, 0), _at(2, 2, 2), _at(0, 2, 2), _at(2, 2, 1), _at(1, 2, 2), _at(1, 2, 1)]),  # quadratic triangle
    (23, [_at(0, 0, 0), _at(2, 0, 0), _at(2, 0, 2), _at(0, 0, 2), _at(1, 0, 0), _at(2, 0, 1), _at(1, 0, 2),
          _at(0, 0, 1)]),  # quadratic quad
    (3, [_at(0, 0, 0), _at(2, 2, 2)]),  # line: dropped
    (1, [_at(1, 1, 1)]),  # vertex: dropped
]
CUBE = [(x, y, z) for z in (0, 1) for y in (0, 1) for x in (0, 1)]  # corner k: x = k & 1, y = k >> 1 & 1, z = k >> 2
# A unit cube as cells of one kind (volume 1, boundary area 6), VTK's node orders.
_HEX = [0, 1, 3, 2, 4, 5, 7, 6]
CUBES = {
    "hexahedron": (12, [_HEX], CUBE),
    "voxel": (11, [list(range(8))], CUBE),
    "tetra": (10, [[0, 1, 3, 5], [0, 3, 2, 6], [0, 4, 5, 6], [3, 7, 6, 5], [0, 3, 6, 5]], CUBE),
    "wedge": (13, [[0, 1, 2, 4, 5, 6], [1, 3, 2, 5, 7, 6]], CUBE),
    # six pyramids from the centre (point 8) onto each face
    "pyramid": (14, [[0, 1, 3, 2, 8], [4, 6, 7, 5, 8], [0, 4, 5, 1, 8], [2, 3, 7, 6, 8], [0, 2, 6, 4, 8],
                     [1, 5, 7, 3, 8]], CUBE + [(0.5, 0.5, 0.5)]),
}


def _midpoints(corners, edges, coordinates, made: dict):
    """Quadratic cells: the corners, then a point at the middle of each edge, one per edge of the
    mesh (cells sharing an edge share its midpoint, so that shared faces match)."""
    nodes = list(corners)
    for a, b in edges:
        key = tuple(sorted((corners[a], corners[b])))
        if key not in made:
            coordinates.append(tuple((np.asarray(coordinates[key[0]]) + coordinates[key[1]]) / 2))
            made[key] = len(coordinates) - 1
        nodes.append(made[key])
    return nodes


_TET_EDGES = [(0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3)]
_WEDGE_EDGES = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (0, 3), (1, 4), (2, 5)]
_PYRAMID_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4), (2, 4), (3, 4)]


def _quadratic(name):
    coordinates = list(CUBES[name][2])
    code, edges = {"tetra": (24, _TET_EDGES), "wedge": (26, _WEDGE_EDGES), "pyramid": (27, _PYRAMID_EDGES)}[name]
    made: dict = {}
    return code, [_midpoints(cell, edges, coordinates, made) for cell in CUBES[name][1]], coordinates


CUBES.update({"tetra10": _quadratic("tetra"), "wedge15": _quadratic("wedge"), "pyramid13": _quadratic("pyramid")})


def _grid(coordinates, cells) -> vtkUnstructuredGrid:
    grid = vtkUnstructuredGrid()
    grid.SetPoints(_points(coordinates))
    for code, ids in cells:
        grid.InsertNextCell(code, len(ids), ids)
    return grid


def _write_grid(grid, path, binary: bool, legacy_version: int | None = None) -> None:
    if legacy_version:
        writer = vtkUnstructuredGridWriter()
        writer.SetFileVersion(legacy_version)
        (writer.SetFileTypeToBinary if binary else writer.SetFileTypeToASCII)()
    else:
        writer = vtkXMLUnstructuredGridWriter()
        (writer.SetDataModeToAppended if binary else writer.SetDataModeToAscii)()
    writer.SetInputData(grid)
    writer.SetFileName(str(path))
    assert writer.Write() == 1


def _grid_files(tmp, stem, grid) -> list:
    paths = []
    for binary, (suffix, version) in itertools.product((False, True), ((".vtu", None), (".vtk", 51), (".vtk", 42))):
        path = tmp / f"{stem}_{'bin' if binary else 'ascii'}{'_' + str(version) if version else ''}{suffix}"
        _write_grid(grid, path, binary, version)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vtk")
    made = {"encodings": [], "mixed": [], "polydata": [], "cubes": {}}
    sphere = vtkSphereSource()
    sphere.SetThetaResolution(12)
    sphere.SetPhiResolution(8)
    sphere.SetCenter(1.0e5, -2.0e4, 3.3e4)
    sphere.SetRadius(2500.0)
    sphere.Update()
    surface = sphere.GetOutput()
    for mode, compressor, header in itertools.product(("Ascii", "Binary", "Appended"), (None, "ZLib", "LZMA"),
                                                      ("UInt32", "UInt64")):
        if mode == "Ascii" and (compressor or header == "UInt64"):
            continue
        for encode in ((False, True) if mode == "Appended" else (None,)):
            writer = vtkXMLPolyDataWriter()
            writer.SetInputData(surface)
            path = tmp / f"sphere_{mode}_{compressor}_{header}_{'base64' if encode else 'raw'}.vtp"
            writer.SetFileName(str(path))
            getattr(writer, f"SetDataModeTo{mode}")()
            getattr(writer, f"SetCompressorTypeTo{compressor}" if compressor else "SetCompressorTypeToNone")()
            getattr(writer, f"SetHeaderTypeTo{header}")()
            if encode is not None:
                writer.SetEncodeAppendedData(encode)
            assert writer.Write() == 1
            made["encodings"].append(path)
    writer = vtkXMLPolyDataWriter()  # LZ4: read by VTK itself unless the lz4 package is installed
    writer.SetInputData(surface)
    made["lz4"] = tmp / "sphere_lz4.vtp"
    writer.SetFileName(str(made["lz4"]))
    writer.SetCompressorTypeToLZ4()
    assert writer.Write() == 1
    for extra in ("big_endian", "two_pieces"):
        writer = vtkXMLPolyDataWriter()
        writer.SetInputData(surface)
        path = tmp / f"sphere_{extra}.vtp"
        writer.SetFileName(str(path))
        if extra == "big_endian":
            writer.SetByteOrderToBigEndian()
        else:
            writer.SetNumberOfPieces(2)
        assert writer.Write() == 1
        made["encodings"].append(path)
    made["mixed"] = _grid_files(tmp, "mixed", _grid(GRID, MIXED_SURFACE))
    polydata = vtkPolyData()
    polydata.SetPoints(_points(GRID))
    for section, cells in (("Verts", [[_at(1, 1, 1)]]), ("Lines", [[0, 26], [1, 2, 3]]),
                           ("Strips", [[_at(0, 0, 1), _at(1, 0, 1), _at(0, 1, 1), _at(1, 1, 1), _at(0, 2, 1)]]),
                           ("Polys", [[0, 1, 4], [1, 2, 5, 4], [9, 10, 11, 14, 13]])):
        array = vtkCellArray()
        for cell in cells:
            array.InsertNextCell(len(cell), cell)
        getattr(polydata, f"Set{section}")(array)
    for binary in (False, True):
        writer = vtkXMLPolyDataWriter()
        writer.SetInputData(polydata)
        path = tmp / f"polydata_{'bin' if binary else 'ascii'}.vtp"
        writer.SetFileName(str(path))
        (writer.SetDataModeToAppended if binary else writer.SetDataModeToAscii)()
        assert writer.Write() == 1
        made["polydata"].append(path)
        for version in (42, 51):
            writer = vtkPolyDataWriter()
            writer.SetInputData(polydata)
            writer.SetFileVersion(version)
            (writer.SetFileTypeToBinary if binary else writer.SetFileTypeToASCII)()
            path = tmp / f"polydata_{'bin' if binary else 'ascii'}_{version}.vtk"
            writer.SetFileName(str(path))
            assert writer.Write() == 1
            made["polydata"].append(path)
    for name, (code, cells, coordinates) in CUBES.items():
        grid = _grid(coordinates, [(code, ids) for ids in cells])
        made["cubes"][name] = [tmp / f"cube_{name}.vtu", tmp / f"cube_{name}.vtk"]
        _write_grid(grid, made["cubes"][name][0], binary=True)
        _write_grid(grid, made["cubes"][name][1], binary=False, legacy_version=42)
    return made


# ---------------------------------------------------------------------------- surfaces


def _assert_reads_like_vtk(path, info: dict) -> None:
    points, triangles = vtk_surface(path)
    assert info["faces"] == len(triangles), path.name
    assert info["surface_area"] == pytest.approx(area(points, triangles), rel=1e-9), path.name
    bounds = np.asarray(_vtk_read(path).GetOutputDataObject(0).GetBounds())  # every point, as VTK bounds them
    np.testing.assert_allclose(info["bbox"]["min"], bounds[0::2], rtol=1e-7, err_msg=path.name)
    np.testing.assert_allclose(info["bbox"]["max"], bounds[1::2], rtol=1e-7, err_msg=path.name)


def test_every_vtk_xml_encoding_reads_as_vtk_reads_it(files):
    # ascii, inline base64, appended raw and base64; UInt32 and UInt64 headers; none, zlib, lzma;
    # big-endian; two pieces in one file.
    assert len(files["encodings"]) == 21
    for path in files["encodings"]:
        info = mesh_export.api.info(path)
        _assert_reads_like_vtk(path, info)
        # VTK writes a whole input into each piece: the two-piece file holds the sphere twice.
        two = "two_pieces" in path.name
        assert info["faces"] == (288 if two else 144) and (info["watertight"] or two), path.name


def test_lz4_is_read_through_vtk_unless_lz4_is_installed(files):
    _assert_reads_like_vtk(files["lz4"], mesh_export.api.info(files["lz4"]))


def test_the_native_readers_need_no_vtk(files, monkeypatch, tmp_path):
    # VTK is only the reference here: with its modules unimportable every file still reads.
    import sys

    for name in [m for m in sys.modules if m.startswith("vtkmodules")] + ["vtkmodules", "lz4"]:
        monkeypatch.setitem(sys.modules, name, None)
    for path in files["encodings"] + files["mixed"] + files["polydata"]:
        vertices, faces, _ = mesh_export.writers.readers.read_surface(path)
        assert len(faces) > 0, path.name
    # Without VTK's ear cutting, a non-convex polygon is ear-clipped, not fanned over itself.
    ell = tmp_path / "ell.vtk"
    ell.write_text("# vtk DataFile Version 4.2\nx\nASCII\nDATASET POLYDATA\nPOINTS 6 float\n"
                   "2 1 0 1 1 0 1 2 0 0 2 0 0 0 0 2 0 0\nPOLYGONS 2 11\n6 0 1 2 3 4 5\n3 0 1 5\n")
    vertices, faces, _ = mesh_export.writers.readers.read_surface(ell)
    assert area(vertices, faces) == pytest.approx(3.0 + 0.5) and len(faces) == 4 + 1
    with pytest.raises(errors.InputError, match=r"lz4.*pip install 'mesh-export\[vtk\]'"):
        mesh_export.writers.readers.read_surface(files["lz4"])


def test_mixed_cells_keep_the_surfaces_and_count_what_is_dropped(files):
    for path in files["mixed"]:
        info = mesh_export.api.info(path)
        _assert_reads_like_vtk(path, info)
        # triangle 1, quad 2, pixel 2, strip 4, pentagon 3, quadratic triangle 1, quadratic quad 2
        assert info["faces"] == 15, path.name
        assert info["dropped_cells"] == {"line": 1, "vertex": 1}, path.name
    for path in files["polydata"]:
        info = mesh_export.api.info(path)
        _assert_reads_like_vtk(path, info)
        assert info["faces"] == 1 + 2 + 3 + 3, path.name
        assert sum(info["dropped_cells"].values()) == 3, path.name


def test_strips_and_pixels_are_wound_as_vtk_winds_them(tmp_path):
    # Face by face, the same corners in the same order as VTK's triangle filter: strips alternate
    # their winding so that every triangle faces one way; a pixel's corners run x, then y.
    strips_and_pixels = [cell for cell in MIXED_SURFACE if cell[0] in (6, 8)]
    strips_and_pixels.append((6, [_at(2, 0, 0), _at(2, 1, 0), _at(2, 0, 1), _at(2, 1, 1), _at(2, 0, 2)]))
    for suffix, version in ((".vtu", None), (".vtk", 42), (".vtk", 51)):
        path = tmp_path / f"strips{version or ''}{suffix}"
        _write_grid(_grid(GRID, strips_and_pixels), path, binary=True, legacy_version=version)
        vertices, faces, _ = mesh_export.writers.readers.read_surface(path)
        points, triangles = vtk_surface(path)
        assert len(faces) == 2 + 4 + 3
        assert _oriented(np.asarray(vertices)[faces]) == _oriented(points[triangles]), path.name


def _oriented(corners: np.ndarray) -> set:
    """Triangles as sets of corner positions, each listed from its smallest corner on (so that
    the same triangle wound the same way compares equal, whatever corner comes first)."""
    found = set()
    for triangle in corners.round(6).tolist():
        keys = [tuple(p) for p in triangle]
        start = keys.index(min(keys))
        found.add(tuple(keys[start:] + keys[:start]))
    return found


def test_a_read_vtp_converts_to_every_surface_format_with_the_same_area(files, tmp_path):
    source = files["mixed"][1]
    before = mesh_export.api.info(source)
    for suffix in (".ply", ".stl", ".vtp", ".vtk", ".obj"):
        target = tmp_path / f"out{suffix}"
        result = run_cli("convert", source, target, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["dropped_cells"] == {"line": 1, "vertex": 1}
        after = mesh_export.api.info(target)
        assert after["faces"] == before["faces"]
        assert after["surface_area"] == pytest.approx(before["surface_area"], rel=1e-6)


# ---------------------------------------------------------------------------- volumes


@pytest.mark.parametrize("name", list(CUBES))
def test_volume_cells_read_as_a_volume_with_vtks_volume(files, name, tmp_path):
    for path in files["cubes"][name]:
        info = mesh_export.api.info(path)
        assert info["kind"] == "volume"
        assert info["elements"] == len(CUBES[name][1])
        linear = {"voxel": "hexahedron", "tetra10": "tetra", "wedge15": "wedge", "pyramid13": "pyramid"}.get(name, name)
        assert info["cells"] == {linear: len(CUBES[name][1])}
        assert info["volume"] == pytest.approx(1.0, rel=1e-12)
        assert info["volume"] == pytest.approx(vtk_volume(path), rel=1e-9)
        assert info["bbox"]["min"] == [0, 0, 0] and info["bbox"]["max"] == [1, 1, 1]
        # Its boundary as a surface: the cube's six faces, closed and facing out, as VTK finds them.
        stl = tmp_path / f"{path.stem}{path.suffix[1:]}.stl"
        if path.suffix == ".vtu":  # through the CLI once per cell type
            result = run_cli("convert", path, stl, "--json")
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["steps"][-1]["step"] == "boundary"
        else:
            written, mesh = mesh_export.api.convert(path, stl, return_mesh=True)
            assert mesh.metadata["steps"][-1]["cells"] == {linear: len(CUBES[name][1])}
        surface = mesh_export.api.info(stl)
        points, triangles = vtk_surface(path)
        assert surface["surface_area"] == pytest.approx(area(points, triangles), rel=1e-9)
        assert surface["surface_area"] == pytest.approx(6.0) and surface["watertight"]
        assert surface["volume"] == pytest.approx(1.0) and surface["winding_consistent"]
        mesh = mesh_export.load(stl)
        assert mesh.volume > 0  # outward


def test_wedges_stored_as_collapsed_bricks_read_back_as_wedges(files, tmp_path):
    # Tecplot has no wedge: meshio writes each as a hexahedron with two corners doubled. Every
    # other volume format is walked in tests/test_round_trip.py.
    target = tmp_path / "cube.dat"
    mesh_export.api.convert(files["cubes"]["wedge15"][0], target)
    info = mesh_export.api.info(target)
    assert info["cells"] == {"wedge": 2} and info["volume"] == pytest.approx(1.0)


def test_mixed_volume_cells_and_gmsh(files, tmp_path):
    grid = _grid(CUBES["pyramid"][2], [(14, ids) for ids in CUBES["pyramid"][1][:3]]
                 + [(10, [0, 1, 3, 5]), (5, [0, 1, 2])])
    source = tmp_path / "mixed.vtu"
    _write_grid(grid, source, binary=True)
    info = mesh_export.api.info(source)
    assert info["cells"] == {"tetra": 1, "pyramid": 3} and info["dropped_cells"] == {"triangle": 1}
    assert info["volume"] == pytest.approx(vtk_volume(source), rel=1e-9)
    # meshio's Gmsh 4.1 writer takes one cell type: a clear refusal naming the way out.
    result = run_cli("convert", source, tmp_path / "mixed.msh")
    assert result.returncode == errors.InvalidArgumentError.exit_code
    assert "gmsh22" in result.stderr and result.stderr.count("\n") == 1
    result = run_cli("convert", source, tmp_path / "mixed.msh", "--format", "gmsh22")
    assert result.returncode == 0, result.stderr
    assert mesh_export.api.info(tmp_path / "mixed.msh")["cells"] == {"tetra": 1, "pyramid": 3}


def test_processing_a_volume_in_a_volume_format_is_refused(files, tmp_path):
    result = run_cli("convert", files["cubes"]["tetra"][0], tmp_path / "out.vtu", "--scale", "2")
    assert result.returncode == errors.InvalidArgumentError.exit_code
    assert "volume mesh" in result.stderr and result.stderr.count("\n") == 1


# ---------------------------------------------------------------------------- refusals


def test_what_cannot_be_read_is_refused_in_one_line(files, tmp_path):
    cases = {}
    short_prism = tmp_path / "short_prism.vtu"
    short_prism.write_text(
        '<?xml version="1.0"?>\n<VTKFile type="UnstructuredGrid" version="1.0" byte_order="LittleEndian">\n'
        '<UnstructuredGrid><Piece NumberOfPoints="3" NumberOfCells="1"><Points>'
        '<DataArray type="Float32" NumberOfComponents="3" format="ascii">0 0 0 1 0 0 0 1 0</DataArray></Points>'
        '<Cells><DataArray type="Int32" Name="connectivity" format="ascii">0 1 2</DataArray>'
        '<DataArray type="Int32" Name="offsets" format="ascii">3</DataArray>'
        '<DataArray type="UInt8" Name="types" format="ascii">15</DataArray></Cells></Piece></UnstructuredGrid>'
        '</VTKFile>\n')
    cases[short_prism] = "a penta prism cell with 3 points, not 10"
    polyhedron = tmp_path / "polyhedron.vtu"
    polyhedron.write_text(short_prism.read_text().replace(">15</DataArray>", ">42</DataArray>"))
    cases[polyhedron] = "polyhedron cells (faces listed one by one) cannot be mapped"
    truncated = tmp_path / "truncated.vtp"
    whole = next(p for p in files["encodings"] if "Appended_None_UInt64_raw" in p.name).read_bytes()
    truncated.write_bytes(whole[: len(whole) - 200])
    cases[truncated] = "truncated"
    huge = tmp_path / "huge.vtp"  # an appended array's byte count of 2**60: refused before anything is allocated
    start = whole.index(b"_", whole.index(b"<AppendedData")) + 1
    points_at = start + int(re.search(rb'Name="Points"[^>]*offset="(\d+)"', whole).group(1))
    huge.write_bytes(whole[:points_at] + (2**60).to_bytes(8, "little") + whole[points_at + 8:])
    cases[huge] = "runs past the file's end"
    lines_only = tmp_path / "lines.vtk"
    lines_only.write_text("# vtk DataFile Version 4.2\nx\nASCII\nDATASET POLYDATA\nPOINTS 2 float\n0 0 0 1 1 1\n"
                          "LINES 1 3\n2 0 1\n")
    cases[lines_only] = "only 1 poly line"
    short = tmp_path / "short.vtk"
    short.write_text("# vtk DataFile Version 4.2\nx\nASCII\nDATASET POLYDATA\nPOINTS 4 float\n0 0 0 1 1 1\n"
                     "POLYGONS 1 4\n3 0 1 2\n")
    cases[short] = "header says 12"
    bad_index = tmp_path / "bad_index.vtk"  # a volume cell naming a point the file lacks
    bad_index.write_text("# vtk DataFile Version 4.2\nx\nASCII\nDATASET UNSTRUCTURED_GRID\nPOINTS 4 float\n"
                         "0 0 0 1 0 0 0 1 0 0 0 1\nCELLS 1 5\n4 0 1 2 9\nCELL_TYPES 1\n10\n")
    cases[bad_index] = "a tetra cell names point 9, and there are 4"
    for path, words in cases.items():
        result = run_cli("info", path)
        assert result.returncode == errors.InputError.exit_code, (path.name, result.stderr)
        assert words in result.stderr and result.stderr.count("\n") == 1, (path.name, result.stderr)


# ---------------------------------------------------------------------------- what real files hold


def test_what_published_files_hold_reads_as_vtk_reads_it(tmp_path):
    # Shapes met in published VTK data (pyvista's vtk-data): a non-convex polygon (an L, starting
    # at its inner corner: a fan from there would count 4 for its area of 3), an ASCII list begun
    # on its keyword's line, a hexahedron given its 20 quadratic points, a pentagonal prism.
    ell = vtkPolyData()
    ell.SetPoints(_points([(2, 1, 0), (1, 1, 0), (1, 2, 0), (0, 2, 0), (0, 0, 0), (2, 0, 0)]))
    polys = vtkCellArray()
    polys.InsertNextCell(6, list(range(6)))
    ell.SetPolys(polys)
    path = tmp_path / "ell.vtp"
    writer = vtkXMLPolyDataWriter()
    writer.SetInputData(ell)
    writer.SetFileName(str(path))
    assert writer.Write() == 1
    info = mesh_export.api.info(path)
    _assert_reads_like_vtk(path, info)
    assert info["surface_area"] == pytest.approx(3.0)
    same_line = tmp_path / "same_line.vtk"
    same_line.write_text("# vtk DataFile Version 1.0\nx\nASCII\n\nDATASET POLYDATA\nPOINTS 3 float\n0 0 0 1 0 0 0 1 0\n"
                         "POLYGONS 1 4 3\n0 1 2\n")
    assert mesh_export.api.info(same_line)["surface_area"] == pytest.approx(0.5)
    coordinates = list(CUBES["hexahedron"][2])
    hex20 = _midpoints(_HEX, [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5),
                              (2, 6), (3, 7)], coordinates, {})
    pentagon = [(np.cos(a), np.sin(a)) for a in np.linspace(0, 2 * np.pi, 6)[:-1]]
    prism_points = [(x, y, 0.0) for x, y in pentagon] + [(x, y, 2.0) for x, y in pentagon]
    for name, grid, cells in (("hex20_as_hex", _grid(coordinates, [(12, hex20)]), {"hexahedron": 1}),
                              ("prism", _grid(prism_points, [(15, list(range(10)))]), {"wedge": 3})):
        path = tmp_path / f"{name}.vtu"
        _write_grid(grid, path, binary=True)
        info = mesh_export.api.info(path)
        assert info["cells"] == cells
        assert info["volume"] == pytest.approx(vtk_volume(path), rel=1e-9)
