"""The surface the skeletonizer works on: the mesh as given, or, when the mesh is far finer than
the wavefront can resolve, its vertices clustered on a grid with each cluster carrying the area
and normal of the vertices it replaces.

Why a pre-stage at all: every stage after it (healing, the soma region's ball tests, the
Dijkstra wavefront, the rings) costs per vertex, and a 9M-face cell spends ~50 s there. The
wavefront's resolution is its band (at least 1 um wide): surface detail far below a band
changes a ring's area and its vertices' spread, not which ring they belong to.

Why grid clustering with carried area, not quadric decimation (measured on the 9M-face fixture,
benchmarks/RESULTS.md): fast-simplification took 30 s and 3.6 GB to reach 1M faces, and at unit
scale its first error threshold is ~0.4 um on a 300 um cell, so it flattened thin neurites
whole (-25% area). Clustering is a few sorts and bincounts, and its physics is explicit:

- the cell is ``CELLS_PER_BAND`` times finer than the narrowest band (1 um, or the ``step``
  asked for), so the coarse edges (up to ~2 cells) stay well under a band and rings stay whole;
- area is not re-measured on the coarse faces but carried: each cluster's vertex area is the sum
  of its vertices' areas on the full surface, so the rings' areas (the radii, the membrane area)
  are those of the mesh as fetched, however thin a neurite is (a 0.1 um spine neck or axon
  collapses to a chain of clusters, its area kept); the coarse faces' own area change, which
  only the surface samples see, is recorded beside it;
- separate pieces never merge (the piece is part of the cluster key: a nucleus envelope, debris
  or a cut sheet stays its own piece), and vertices on an open boundary cluster only with
  boundary vertices (a sheet keeps its outline); every edge of the full mesh maps to an edge
  between clusters (or inside one), so nothing connected comes apart.

A mesh whose median edge is already over half a cell is left as it is, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mesh_export.process.surface_graph import (
    edge_graph, sorted_edge_keys, split_edge_keys, sum_at, surface_measures, unique_edges)

__all__ = ["SkeletonSurface", "skeleton_surface", "cluster_cell"]

#: Grid cells across the narrowest wavefront band.
CELLS_PER_BAND = 10
#: The narrowest band the skeletonizer draws by default (um).
MIN_BAND_UM = 1.0
#: Cluster only a mesh whose median edge is under this fraction of the cell: about two vertices
#: per cell (a vertex stands for ~0.87 edge^2 of surface, a cell crosses ~h^2 of it); fewer merge
#: too little to pay for the pass.
WORTH = 0.75


@dataclass
class SkeletonSurface:
    vertices: np.ndarray  # float64 (n, 3)
    faces: np.ndarray  # (m, 3)
    eu: np.ndarray  # the edges, each once, lower index first
    ev: np.ndarray
    face_area: np.ndarray  # of ``faces``
    vertex_area: np.ndarray  # the full surface's area around each vertex (carried when clustered)
    normals: np.ndarray  # unit outward normals per vertex
    total_area: float  # the mesh's surface area as given
    record: dict = field(default_factory=dict)  # what clustering did ({} when it did not run)


def cluster_cell(to_um: float, step: float | None = None) -> float:
    """The clustering grid's cell in mesh units: ``CELLS_PER_BAND`` per narrowest band."""
    band = MIN_BAND_UM / to_um
    if step is not None and float(step) > 0:  # (a bad step is refused later, with its own message)
        band = min(float(step), band)
    return band / CELLS_PER_BAND


