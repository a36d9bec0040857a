"""The lean repair passes against trimesh's own (fix_normals, fill_holes) on real and broken meshes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from mesh_export.process import steps
from mesh_export.process.repair import face_components, fill_small_holes, orient_faces, turn_bodies_outwards


def _oriented_set(faces) -> set[tuple[int, int, int]]:
    """Each face as a rotation-normalised tuple: the same triangle wound the same way is equal."""
    faces = np.asarray(faces)
    k = np.argmin(faces, axis=1)
    rolled = np.stack([np.roll(f, -i) for f, i in zip(faces, k)]) if len(faces) else faces
    return set(map(tuple, rolled.tolist()))


def _broken(mesh, seed=0, flip_fraction=0.02, holes=0):
    rng = np.random.default_rng(seed)
    faces = np.array(mesh.faces)
    flip = rng.choice(len(faces), int(len(faces) * flip_fraction), replace=False)
    faces[flip] = faces[flip][:, ::-1]
    if holes:
        faces = np.delete(faces, rng.choice(len(faces), holes, replace=False), axis=0)
    return faces


def test_a_closed_sphere_is_rewound_refilled_and_turned_out():
    sphere = trimesh.creation.icosphere(subdivisions=4)
    faces = _broken(sphere, flip_fraction=0.3)[:, ::-1]  # mostly inside out too
    faces = np.delete(faces, [10, 500, 2000], axis=0)  # three triangular holes
    # and one quad hole: two faces sharing an edge
    shared = trimesh.Trimesh(sphere.vertices, faces, process=False).face_adjacency[100]
    faces = np.delete(faces, shared, axis=0)
    oriented, flipped = orient_faces(faces, len(sphere.vertices))
    assert flipped > 0
    filled, added = fill_small_holes(oriented)
    assert added == 3 + 2
    out, turned = turn_bodies_outwards(sphere.vertices, filled)
    result = trimesh.Trimesh(sphere.vertices, out, process=False)
    assert result.is_watertight and result.is_winding_consistent and result.volume > 0
    assert _oriented_set(out) == _oriented_set(sphere.faces)


@pytest.mark.slow
def test_windings_agree_with_trimesh_on_real_neurons(neuron_meshes):
    for name, mesh in neuron_meshes.items():
        merged = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
        faces = _broken(merged, seed=len(name))
        ours, _ = orient_faces(faces, len(merged.vertices))
        theirs = trimesh.Trimesh(merged.vertices, faces, process=False)
        trimesh.repair.fix_winding(theirs)
        assert trimesh.Trimesh(merged.vertices, ours, process=False).is_winding_consistent == \
            theirs.is_winding_consistent, name
        # Each body comes out as trimesh's or as all of trimesh's reversed (its root face decides).
        count, labels = face_components(ours, len(merged.vertices))
        for body in range(count):
            mine = _oriented_set(ours[labels == body])
            other = np.asarray(theirs.faces)[labels == body]
            assert mine == _oriented_set(other) or mine == _oriented_set(other[:, ::-1]), (name, body)


def test_repair_step_matches_trimesh_on_a_broken_neuron(neuron_mesh):
    faces = _broken(neuron_mesh, seed=3, holes=20)
    broken = trimesh.Trimesh(neuron_mesh.vertices, faces, process=False)
    broken.units = "nm"
    ours = steps.repair(broken)
    theirs = trimesh.Trimesh(np.array(broken.vertices), np.array(broken.faces), process=False)
    theirs.merge_vertices()
    theirs.update_faces(theirs.nondegenerate_faces())
    theirs.update_faces(theirs.unique_faces())
    theirs.remove_unreferenced_vertices()
    trimesh.repair.fix_normals(theirs, multibody=True)
    trimesh.repair.fill_holes(theirs)
    record = ours.metadata["steps"][-1]
    assert len(ours.faces) == len(theirs.faces)
    assert record["hole_faces_added"] >= 20
    assert ours.is_winding_consistent == theirs.is_winding_consistent
    assert ours.is_watertight == theirs.is_watertight
    assert ours.area == pytest.approx(theirs.area, rel=1e-9)
    assert abs(ours.volume) == pytest.approx(abs(theirs.volume), rel=1e-6)
    for body in ours.split(only_watertight=True):
        assert body.volume >= -1e-6 * body.area ** 1.5  # (a flat closed piece has none, up to rounding)
