"""Checks a mesh must pass before anything is written from it."""

from __future__ import annotations

import numpy as np

from .errors import InvalidMeshError


def check_surface(mesh, what: str = "mesh") -> None:
    """Raise InvalidMeshError unless ``mesh`` is a non-empty triangle mesh with finite
    vertices and every face index inside the vertex array."""
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    if faces.size == 0 or vertices.size == 0:
        raise InvalidMeshError(f"{what} is empty (no faces): nothing to write")
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise InvalidMeshError(f"{what} vertices have shape {vertices.shape}, expected (n, 3)")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise InvalidMeshError(f"{what} faces have shape {faces.shape}, expected (n, 3) triangles")
    if not np.issubdtype(faces.dtype, np.integer):
        raise InvalidMeshError(f"{what} face indices are {faces.dtype}, not integers")
    # A sum is finite exactly when every term is (barring overflow, which the exact test
    # below then settles): one pass without a temporary, far cheaper than a per-row test.
    if not np.isfinite(vertices.sum()) and not np.isfinite(vertices).all():
        bad_rows = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise InvalidMeshError(f"{what} has {bad_rows} vertices with NaN or infinite coordinates")
    # Viewed as unsigned, a negative index is huge: one max() checks both bounds.
    unsigned = faces.view(np.dtype(f"u{faces.dtype.itemsize}")) if faces.dtype.kind == "i" else faces
    if int(unsigned.max()) >= len(vertices):
        low, high = int(faces.min()), int(faces.max())
        bad = int(((faces < 0) | (faces >= len(vertices))).any(axis=1).sum())
        raise InvalidMeshError(
            f"{what} has {bad} faces indexing outside its {len(vertices)} vertices "
            f"(indices {low}..{high})"
        )
