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


@pytest.mark.parametrize("weak_keys", [False, True])
def test_pieces_merged_without_their_concatenation_equal_the_merge_of_it(weak_keys, monkeypatch):
    """How a fetch merges now: each fragment's faces index its own vertices; the merged arrays are
    written straight from the pieces (blocks on two threads, made tiny here), and every piece is
    let go once written. With keys that all collide, the exact regrouping reads rows across pieces."""
    rng = np.random.default_rng(5)
    pool = rng.integers(-20, 20, size=(200, 3)).astype(np.float32) * np.float32(0.5)
    sizes = (700, 0, 1, 1300, 500)
    fragments = [pool[rng.integers(0, len(pool), size=size)] for size in sizes]
    fragments[3][rng.integers(0, 1300, size=40), 1] = -0.0
    face_counts = (2000, 0, 0, 4000, 3001)
    local_faces = [rng.integers(0, max(size, 1), size=(count, 3)).astype(np.uint32)
                   for size, count in zip(sizes, face_counts)]
    offsets = np.cumsum((0,) + sizes)
    expected_vertices, expected_faces = reference_merge(
        np.concatenate(fragments), np.concatenate([f.astype(np.int64) + o for f, o in zip(local_faces, offsets)]))

    prepared = [f.copy() for f in fragments]
    keys = np.concatenate([mesh_ops.merge_keys(f) for f in prepared])
    if weak_keys:
        keys[:] = 0
    monkeypatch.setattr(mesh_ops, "_FACE_BLOCK", 1000)
    pieces = list(zip(prepared, local_faces))
    merged, merged_faces, removed = mesh_ops.merge_pieces(pieces, keys=keys)
    np.testing.assert_array_equal(merged, expected_vertices)
    np.testing.assert_array_equal(merged_faces, expected_faces)
    assert removed == sum(sizes) - len(expected_vertices) and merged_faces.dtype == np.int32
    assert pieces == []  # every piece let go
    # Unprepared pieces (a file's parts) are prepared on copies: the same merge, inputs untouched.
    raw = [f.copy() for f in fragments]
    again = mesh_ops.merge_pieces(list(zip(raw, local_faces)))
    np.testing.assert_array_equal(again[0], expected_vertices)
    np.testing.assert_array_equal(again[1], expected_faces)
    assert all(np.array_equal(np.signbit(a), np.signbit(b)) for a, b in zip(raw, fragments))


@pytest.mark.parametrize("block_and_count", [(1000, 9000), (1 << 18, 9000)])  # two threads; one
def test_clean_blocks_after_collapsed_faces_move_forward_intact(block_and_count, monkeypatch):
    """Faces are gathered in place and the collapsed ones squeezed out block by block: blocks with
    nothing to drop, behind blocks that dropped faces, must move forward whole and in order."""
    block, count = block_and_count
    rng = np.random.default_rng(11)
    grid = rng.permutation(count + 2).astype(np.float32)
    clean_vertices = np.stack([grid, grid * 2, grid * 3], axis=1)  # all distinct: nothing merges
    clean_faces = np.stack([np.arange(count), np.arange(count) + 1, np.arange(count) + 2], axis=1).astype(np.int32)
    dirty_vertices = np.zeros((4, 3), np.float32)  # every face of this piece collapses
    dirty_vertices[3] = 1.0
    dirty_faces = np.array([[0, 1, 3], [1, 2, 3], [0, 3, 3], [0, 1, 2]], np.int32)
    pieces = [(dirty_vertices, dirty_faces), (clean_vertices, clean_faces), (dirty_vertices.copy(), dirty_faces),
              (clean_vertices.copy() + 1e6, clean_faces)]
    offsets = np.cumsum([0] + [len(v) for v, _ in pieces])
    expected_vertices, expected_faces = reference_merge(
        np.concatenate([v for v, _ in pieces]), np.concatenate([f + o for (_, f), o in zip(pieces, offsets)]))
    monkeypatch.setattr(mesh_ops, "_FACE_BLOCK", block)
    merged, merged_faces, _ = mesh_ops.merge_pieces(pieces)
    np.testing.assert_array_equal(merged, expected_vertices)
    np.testing.assert_array_equal(merged_faces, expected_faces)
    assert len(merged_faces) == 2 * count  # the dirty pieces' faces all collapsed


@pytest.mark.parametrize("rows", [1, 5, 1023, 1024, 1025, 4099])
def test_column_extremes_equal_numpys_reductions(rows):
    """Extremes of wide rows (1024 vertices each) plus the rest; NaN propagates as in numpy."""
    rng = np.random.default_rng(rows)
    for dtype in (np.float32, np.float64, np.int32):
        vertices = (rng.random((rows, 3)) * 100 - 50).astype(dtype)
        lo, hi = mesh_ops.column_extremes(vertices)
        assert lo.dtype == dtype and (lo == vertices.min(axis=0)).all() and (hi == vertices.max(axis=0)).all()
    vertices = rng.random((rows, 3))
    vertices[rows // 2, 1] = np.nan
    lo, hi = mesh_ops.column_extremes(vertices)
    assert np.isnan(lo[1]) and np.isnan(hi[1]) and not np.isnan(lo[[0, 2]]).any()
    strided = rng.random((rows, 6))[:, :3]  # not contiguous: numpy's own reductions
    assert (mesh_ops.column_extremes(strided)[0] == strided.min(axis=0)).all()


def test_pieces_of_two_vertex_types_are_merged_as_float64_and_prepared_ones_must_agree():
    """A file's float64 part beside a float32 one: one type for every row compared (in float32
    (1, 0, 0) would still merge, but 0.1 would not match its float64 self)."""
    a = np.array([[0, 0, 0], [1, 0, 0], [0.1, 0, 0]], dtype=np.float32)
    b = np.array([[1, 0, 0], [0, 1, 0], [0.1, 0, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2]])
    merged, merged_faces, removed = mesh_ops.merge_pieces([(a, faces), (b, faces)])
    expected, expected_faces = reference_merge(np.concatenate([a.astype(np.float64), b]),
                                               np.vstack([faces, faces + 3]))
    assert merged.dtype == np.float64 and removed == 6 - len(expected)
    np.testing.assert_array_equal(merged, expected)
    np.testing.assert_array_equal(merged_faces, expected_faces)
    with pytest.raises(ValueError, match="one vertex type"):
        mesh_ops.merge_pieces([(a.copy(), faces), (b.copy(), faces)], keys=np.zeros(6, np.uint64))
    with pytest.raises(ValueError, match="5 merge keys for 6 vertices"):
        mesh_ops.merge_pieces([(a.copy(), faces), (a.copy(), faces)], keys=np.zeros(5, np.uint64))
    empty = mesh_ops.merge_pieces([(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32))] * 2)
    assert empty[0].shape == (0, 3) and empty[1].shape == (0, 3) and empty[1].dtype == np.int32 and empty[2] == 0
