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
    _, comp = connected_components(g, directed=False)
    # Compact ids: the sources' ring first (0), unreached vertices -1.
    comp = comp.astype(np.int64)
    src_comp = np.unique(comp[sources])
    comp[sources] = src_comp[0]
    comp[~reached] = -1
    uniq, labels = np.unique(comp, return_inverse=True)
    labels = labels.astype(np.int64)
    if uniq[0] == -1:
        labels -= 1
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
    order = live[np.lexsort((dist[live], labels[live]))]
    first = np.ones(len(order), dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    entry = order[first]  # the nearest vertex of each ring, ring order
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
