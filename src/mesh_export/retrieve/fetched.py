"""What a fetch returns, shared by every source kind's reader (fetch and static_fetch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mesh_export.errors import InvalidMeshError, SourceError


@dataclass
class Fetched:
    """A decoded mesh (nm, float32 vertices merged across fragments) and how it was fetched.

    A fetch of fragments leaves ``vertices`` and ``faces`` None and hands its ``pieces`` and their
    ``merge_keys`` to the merge, which writes the merged arrays straight from the pieces."""

    vertices: np.ndarray | None
    faces: np.ndarray | None
    lod: int
    lods_available: int | None
    fragments: int
    missing_fragments: list[str] = field(default_factory=list)
    merged_vertices: int | None = 0  # None: left unmerged (fetch_mesh's merge=False)
    retries: int = 0
    #: core.mesh_ops.merge_keys of ``vertices`` (already prepared by it), when the fetch computed
    #: them fragment by fragment (one array per piece); the merge then uses them instead of
    #: computing them again.
    merge_keys: Any = field(default=None, repr=False)
    #: The decoded fragments, ``(vertices, faces)`` each, before the merge.
    pieces: list | None = field(default=None, repr=False)

    def take_merge_keys(self) -> Any:
        """The merge keys as one array, no longer held here (the merge frees them once it has
        sorted them). Joined only now: a mesh left unmerged never pays for the copy."""
        keys, self.merge_keys = self.merge_keys, None
        return np.concatenate(keys) if isinstance(keys, list) else keys

    def info(self) -> dict[str, Any]:
        return {"lod": self.lod, "lods_available": self.lods_available, "fragments": self.fragments,
                "missing_fragments": self.missing_fragments, "merged_vertices": self.merged_vertices,
                "retries": self.retries}


def decoded_piece(vertices: np.ndarray, faces: np.ndarray, what: str = "a fragment",
                  keys: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A fragment as decoded, made ready for the merge on the thread that decoded it (while other
    fragments are still downloading): float32 vertices prepared in place by ``merge_keys``
    (copied only when the decoder's array is read-only), faces as rows, and the keys (not
    computed with ``keys=False``, for a mesh that is not merged: the vertices are prepared the
    same, -0.0 made 0.0)."""
    from mesh_export.core.mesh_ops import merge_keys, prepare_for_merge

    vertices = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    if not vertices.flags.writeable or not vertices.flags.c_contiguous:
        vertices = vertices.copy()
    faces = np.asarray(faces).reshape(-1, 3)
    # Each fragment's faces index its own vertices: one past them would index the next
    # fragment's once the pieces are merged, so it is refused here.
    if faces.size and (int(faces.max()) >= len(vertices) or (faces.dtype.kind == "i" and int(faces.min()) < 0)):
        raise InvalidMeshError(f"{what}: its faces index past its own vertices (corrupt data)")
    if not keys:
        prepare_for_merge(vertices)
        return vertices, faces, None
    return vertices, faces, merge_keys(vertices)


def from_pieces(pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]], lod: int, lods_available: int | None,
                fragments: int, missing: list[str] | None = None) -> Fetched:
    """A fetch's :func:`decoded_piece` results as a :class:`Fetched` for the merge (the keys are
    joined into one array when the merge takes them: it sorts them all at once)."""
    keys = [piece[2] for piece in pieces]
    if any(k is None for k in keys):
        keys = None
    return Fetched(None, None, lod, lods_available, fragments, list(missing or []), merge_keys=keys,
                   pieces=[(vertices, faces) for vertices, faces, _ in pieces])


def single_lod(lod: int | None, what: str) -> int:
    """The only level of detail (0) of a ``what`` source, which has no others to ask for."""
    if lod not in (None, 0, -1):
        raise SourceError(f"{what} meshes have a single level of detail; --lod {lod} needs a "
                          "multi-resolution source (e.g. --static)")
    return 0
