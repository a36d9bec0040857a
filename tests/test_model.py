"""The shared data model: kind_of() tells every shape apart, Surfaces and Skeletons go through the
public write() to real readers, and the provenance sidecars are what they were."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import meshio
import numpy as np
import pytest
import trimesh

import mesh_export
from mesh_export.errors import InputError
from mesh_export.jobs.provenance import output_counts
from mesh_export.model import SKELETON, SURFACE, VOLUME, CachedSurface, Skeleton, Surface, kind_of, read_swc
from support.sidecars import GOLDEN, api_writes, cases, export_case

TETRA_POINTS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)


def tiny_trimesh() -> trimesh.Trimesh:
    mesh = trimesh.creation.box()
    mesh.metadata["units"] = "nm"
    return mesh


def tiny_cached() -> CachedSurface:
    box = trimesh.creation.box()
    return CachedSurface(np.asarray(box.vertices, dtype=np.float32), np.asarray(box.faces, dtype=np.int32),
                         {"units": "nm", "root_id": "1"})


def tiny_skeleton() -> Skeleton:
    return Skeleton(nodes=[[0, 0, 0], [0, 0, 5], [0, 3, 9], [2, -3, 9]], parents=[-1, 0, 1, 1],
                    radii=[4.0, 1.0, 0.5, 0.5], units="um", metadata={"root_id": "1"})


def tiny_volume() -> meshio.Mesh:
    volume = meshio.Mesh(TETRA_POINTS, [("tetra", np.array([[0, 1, 2, 3]]))])
    volume.metadata = {"units": "nm", "steps": [{"step": "tetrahedralize", "elements": 1, "nodes": 4,
                                                 "volume": 1 / 6}]}
    return volume


@dataclass
class DuckSurface:
    """A third party's surface: not a Trimesh, but all a Surface has."""

    vertices: Any
    faces: Any
    units: str | None = "um"
    metadata: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- kind_of


@pytest.mark.parametrize("make, kind", [(tiny_trimesh, SURFACE), (tiny_cached, SURFACE),
                                        (tiny_skeleton, SKELETON), (tiny_volume, VOLUME)])
def test_kind_of_every_shape_the_package_passes_around(make, kind):
    assert kind_of(make()) == kind


def test_trimesh_and_cached_surface_are_both_surfaces():
    assert isinstance(tiny_trimesh(), Surface) and isinstance(tiny_cached(), Surface)
    box = trimesh.creation.box()
    assert kind_of(DuckSurface(box.vertices, box.faces)) == SURFACE


@pytest.mark.parametrize("data", ["mesh.stl", None, 3, np.zeros((4, 3)), {"vertices": [], "faces": []},
                                  trimesh.Scene(), trimesh.PointCloud(TETRA_POINTS)],
                         ids=["str", "None", "int", "array", "dict", "scene", "pointcloud"])
def test_anything_else_is_a_one_line_input_error(data):
    with pytest.raises(InputError) as info:
        kind_of(data)
    message = str(info.value)
    assert "\n" not in message and type(data).__name__ in message
    assert "not a surface mesh" in message


def test_a_meshio_surface_is_not_a_volume():
    with pytest.raises(InputError, match=r"without volume cells \(cells: triangle\)"):
        kind_of(meshio.Mesh(TETRA_POINTS, [("triangle", np.array([[0, 1, 2]]))]))


HEX_POINTS = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], dtype=float)


@pytest.mark.parametrize("cell, data", [
    ("hexahedron", [[0, 1, 3, 2, 4, 5, 7, 6]]), ("wedge", [[0, 1, 2, 4, 5, 6]]), ("pyramid", [[0, 1, 3, 2, 4]]),
    ("tetra10", [[0, 1, 2, 4, 3, 5, 6, 7, 0, 1]]), ("hexahedron20", [list(range(8)) * 2 + [0, 1, 2, 3]]),
    ("pyramid14", [list(range(8)) + list(range(6))])])
def test_every_volume_cell_makes_a_volume_mesh(cell, data):
    # Hexahedra, wedges and pyramids are volumes as tetrahedra are; quadratic cells too (by their corners).
    assert kind_of(meshio.Mesh(HEX_POINTS, [(cell, np.array(data))])) == VOLUME
    mixed = meshio.Mesh(HEX_POINTS, [("triangle", np.array([[0, 1, 2]])), (cell, np.array(data))])
    assert kind_of(mixed) == VOLUME


