"""The soma point, when none is given: the thickest cross-section of a first wavefront, and the
piece of the mesh whose surface surrounds it (the cell body, not a neurite stuck in it)."""

from __future__ import annotations

import numpy as np

from mesh_export.process.soma import indices_within
from mesh_export.process.surface_graph import edge_graph, sum_at
from mesh_export.process.wavefront import label_rings, ring_stats

__all__ = ["enclosing_piece", "thickest_point"]


def _thickest_cross_section(vertices, normals, labels, count, centroid, surface_tree, solid):
    """Centre and inscribed radius of the thickest cross-section: the ring centroid farthest
    from the (solid) surface among rings of solid pieces whose vertices surround it (normals
    pointing away)."""
    dist, _ = surface_tree.query(centroid)
    live = (labels >= 0) & solid
    lab = labels[live]
    offset = vertices[live] - centroid[lab]
    norm = np.linalg.norm(offset, axis=1)
    norm[norm == 0] = 1.0
    radial = np.einsum("ij,ij->i", offset, normals[live]) / norm
    cnt = np.maximum(np.bincount(lab, minlength=count), 1)
    coherence = np.abs(sum_at(lab, radial, count) / cnt)
    score = np.where((coherence > 0.5) & (np.bincount(lab, minlength=count) >= 4), dist, -1.0)
    best = int(np.argmax(score))
    if score[best] <= 0:
        best = int(np.argmax(dist))
    return centroid[best], float(dist[best])


def enclosing_piece(vertices, normals, vertex_area, comp, solid, point, inscribed) -> int:
    """The solid piece whose surface surrounds ``point`` best: the most area facing away from
    it within three inscribed radii (overlapping pieces: the cell body, not a neurite stuck in it)."""
    idx = indices_within(vertices, point, 3.0 * inscribed)
    idx = idx[solid[idx]]
    if not len(idx):
        solid_idx = np.flatnonzero(solid)
        return int(comp[solid_idx[int(np.argmin(np.linalg.norm(vertices[solid_idx] - point, axis=1)))]])
    offset = vertices[idx] - point
    facing = np.einsum("ij,ij->i", offset, normals[idx]) / np.maximum(np.linalg.norm(offset, axis=1), 1e-300)
    score = np.bincount(comp[idx], weights=vertex_area[idx] * facing)
    return int(np.argmax(score))


def thickest_point(vertices, normals, vertex_area, solid, eu, ev, weight, step, surface_tree):
    """A point in the cell body: the thickest cross-section of a first wavefront over the edges
    (``eu``, ``ev``, ``weight``) of the ``solid`` pieces, started from an extremity so that its
    bands cut the soma across."""
    from scipy.sparse.csgraph import dijkstra

    n = len(vertices)
    reach = np.flatnonzero(solid)
    centre = (vertices[reach] * vertex_area[reach, None]).sum(axis=0) / vertex_area[reach].sum()
    start = reach[int(np.argmax(np.linalg.norm(vertices[reach] - centre, axis=1)))]
    dist0 = dijkstra(edge_graph(n, eu, ev, weight), directed=False, indices=int(start))
    labels0, count0 = label_rings(vertices, vertex_area, eu, ev, dist0, step, np.array([start]))
    centroid0, _ = ring_stats(vertices, vertex_area, labels0, count0)
    seed, _ = _thickest_cross_section(vertices, normals, labels0, count0, centroid0, surface_tree, solid)
    return seed
