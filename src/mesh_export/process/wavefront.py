"""The wavefront: geodesic distance from the soma region cut into bands of one ``step``; each
connected piece of a band is a cross-section ("ring") of the neurite it crosses, and becomes
one node of the tree at its area-weighted centroid."""

from __future__ import annotations

import numpy as np

from mesh_export.process.surface_graph import edge_graph, sum_at

__all__ = ["label_rings", "ring_stats", "ring_tree", "soma_exits"]


def label_rings(vertices, vertex_area, eu, ev, dist, step, sources):
    """Label every reached vertex with its ring (connected piece of one distance band).
    Returns labels (-1 unreached; sources get 0), the number of rings."""
    from scipy.sparse.csgraph import connected_components

    n = len(vertices)
    reached = np.isfinite(dist)
    band = np.full(n, -2, dtype=np.int64)
    band[reached] = np.floor(dist[reached] / step).astype(np.int64)
    band[sources] = -1
    same = (band[eu] == band[ev]) & (band[eu] != -2)
    g = edge_graph(n, eu[same], ev[same], np.ones(int(same.sum()), dtype=np.int8))
    ncomp, comp = connected_components(g, directed=False)
    # Compact ids: the sources' ring first (0), unreached vertices -1. Ids kept in the order of
    # the components' own (as a sorted unique would give), by a count instead of a sort.
    comp = comp.astype(np.int64)
    comp[sources] = comp[sources].min()
    comp[~reached] = -1
    comp += 1
    present = np.zeros(ncomp + 1, dtype=bool)
    present[comp] = True
    rank = np.cumsum(present, dtype=np.int64)
    rank -= 1 + int(present[0])
    labels = rank[comp]
    # Move the sources' ring to id 0.
    s = labels[sources[0]]
    if s != 0:
        swap = labels == 0
        labels[labels == s] = 0
        labels[swap] = s
    return labels, int(labels.max()) + 1


def ring_stats(vertices, vertex_area, labels, count):
    live = labels >= 0
    lab = labels[live]
    w = vertex_area[live]
    area = sum_at(lab, w, count)
    safe = np.where(area > 0, area, 1.0)
    cnt = np.bincount(lab, minlength=count).astype(np.float64)
    centroid = np.empty((count, 3))
    for c in range(3):
        weighted = sum_at(lab, w * vertices[live, c], count) / safe
        plain = sum_at(lab, vertices[live, c], count) / np.maximum(cnt, 1)
        centroid[:, c] = np.where(area > 0, weighted, plain)
    return centroid, area


def ring_tree(dist, pred, labels, count):
    """Each ring's nearest vertex to the sources (``entry``, ring order), that vertex's Dijkstra
    predecessor (-1: none) and each ring's parent: the ring holding that predecessor (so the
    rings always make a tree, rooted at the sources' ring 0)."""
    live = np.flatnonzero(labels >= 0)
    # The nearest vertex of each ring (the lowest index among equals), ring order: each ring's
    # least distance, then the first vertex at it (no sort of every vertex).
    lab, d = labels[live], dist[live]
    least = np.full(count, np.inf)
    np.minimum.at(least, lab, d)
    at_least = live[d == least[lab]]
    _, first = np.unique(labels[at_least], return_index=True)
    entry = at_least[first]
    parents = np.full(count, -1, dtype=np.int64)
    p = pred[entry]
    has = p >= 0
    parents[labels[entry[has]]] = labels[p[has]]
    parents[0] = -1
    return entry, p, parents


def soma_exits(vertices, vertex_area, pred, ring_of, nodes, parents, tiny):
    """Where each neurite leaves the soma region: the area-weighted centroid of its first ring's
    vertices next to the region (``ring_of``: each vertex's node, the region's is 0). Returns
    the exit points, which stems have one (at least ``tiny`` from their node) and its distance
    to the node (0 for the others)."""
    m = len(nodes)
    rv = np.flatnonzero(ring_of >= 0)
    touching = rv[(pred[rv] >= 0) & (ring_of[np.maximum(pred[rv], 0)] == 0)]
    touching = touching[ring_of[touching] > 0]
    w = vertex_area[touching] + 1e-30
    exit_w = sum_at(ring_of[touching], w, m)
    exits = np.column_stack([sum_at(ring_of[touching], w * vertices[touching, c], m)
                             for c in range(3)]) / np.maximum(exit_w, 1e-300)[:, None]
    has_exit = (exit_w > 0) & (parents == 0)
    exit_len = np.where(has_exit, np.linalg.norm(exits - nodes, axis=1), 0.0)
    has_exit &= exit_len > tiny
    return exits, has_exit, exit_len