def test_a_wrong_type_handed_to_write_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        mesh_export.write("not a mesh", tmp_path / "out.stl")
    assert not (tmp_path / "out.stl").exists()


def test_importing_the_model_imports_neither_trimesh_nor_meshio():
    code = "import sys, mesh_export.model; print(sorted({'trimesh', 'meshio'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_output_counts_of_each_kind():
    assert output_counts(tiny_cached(), {})["faces"] == 12
    assert output_counts(tiny_trimesh(), {})["vertices"] == 8
    volume = output_counts(tiny_volume(), {})
    assert (volume["units"], volume["nodes"], volume["elements"]) == ("nm", 4, 1)
    skeleton = output_counts(tiny_skeleton(), {})
    assert (skeleton["units"], skeleton["nodes"], skeleton["soma_radius"]) == ("um", 4, 4.0)


# ----------------------------------------------------------------------------- through write()


def test_a_skeleton_through_write_reads_back_from_swc(tmp_path):
    skeleton = tiny_skeleton()
    path = mesh_export.write(skeleton, tmp_path / "cell.swc")
    back = read_swc(path)
    assert back.units == "um"
    np.testing.assert_allclose(back.nodes, skeleton.nodes, atol=1e-3)
    np.testing.assert_allclose(back.radii, skeleton.radii, atol=1e-3)
    np.testing.assert_array_equal(back.parents, skeleton.parents)
    np.testing.assert_array_equal(back.types, skeleton.types)


@pytest.mark.parametrize("name", ["box.stl", "box.ply", "box.obj", "box.off"])
def test_a_cached_surface_through_write_reads_back_with_trimesh(tmp_path, name):
    surface = tiny_cached()
    path = mesh_export.write(surface, tmp_path / name)
    back = trimesh.load(path, process=False, force="mesh")
    if name.endswith(".stl"):  # STL holds triangle corners: merge them to compare
        back.merge_vertices()
    assert len(back.faces) == len(surface.faces)
    assert sorted(map(tuple, np.round(back.vertices, 5))) == sorted(map(tuple, np.round(surface.vertices, 5)))


@pytest.mark.parametrize("make", [tiny_cached, tiny_trimesh])
def test_a_surface_through_write_reads_back_with_meshio(tmp_path, make):
    surface = make()
    path = mesh_export.write(surface, tmp_path / "box.vtu")
    back = meshio.read(path)
    np.testing.assert_allclose(back.points, np.asarray(surface.vertices), atol=1e-6)
    np.testing.assert_array_equal(back.cells_dict["triangle"], np.asarray(surface.faces))


@pytest.mark.parametrize("name", ["cell.vtu", "cell.msh"])
def test_a_volume_through_write_reads_back_with_meshio(tmp_path, name):
    path = mesh_export.write(tiny_volume(), tmp_path / name)
    back = meshio.read(path)
    np.testing.assert_allclose(back.points, TETRA_POINTS)
    np.testing.assert_array_equal(back.cells_dict["tetra"], [[0, 1, 2, 3]])


# ----------------------------------------------------------------------------- provenance


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", list(cases()))
def test_the_sidecar_is_what_it_was(tmp_path, golden, name):
    # Key order too: the sidecar is read by people as well as by a batch re-run.
    sidecar = export_case(name, tmp_path)
    assert list(sidecar) == list(golden[name])
    assert sidecar == golden[name]


def test_files_the_api_writes_are_byte_identical(tmp_path, golden):
    assert api_writes(tmp_path) == golden["api"]


def test_an_object_with_only_vertices_and_faces_is_written_as_a_surface(tmp_path):
    # units and metadata are optional in the Surface contract: writers read them with defaults.
    class Bare:
        def __init__(self, vertices, faces):
            self.vertices, self.faces = vertices, faces

    box = trimesh.creation.box()
    bare = Bare(box.vertices, box.faces)
    assert kind_of(bare) == SURFACE
    for name in ("bare.stl", "bare.ply", "bare.obj", "bare.msh"):
        path = mesh_export.write(bare, tmp_path / name)
        back = meshio.read(path)
        corners = back.points[back.cells_dict["triangle"]]  # triangles in order, whatever the indexing
        np.testing.assert_allclose(corners, box.vertices[box.faces], atol=1e-6)
