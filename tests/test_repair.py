"""The lean repair against trimesh's own passes (fix_normals, fill_holes) on real and broken meshes,
and against the implementation it replaced (tests/support/repair_reference.py), which it must
reproduce exactly: the same vertices, faces and counts on every mesh here."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from mesh_export.process import steps
from mesh_export.process.repair import orient_faces, repair_surface
from support.repair_reference import face_components, reference_repair


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
    vertices, out, counts = repair_surface(sphere.vertices, faces)
    assert counts["faces_flipped"] > 0 and counts["hole_faces_added"] == 3 + 2
    assert counts["bodies_turned_outwards"] == 1 and counts["watertight"]
    result = trimesh.Trimesh(vertices, out, process=False)
    assert result.is_watertight and result.is_winding_consistent and result.volume > 0
    assert _oriented_set(out) == _oriented_set(sphere.faces)


@pytest.mark.slow
def test_windings_agree_with_trimesh_on_real_neurons(neuron_meshes):
    for name, mesh in neuron_meshes.items():
        merged = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
        merged.update_faces(merged.unique_faces())  # as repair does before orienting
        faces = _broken(merged, seed=len(name))
        ours, _ = orient_faces(faces)
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


def _awkward_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Small meshes with what the clean-up passes decide on: duplicate and near-duplicate
    vertices, -0.0, coordinates below float32's merge spacing, degenerate and nearly degenerate
    faces, duplicate faces in other vertex orders, unreferenced vertices, non-manifold edges,
    a Moebius strip, inverted closed bodies, holes of 3 and 4 edges."""
    rng = np.random.default_rng(26)
    cases = {}
    sphere = trimesh.creation.icosphere(subdivisions=2)
    box = trimesh.creation.box()
    v = np.vstack([sphere.vertices * 3e3, box.vertices * 1e3 + 9e3, sphere.vertices * 3e3])  # a copy to merge
    f = np.vstack([sphere.faces[:, ::-1], box.faces[:, ::-1] + len(sphere.vertices),
                   sphere.faces + len(sphere.vertices) + len(box.vertices)])
    f = np.delete(f, [5, 40, 41], axis=0)
    f = np.vstack([f, f[[7, 8]][:, [1, 2, 0]], f[[9]][:, ::-1], [[0, 0, 1], [1, 2, 2]]])  # duplicates, degenerate
    cases["spheres, a box, copies, duplicates"] = (v, f)
    # Collinear and nearly collinear faces around the 1e-8 limit, and a sliver far above it.
    line = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [1, 5e-11, 0], [1, 2e-10, 0], [1, 1e-5, 0], [0, 1, 0],
                     [3, 0, 0]], float)
    cases["slivers"] = (line * 100.0, np.array([[0, 1, 6], [0, 2, 3], [0, 2, 4], [0, 2, 5], [0, 1, 2], [1, 2, 6],
                                                [0, 1, 7]]))  # vertex 7: only in a degenerate face
    # Unit-scale coordinates (below 0.125: trimesh's rounding, not float32 equality, decides),
    # with -0.0 and vertices 1e-9 apart; unreferenced vertices at the end.
    small = sphere.vertices * 0.1
    nudged = small + rng.choice([0.0, 4e-9, 2e-8], size=small.shape)
    signed = np.where(np.abs(small) < 1e-12, -0.0, small)
    cases["unit scale, -0.0, nudged copies"] = (
        np.vstack([signed, nudged, rng.random((5, 3))]),
        np.vstack([sphere.faces[:200], sphere.faces[200:] + len(small)]))
    # Three faces on one edge, and a strip closed with a half twist.
    n = 12
    ring = np.array([[np.cos(t) * 1e3, np.sin(t) * 1e3, 0.0] for t in np.linspace(0, 2 * np.pi, n, endpoint=False)])
    top = ring + [0, 0, 300.0]
    strip = [[i, (i + 1) % n, n + i] for i in range(n)] + [[(i + 1) % n, n + (i + 1) % n, n + i] for i in range(n - 1)]
    strip.append([0, n + n - 1, n])  # the last quad joined the other way round: a Moebius band
    fins = [[0, 1, 2 * n], [1, 0, 2 * n + 1], [0, 1, 2 * n + 2]]
    cases["moebius, fins"] = (np.vstack([ring, top, [[0, 0, 500.0], [0, 0, -500.0], [500.0, 0, 0]]]),
                              np.array(strip + fins))
    # A quad hole whose diagonal is already a manifold edge (of a closed tetrahedron on it).
    cube = trimesh.creation.box(extents=(800.0, 800.0, 800.0))
    side = np.flatnonzero(np.isclose(cube.face_normals[:, 2], 1.0))
    loop = np.unique(cube.faces[side])
    diagonal = np.intersect1d(cube.faces[side[0]], cube.faces[side[1]])
    corners = np.setdiff1d(loop, diagonal)
    s_ = int(loop.min())  # the loop's first vertex; the filler's diagonal runs to the opposite one
    q2 = int(diagonal[diagonal != s_][0]) if s_ in diagonal else int(corners[corners != s_][0])
    x, y = len(cube.vertices), len(cube.vertices) + 1
    tetra = [[s_, q2, x], [q2, s_, y], [s_, y, x], [q2, x, y]]
    cases["quad hole on a manifold diagonal"] = (
        np.vstack([cube.vertices, [[2000.0, 0, 0], [2000.0, 900.0, 900.0]]]),
        np.vstack([np.delete(cube.faces, side, axis=0), tetra]))
    for count, subdivisions in ((5, 1), (3, 3)):
        parts = []
        for k in range(count):
            body = trimesh.creation.icosphere(subdivisions=subdivisions, radius=100.0 + k)
            faces = body.faces if k % 2 else body.faces[:, ::-1]  # every other body inside out
            parts.append((body.vertices + [400.0 * k, 0, 0], faces))
        offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
        v = np.vstack([p[0] for p in parts]).astype(np.float32)
        f = np.vstack([p[1] + o for p, o in zip(parts, offsets)])
        f = _broken(trimesh.Trimesh(v, f, process=False), seed=count, flip_fraction=0.1, holes=3)
        cases[f"{count} bodies, float32"] = (v, f.astype(np.int32))
    return cases