def _median_edge_sample(vertices, faces, samples: int = 200_000) -> float:
    f = faces[:: max(1, len(faces) // samples)]
    return float(np.median(np.linalg.norm(vertices[f[:, 1]] - vertices[f[:, 0]], axis=1))) if len(f) else 0.0


def skeleton_surface(mesh_vertices, mesh_faces, to_um: float, step: float | None = None,
                     coarsen: bool = True) -> SkeletonSurface:
    """The surface for :func:`mesh_export.process.skeleton.skeletonize` (see the module
    docstring); ``to_um``: micrometres per mesh unit; ``step``: the band width asked for."""
    vertices = np.asarray(mesh_vertices, dtype=np.float64)
    cell = cluster_cell(to_um, step)
    if not coarsen or not len(mesh_faces) or not _median_edge_sample(vertices, mesh_faces) < WORTH * cell:
        faces = np.asarray(mesh_faces, dtype=np.int64)
        face_area, vertex_area, normals = surface_measures(vertices, faces)
        eu, ev = unique_edges(faces, len(vertices))
        return SkeletonSurface(vertices, faces, eu, ev, face_area, vertex_area, normals, float(face_area.sum()))
    return _clustered(vertices, np.asarray(mesh_faces), cell)


def _clustered(vertices, faces, cell, chunk: int = 1 << 20) -> SkeletonSurface:
    n = len(vertices)
    cluster, m, eu, ev = _clusters(vertices, faces, cell)
    # Edges: every edge's image (those inside one cluster drop out), each once.
    cu, cv = cluster[eu], cluster[ev]
    del eu, ev
    apart = cu != cv
    cu, cv = cu[apart], cv[apart]
    del apart
    ckeys = np.minimum(cu, cv).astype(np.int64)
    ckeys *= m
    ckeys += np.maximum(cu, cv)
    del cu, cv
    ckeys.sort()
    if len(ckeys):
        ckeys = ckeys[np.concatenate([[True], ckeys[1:] != ckeys[:-1]])]
    ceu, cev = split_edge_keys(ckeys, m)
    del ckeys

    # One pass over the full surface's faces: their area and normal (cross product) carried to
    # the clusters of their corners, a third of the area each; positions weighted by that area.
    weight = np.zeros(m)
    position = np.zeros((m, 3))
    normals = np.zeros((m, 3))
    total_area = signed = 0.0
    origin = vertices.mean(axis=0)
    coarse_faces = []
    for lo in range(0, len(faces), chunk):
        f = faces[lo:lo + chunk]
        v0 = vertices[f[:, 0]]
        d1, d2 = vertices[f[:, 1]] - v0, vertices[f[:, 2]] - v0
        cross = np.cross(d1, d2)
        del d1, d2
        third = np.sqrt(np.einsum("ij,ij->i", cross, cross)) / 6.0
        total_area += 3.0 * float(third.sum())
        signed += float(np.einsum("ij,ij->", v0 - origin, cross))
        del v0
        corners = cluster[f]
        for k in range(3):
            at = corners[:, k]
            weight += np.bincount(at, weights=third, minlength=m)
            corner = vertices[f[:, k]]
            for c in range(3):
                position[:, c] += np.bincount(at, weights=third * corner[:, c], minlength=m)
                normals[:, c] += np.bincount(at, weights=cross[:, c], minlength=m)
        # Faces whose corners land in three clusters, with their multiplicity (a closed
        # surface stays closed: every edge keeps an even count).
        keep = (corners[:, 0] != corners[:, 1]) & (corners[:, 1] != corners[:, 2]) & (corners[:, 0] != corners[:, 2])
        coarse_faces.append(corners[keep])
    has_area = weight > 0
    position /= np.where(has_area, weight, 1.0)[:, None]
    if not has_area.all():  # clusters of degenerate faces only: their vertices' plain mean
        count = np.maximum(np.bincount(cluster, minlength=m), 1)
        plain = np.column_stack([sum_at(cluster, vertices[:, c], m) for c in range(3)]) / count[:, None]
        position[~has_area] = plain[~has_area]
    length = np.linalg.norm(normals, axis=1)
    length[length == 0] = 1.0
    normals /= length[:, None] if signed >= 0 else -length[:, None]
    del cluster
    cf = np.concatenate(coarse_faces) if coarse_faces else np.zeros((0, 3), dtype=np.int64)
    cross = np.cross(position[cf[:, 1]] - position[cf[:, 0]], position[cf[:, 2]] - position[cf[:, 0]])
    coarse_face_area = 0.5 * np.linalg.norm(cross, axis=1)
    del cross
    record = {
        "method": "vertex clustering",
        "cell": cell,
        "faces": [int(len(faces)), int(len(cf))],
        "vertices": [int(n), int(m)],
        "faces_area_change": float(coarse_face_area.sum() / total_area - 1.0) if total_area > 0 else 0.0,
        "area_carried": True,
    }
    return SkeletonSurface(position, cf, ceu, cev, coarse_face_area, weight, normals, total_area, record)


def _clusters(vertices, faces, cell):
    """Each vertex's cluster (piece, on an open boundary or not, grid cell), the number of
    clusters and the full mesh's edges (each once)."""
    from scipy.sparse.csgraph import connected_components

    n = len(vertices)
    # Edges with their multiplicity: an edge of one face only lies on an open boundary.
    keys = sorted_edge_keys(faces, n)
    starts = np.empty(len(keys), dtype=bool)
    if len(keys):
        starts[0] = True
        np.not_equal(keys[1:], keys[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    del starts
    single = np.diff(first, append=len(keys)) == 1
    keys = keys[first]
    del first
    eu, ev = split_edge_keys(keys, n)
    del keys
    on_boundary = np.zeros(n, dtype=bool)
    on_boundary[eu[single]] = True
    on_boundary[ev[single]] = True
    del single
    _, piece = connected_components(edge_graph(n, eu, ev, np.ones(len(eu), dtype=np.int8)), directed=False)

    lo = vertices.min(axis=0)
    grid = np.floor((vertices - lo) / cell).astype(np.int64)
    dims = grid.max(axis=0) + 1
    pieces = int(piece.max()) + 1
    if float(np.prod(dims.astype(np.float64))) * pieces * 2 < 2.0**62:  # (an int64 product could wrap)
        key = piece.astype(np.int64)
        for c in range(3):
            key *= dims[c]
            key += grid[:, c]
        key *= 2
        key += on_boundary
        del grid
        _, cluster = np.unique(key, return_inverse=True)
    else:  # a key too wide for one integer (a vast extent): rows instead
        rows = np.column_stack([piece, on_boundary, grid])
        del grid
        _, cluster = np.unique(rows, axis=0, return_inverse=True)
    cluster = cluster.reshape(-1).astype(np.int32 if n < 2**31 else np.int64)
    return cluster, int(cluster.max()) + 1, eu, ev
