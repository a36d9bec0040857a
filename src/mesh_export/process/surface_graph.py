"""The mesh as the skeletonizer sees it: its edges (each once) and the weighted graph over
them, its face and vertex areas and outward normals, and points sampled on its surface for
distance queries (how far a point lies inside the body)."""

from __future__ import annotations

import numpy as np

__all__ = ["sum_at", "sorted_edge_keys", "split_edge_keys", "unique_edges", "surface_measures", "edge_graph", "surface_samples"]


def sum_at(index: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    """Float sums of ``weights`` per ``index`` (0..count-1); float even when empty."""
    return np.bincount(index, weights=weights, minlength=count).astype(np.float64, copy=False)


def sorted_edge_keys(faces: np.ndarray, n: int) -> np.ndarray:
    """Every face's three edges as ``lo * n + hi`` (int64, lower index first), sorted; an edge
    shared by k faces appears k times (self-loops of degenerate faces left out). Built one
    corner pair at a time into one array: the keys are sorted anyway, and a 9M-face mesh's
    whole-array temporaries were ~1 GB."""
    keys = np.empty(3 * len(faces), dtype=np.int64)
    filled = 0
    for c in range(3):
        a, b = faces[:, c], faces[:, (c + 1) % 3]
        proper = a != b
        a, b = a[proper], b[proper]
        part = keys[filled:filled + len(a)]
        np.minimum(a, b, out=part)
        part *= n
        part += np.maximum(a, b)
        filled += len(a)
    keys = keys[:filled]
    keys.sort()
    return keys


def split_edge_keys(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge keys (``lo * n + hi``) back to their two vertices, as int32 (int64 past 2**31 vertices)."""
    kind = np.int32 if n < 2**31 else np.int64
    return (keys // n).astype(kind), (keys % n).astype(kind)


def unique_edges(faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's edges, each once (lower index first), as int32 (int64 past 2**31 vertices)."""
    keys = sorted_edge_keys(faces, n)
    if len(keys):
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return split_edge_keys(keys, n)


def surface_measures(vertices: np.ndarray, faces: np.ndarray, chunk: int = 1 << 20):
    """Face areas, vertex areas (a third of each face's), unit vertex normals (pointing out of
    the body: the winding's sign from the signed volume), computed a chunk of faces at a time
    (a 9M-face mesh's face cross products would be 216 MB)."""
    n = len(vertices)
    face_area = np.empty(len(faces))
    normals = np.zeros((n, 3))
    signed = 0.0
    origin = vertices.mean(axis=0) if n else np.zeros(3)
    for lo in range(0, len(faces), chunk):
        f = faces[lo:lo + chunk]
        v0 = vertices[f[:, 0]]
        cross = np.cross(vertices[f[:, 1]] - v0, vertices[f[:, 2]] - v0)
        face_area[lo:lo + chunk] = 0.5 * np.linalg.norm(cross, axis=1)
        signed += float(np.einsum("ij,ij->", v0 - origin, cross))
        flat = f.reshape(-1)
        for c in range(3):
            normals[:, c] += np.bincount(flat, weights=np.repeat(cross[:, c], 3), minlength=n)
    length = np.linalg.norm(normals, axis=1)
    length[length == 0] = 1.0
    normals /= length[:, None] if signed >= 0 else -length[:, None]
    vertex_area = sum_at(faces.reshape(-1), np.repeat(face_area / 3.0, 3), n)
    return face_area, vertex_area, normals


def edge_graph(n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray):
    from scipy.sparse import csr_matrix

    return csr_matrix((w, (u, v)), shape=(n, n))



def surface_samples(vertices, faces, face_area=None):
    """Points on a surface for distance queries: the faces' vertices, and the centres of the
    faces much larger than the median (where vertices alone are sparse)."""
    on = np.zeros(len(vertices), dtype=bool)
    on[faces.reshape(-1)] = True
    if face_area is None or not len(faces):
        big = faces
    else:
        big = faces[face_area > 4.0 * np.median(face_area)]
    centres = (vertices[big[:, 0]] + vertices[big[:, 1]] + vertices[big[:, 2]]) / 3.0
    return np.concatenate([vertices[on], centres])