@pytest.fixture(scope="module")
def repair_cases(neuron_meshes):
    cases = _awkward_cases()
    for k, (name, mesh) in enumerate(neuron_meshes.items()):
        faces = _broken(mesh, seed=k, holes=20)
        cases[f"navis {name}"] = (np.asarray(mesh.vertices), np.asarray(mesh.faces))
        cases[f"navis {name} broken"] = (np.asarray(mesh.vertices), faces)
        cases[f"navis {name} broken, float32"] = (np.asarray(mesh.vertices, dtype=np.float32), faces.astype(np.int32))
    doubled = next(iter(neuron_meshes.values()))
    n = len(doubled.vertices)
    cases["navis doubled"] = (np.vstack([doubled.vertices, doubled.vertices]),
                              np.vstack([doubled.faces, doubled.faces[::-1] + n, [[0, 0, 1]]]))
    return cases


def test_repair_is_exactly_the_previous_implementation(repair_cases):
    """Same vertices (values; float32 stays float32), faces and counts as the trimesh-based
    repair it replaced, on every mesh, including the cases its decisions hinge on."""
    decided = {key: 0 for key in ("vertices_merged", "degenerate_faces_removed", "duplicate_faces_removed",
                                  "unreferenced_vertices_removed", "faces_flipped", "hole_faces_added",
                                  "bodies_turned_outwards")}
    watertight = set()
    for name, (vertices, faces) in repair_cases.items():
        want_v, want_f, want = reference_repair(vertices, faces)
        got_v, got_f, got = repair_surface(vertices, faces)
        assert got == want, name
        assert got_v.dtype == (np.float32 if np.asarray(vertices).dtype == np.float32 else np.float64), name
        np.testing.assert_array_equal(got_v, want_v, err_msg=name)
        np.testing.assert_array_equal(got_f, want_f, err_msg=name)
        for key in decided:
            decided[key] += want[key] > 0
        watertight.add(want["watertight"])
    # Every decision was exercised somewhere, and both outcomes of the watertight test.
    assert all(decided.values()) and watertight == {False, True}, (decided, watertight)


def test_repair_step_records_the_counts_and_keeps_float32(neuron_mesh):
    from mesh_export.model import CachedSurface

    faces = _broken(neuron_mesh, seed=5, holes=5).astype(np.int32)
    surface = CachedSurface(np.asarray(neuron_mesh.vertices, dtype=np.float32), faces, {"units": "nm"})
    out = steps.repair(surface)
    record = out.metadata["steps"][-1]
    _, want_f, want = reference_repair(surface.vertices, faces)
    assert record == {"step": "repair", **want}
    np.testing.assert_array_equal(np.asarray(out.faces), want_f)
