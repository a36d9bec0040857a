"""Shared helpers for writers: the arrays to write and the provenance line for headers."""

from __future__ import annotations

import numpy as np

from .. import __version__


def triangles(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (float) and faces (int) of a validated trimesh.Trimesh, without copies."""
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def units_of(mesh) -> str:
    return getattr(mesh, "units", None) or "unknown"


def provenance_line(mesh) -> str:
    """One line naming the tool and the units, for formats with a comment or title field."""
    return f"mesh-export {__version__} units={units_of(mesh)}"


def face_normals32(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals in float32 (zero for degenerate faces), computed without trimesh's caches."""
    corners = vertices.astype(np.float32, copy=False)[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.sqrt(np.einsum("ij,ij->i", normals, normals))
    np.divide(normals, lengths[:, None], out=normals, where=lengths[:, None] > 0)
    normals[lengths == 0] = 0
    return normals
