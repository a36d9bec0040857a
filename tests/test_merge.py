"""The one exact vertex merge every fetched mesh goes through (fetch, cache, info)."""

from __future__ import annotations

import numpy as np
import pytest

from mesh_export.core import mesh_ops
from mesh_export.core.mesh_ops import merge_duplicate_vertices


def reference_merge(vertices, faces):
    """The plain definition: unique rows by bit pattern, first-seen order, collapsed faces dropped."""
    vertices = np.asarray(vertices) + vertices.dtype.type(0.0)
    rows = vertices.view(np.dtype((np.void, vertices.dtype.itemsize * 3))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    merged = vertices[first[order]]
    new = rank[inverse.ravel()][faces]
    keep = (new[:, 0] != new[:, 1]) & (new[:, 1] != new[:, 2]) & (new[:, 0] != new[:, 2])
    return merged, new[keep]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_equals_the_definition_on_random_soups(dtype, seed):
    rng = np.random.default_rng(seed)
    # Few distinct points, many repeats (fragment borders), a few -0.0 among them.
    pool = rng.integers(-20, 20, size=(300, 3)).astype(dtype) * dtype(0.5)
    vertices = pool[rng.integers(0, len(pool), size=5000)]
    vertices[rng.integers(0, len(vertices), size=50), 0] = -0.0
    faces = rng.integers(0, len(vertices), size=(8000, 3))
    merged, merged_faces, removed = merge_duplicate_vertices(vertices, faces)
    expected_vertices, expected_faces = reference_merge(vertices, faces)
    np.testing.assert_array_equal(merged, expected_vertices)
    np.testing.assert_array_equal(merged_faces, expected_faces)
    assert removed == len(vertices) - len(expected_vertices)
    assert merged.dtype == dtype and merged_faces.dtype == np.int32
    assert not np.signbit(merged[merged == 0]).any()  # -0.0 joined 0.0


def test_a_hash_collision_falls_back_to_exact_keys(monkeypatch):
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [2, 3, 4], [0, 3, 4]])
    # Every vertex gets the same key: without the check all five would become one.
    monkeypatch.setattr(mesh_ops, "_vertex_keys", lambda v: np.zeros(len(v), dtype=np.uint64))
    merged, merged_faces, removed = merge_duplicate_vertices(vertices, faces)
    assert removed == 1 and merged.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert merged_faces.tolist() == [[0, 1, 2], [2, 1, 3], [0, 1, 3]]


def test_merge_leaves_its_input_alone():
    vertices = np.array([[-0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    before = vertices.copy()
    merge_duplicate_vertices(vertices, np.array([[0, 1, 2]]))
    assert np.array_equal(np.signbit(vertices), np.signbit(before))


@pytest.mark.parametrize("seed", [3, 4])
def test_keys_made_fragment_by_fragment_and_faces_remapped_in_blocks_give_the_same_merge(seed, monkeypatch):
    """How a fetch merges: merge keys computed per fragment as it arrives (vertices prepared in
    place), concatenated; faces remapped in blocks on two threads (made tiny here)."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(-20, 20, size=(300, 3)).astype(np.float32) * np.float32(0.5)
    fragments = [pool[rng.integers(0, len(pool), size=size)] for size in (700, 1, 1300, 500)]
    fragments[2][rng.integers(0, 1300, size=40), 1] = -0.0
    vertices = np.concatenate(fragments)
    faces = rng.integers(0, len(vertices), size=(9001, 3)).astype(np.int32)
    expected_vertices, expected_faces = reference_merge(vertices, faces)

    prepared = [f.copy() for f in fragments]
    keys = np.concatenate([mesh_ops.merge_keys(f) for f in prepared])
    monkeypatch.setattr(mesh_ops, "_FACE_BLOCK", 1000)
    merged, merged_faces, removed = merge_duplicate_vertices(np.concatenate(prepared), faces, keys=keys)
    np.testing.assert_array_equal(merged, expected_vertices)
    np.testing.assert_array_equal(merged_faces, expected_faces)
    assert removed == len(vertices) - len(expected_vertices) and merged_faces.dtype == np.int32
