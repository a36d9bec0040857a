"""Per-vertex and per-face arrays travel with a surface through steps that keep its elements,
and are dropped (and said to be) by steps that change them."""

import numpy as np
import trimesh

from mesh_export.model import FACE_ATTRIBUTES, VERTEX_ATTRIBUTES, element_attributes
from mesh_export.process.steps import center, simplify


def _labelled_box():
    mesh = trimesh.creation.box(extents=(1000.0, 2000.0, 3000.0))
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    mesh.metadata["units"] = "nm"
    mesh.metadata[VERTEX_ATTRIBUTES] = {"color": np.arange(len(mesh.vertices) * 4, dtype=np.uint8).reshape(-1, 4)}
    mesh.metadata[FACE_ATTRIBUTES] = {"compartment": np.arange(len(mesh.faces), dtype=np.uint8) % 5,
                                      "stale": np.zeros(3)}
    return mesh


def test_only_arrays_of_the_element_count_are_attributes():
    mesh = _labelled_box()
    assert set(element_attributes(mesh, FACE_ATTRIBUTES)) == {"compartment"}
    assert element_attributes(mesh, VERTEX_ATTRIBUTES)["color"].shape == (8, 4)


def test_a_step_that_moves_vertices_keeps_them_one_that_changes_faces_drops_them():
    mesh = _labelled_box()
    moved = center(mesh)
    assert np.array_equal(element_attributes(moved, FACE_ATTRIBUTES)["compartment"],
                          mesh.metadata[FACE_ATTRIBUTES]["compartment"])
    assert "color" in element_attributes(moved, VERTEX_ATTRIBUTES)
    fine = trimesh.creation.icosphere(subdivisions=4, radius=1000.0)
    fine = trimesh.Trimesh(fine.vertices, fine.faces, process=False)
    fine.metadata.update(units="nm", **{FACE_ATTRIBUTES: {"compartment": np.ones(len(fine.faces), np.uint8)}})
    coarse = simplify(fine, ratio=0.25)
    assert len(coarse.faces) < len(fine.faces)
    assert FACE_ATTRIBUTES not in coarse.metadata
    assert coarse.metadata["steps"][-1]["dropped_attributes"] == ["compartment"]
