"""A binary STL written from a fetch's unmerged fragments (``write_stl_pieces``) is the file the
merged mesh makes, byte for byte: on edge cases here, and on a MICrONS-like layer through the API
and the CLI (tests/test_graphene_fetch.py, tests/test_static_fetch.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mesh_export import errors
from mesh_export.core.mesh_ops import merge_keys, merge_pieces
from mesh_export.model import CachedSurface
from mesh_export.writers import stl
from mesh_export.writers._layout import write_in_order
from mesh_export.writers._mesh import tool_line


def _prepared(pieces):
    """The pieces as a fetch hands them on: float32, -0.0 made 0.0 (merge_keys, in place)."""
    out = []
    for vertices, faces in pieces:
        vertices = np.array(vertices, dtype=np.float32).reshape(-1, 3)
        merge_keys(vertices)
        out.append((vertices, np.asarray(faces, dtype=np.int64).reshape(-1, 3)))
    return out


def _merged_stl(pieces, path):
    vertices, faces, _ = merge_pieces([(v.copy(), f.copy()) for v, f in pieces])
    mesh = CachedSurface(vertices, faces, {"units": "nm"})
    stl.write_stl(mesh, path)
    return len(faces)


def _edge_case_pieces():
    """Faces that collapse (a repeated index; two vertices on one point, -0.0 against 0.0 too),
    zero-area faces whose corners all differ (kept), an empty piece, a point shared by pieces."""
    a = ([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [2, 0, 0], [-0.0, 1, 0]],
         [[0, 1, 2], [0, 0, 1], [0, 1, 3], [0, 1, 4], [1, 2, 5], [5, 2, 0]])
    b = ([[0, 1, 0], [0, 0, 5], [3, 3, 3]], [[0, 1, 2], [2, 2, 1]])
    empty = (np.zeros((0, 3)), np.zeros((0, 3)))
    c = ([[-0.0, 0, 0], [0, 0, 0], [0, 0, 7], [4, 4, 4]], [[0, 1, 2], [2, 3, 0], [3, 2, 0]])
    # Far apart, so the cross product overflows (NaN normals): collapsed faces (dropped) and one
    # that does not collapse (kept, with its NaN normal, as the merged mesh's file has it).
    far = ([[0, 0, 0], [1e20, 1e20, 1e20], [1e20, 1e20, 1e20], [-3e38, 0, 0], [3e38, 1, 0], [3e38, 0, 2]],
           [[0, 1, 2], [1, 2, 0], [3, 3, 4], [3, 4, 5]])
    return _prepared([a, empty, b, c, far])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_edge_cases_match_the_merged_file(tmp_path):
    pieces = _edge_case_pieces()
    expected = _merged_stl(pieces, tmp_path / "merged.stl")
    written = stl.write_stl_pieces(pieces, tmp_path / "pieces.stl", tool_line("nm"))
    assert written == expected == 6  # of 15 faces, 9 collapse
    assert (tmp_path / "pieces.stl").read_bytes() == (tmp_path / "merged.stl").read_bytes()


@pytest.mark.parametrize("batch", [1, 5, 64, 1 << 15])
def test_many_pieces_in_many_batches_keep_their_order(tmp_path, monkeypatch, batch):
    """Batches of every size (one face to all of them) made by two threads land in order."""
    monkeypatch.setattr(stl, "_PIECES_BATCH_FACES", batch)
    rng = np.random.default_rng(batch)
    pieces = []
    for k in range(60):
        grid = rng.integers(0, 6, size=(int(rng.integers(3, 40)), 3)).astype(np.float32)  # repeats: collapses
        faces = rng.integers(0, len(grid), size=(int(rng.integers(0, 90)), 3))
        pieces.append((grid * (k + 1), faces))
    pieces = _prepared(pieces)
    expected = _merged_stl(pieces, tmp_path / "merged.stl")
    assert stl.write_stl_pieces(pieces, tmp_path / "pieces.stl", tool_line("nm")) == expected
    assert expected < sum(len(f) for _, f in pieces)
    assert (tmp_path / "pieces.stl").read_bytes() == (tmp_path / "merged.stl").read_bytes()
    import trimesh

    read = trimesh.load(tmp_path / "pieces.stl", process=False)
    assert len(read.faces) == expected


def test_a_mesh_whose_faces_all_collapse_is_refused(tmp_path):
    pieces = _prepared([([[1, 1, 1], [1, 1, 1], [2, 2, 2]], [[0, 1, 2], [2, 2, 0]])])
    with pytest.raises(errors.InvalidMeshError, match="empty"):
        stl.write_stl_pieces(pieces, tmp_path / "x.stl", "t")


def test_parts_of_unknown_size_are_written_in_order_and_a_failure_is_raised(tmp_path):
    sizes = [0, 5, 1, 300_000, 7, 0, 12]
    path = tmp_path / "parts"
    with open(path, "xb") as handle:
        handle.write(b"head")
        handle.flush()
        total = write_in_order(handle.fileno(), 4, len(sizes), lambda k, scratch: bytes([65 + k]) * sizes[k])
    assert total == sum(sizes)
    assert path.read_bytes() == b"head" + b"".join(bytes([65 + k]) * n for k, n in enumerate(sizes))

    def fails(k, scratch):
        if k == 3:
            raise ValueError("part 3")
        return b"x"

    with open(tmp_path / "bad", "xb") as handle, pytest.raises(ValueError, match="part 3"):
        write_in_order(handle.fileno(), 0, 8, fails)


def test_the_export_of_pieces_refuses_a_mesh_with_every_face_collapsed(tmp_path, monkeypatch):
    """The job around the writer: a fragment with no vertices at all is passed over (bbox), and a
    mesh whose every face collapses is the merged path's "empty mesh" (not found), no file left."""
    import mesh_export.jobs.export as job
    from mesh_export.api import export

    def fake_fetch(root_id, *, unmerged, **_):
        assert unmerged == []
        unmerged.extend(PIECES)
        meta = {"source": {"url": "precomputed://x"}, "lod": 0, "lods_available": None, "fragments": len(PIECES),
                "missing_fragments": [], "merged_vertices": None, "retries": 0, "fetched": "now"}
        return None, None, meta, "off"

    monkeypatch.setattr(job, "fetch_cached", fake_fetch)
    nothing = (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
    PIECES = _prepared([nothing, ([[5, 5, 5], [1, 2, 3], [7, 8, 9]], [[0, 1, 2]])])
    result = export(3, source="precomputed://x", use_cache=False, sidecar=False, out_dir=tmp_path)
    assert result.summary()["faces"] == 1 and result.summary()["vertices"] is None
    assert result.provenance["bbox"] == [[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]]
    PIECES = _prepared([nothing, ([[1, 1, 1], [1, 1, 1], [2, 2, 2]], [[0, 1, 2]])])
    with pytest.raises(errors.NotFoundError, match="empty mesh"):
        export(4, source="precomputed://x", use_cache=False, sidecar=False, out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3_lod0.stl"]
