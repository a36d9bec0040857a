"""Checks a mesh must pass before anything is written from it."""

from __future__ import annotations

from typing import NoReturn

import numpy as np

from mesh_export.errors import InvalidMeshError


def check_surface(mesh, what: str = "mesh", values: bool = True) -> None:
    """Raise InvalidMeshError unless ``mesh`` is a non-empty triangle mesh with finite
    vertices and every face index inside the vertex array.

    ``values=False`` checks only shapes and types: for writers that check the values chunk by
    chunk while converting them (``SurfaceValues``), which saves a pass over the whole mesh.
    """
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
    if values:
        check_surface_values(vertices, faces, what)


def _extremes(values: np.ndarray) -> tuple[float, float]:
    # max and min propagate NaN: both are finite exactly when every value is. Two SIMD
    # reductions, no temporary; faster than np.isfinite(values).all().
    if values.size == 0:
        return 0.0, 0.0
    return float(values.min()), float(values.max())


def _all_finite(values: np.ndarray) -> bool:
    if not values.dtype.isnative:
        # Reductions over byte-swapped data (legacy VTK's big-endian floats) are slow, and a
        # sum is one: finite exactly when every term is, barring an overflow, which the exact
        # test then settles.
        return bool(np.isfinite(values.sum())) or bool(np.isfinite(values).all())
    low, high = _extremes(values)
    return bool(np.isfinite(low) and np.isfinite(high))


def _all_below(indices: np.ndarray, limit: int) -> bool:
    # Viewed as unsigned, a negative index is huge: one max() checks both bounds.
    if indices.dtype.kind == "i":
        indices = indices.view(np.dtype(f"u{indices.dtype.itemsize}"))
    return indices.size == 0 or int(indices.max()) < limit


def check_surface_values(vertices: np.ndarray, faces: np.ndarray, what: str = "mesh") -> None:
    """Raise InvalidMeshError on NaN/infinite vertices or face indices outside the vertices."""
    if not _all_finite(vertices):
        bad_rows = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise InvalidMeshError(f"{what} has {bad_rows} vertices with NaN or infinite coordinates")
    if not _all_below(faces, len(vertices)):
        low, high = int(faces.min()), int(faces.max())
        bad = int(((faces < 0) | (faces >= len(vertices))).any(axis=1).sum())
        raise InvalidMeshError(
            f"{what} has {bad} faces indexing outside its {len(vertices)} vertices "
            f"(indices {low}..{high})"
        )


class SurfaceValues:
    """``check_surface_values`` done a chunk at a time by a writer that converts the arrays
    anyway: each chunk is checked while it is in the CPU cache, instead of in a separate pass
    over the whole mesh first. A failure raises the same error as the whole-mesh check; the
    file being written is a temporary one, which the caller removes.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, what: str = "mesh"):
        self._vertices, self._faces, self._what = vertices, faces, what

    def whole(self) -> None:
        check_surface_values(self._vertices, self._faces, self._what)

    def vertices(self, source: np.ndarray, converted: np.ndarray | None = None) -> None:
        """Check a chunk of vertices, or its float32 conversion when given (the conversion
        overflows to infinity beyond +-3.4e38, which this then catches)."""
        if not _all_finite(source if converted is None else converted):
            self._reject()

    def faces(self, source: np.ndarray, converted: np.ndarray | None = None) -> None:
        if not _all_below(source, len(self._vertices)):
            self._reject()

    def _reject(self) -> NoReturn:
        self.whole()
        raise InvalidMeshError(f"{self._what} has coordinates beyond the float32 range (+-3.4e38): "
                               "they cannot be written as float32")


def check_volume(data) -> None:
    """A volume mesh's points are finite and its volume cells index them."""
    from mesh_export.core.cells import check_volume_blocks, is_volume_cell

    blocks = [(b.type, np.asarray(b.data)) for b in data.cells if is_volume_cell(b.type)]
    check_volume_blocks(np.asarray(data.points), blocks)
