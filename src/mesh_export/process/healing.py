"""Healing: joining a mesh's disconnected pieces into one graph across their gaps.

A decimated or badly segmented neuron comes in pieces (an axon broken into dozens of
fragments, debris beside it). Each piece is joined to its nearest foreign piece by a gap edge,
a minimum spanning tree over the pieces, so that a chain of fragments is joined fragment to
fragment rather than each to whatever part of the cell is nearest.
"""

from __future__ import annotations

import numpy as np

from mesh_export.errors import SkeletonizeError

__all__ = ["heal_edges", "kept_edges", "long_gap_wires"]


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _nearest_foreign(vertices, idx_live, live_group, todo, todo_group, home, by_x):
    """For each group of ``todo`` vertices, its nearest vertex of another group, exactly: the
    main group's nearest vertex bounds the distance, so any nearer one lies in the group's box
    grown by that bound (``by_x``: the live vertices sorted by x, to cut the box's slab fast).
    Returns, per ``todo`` vertex, a distance (inf but on each group's closest vertex) and the
    vertex it is nearest to."""
    from scipy.spatial import cKDTree

    main_idx = idx_live[live_group == home]
    bound, near = cKDTree(vertices[main_idx]).query(vertices[todo])
    near = main_idx[near]
    dist = np.full(len(todo), np.inf)
    xs = vertices[idx_live[by_x], 0]
    order = np.argsort(todo_group, kind="stable")
    cuts = np.flatnonzero(np.diff(todo_group[order])) + 1
    for rows in np.split(order, cuts):
        g = todo_group[rows[0]]
        best = int(rows[np.argmin(bound[rows])])
        d_best, src, dst = float(bound[best]), best, int(near[best])
        points = vertices[todo[rows]]
        lo, hi = points.min(axis=0) - d_best, points.max(axis=0) + d_best
        slab = by_x[np.searchsorted(xs, lo[0]):np.searchsorted(xs, hi[0], side="right")]
        cand = slab[(live_group[slab] != g) & (live_group[slab] != home)]
        if len(cand):
            cv = vertices[idx_live[cand]]
            cand = cand[((cv[:, 1:] >= lo[1:]) & (cv[:, 1:] <= hi[1:])).all(axis=1)]
        if len(cand):
            d, j = cKDTree(points).query(vertices[idx_live[cand]])
            i = int(np.argmin(d))
            if d[i] < d_best:
                d_best, src, dst = float(d[i]), int(rows[j[i]]), int(idx_live[cand[i]])
        dist[src] = d_best
        near[src] = dst
    return dist, near


def heal_edges(vertices, labels, piece_area, main, max_gap):
    """Gap edges joining every piece to the main one: a minimum spanning tree of the pieces
    (Boruvka: each round, every group of pieces not yet joined to the main piece links to its
    nearest vertex in another group), so a chain of fragments is joined fragment to fragment.
    Returns the edges (vertex pairs), their lengths and the pieces left unjoined (max_gap)."""
    from scipy.spatial import cKDTree

    pieces = np.flatnonzero(piece_area > 0)
    others = pieces[pieces != main]
    if len(others) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), []
    if piece_area[main] <= 0:
        raise SkeletonizeError("the soma's piece of the mesh has no area")
    idx_live = np.flatnonzero(np.isin(labels, pieces))
    tree = cKDTree(vertices[idx_live])
    by_x = np.argsort(vertices[idx_live, 0], kind="stable")
    uf = np.arange(len(piece_area))
    chosen = []
    for _ in range(64):
        group = np.array([_find(uf, p) for p in range(len(piece_area))])
        home = group[main]
        query = idx_live[group[labels[idx_live]] != home]
        if not len(query):
            break
        best = {}  # group -> (distance, vertex in it, vertex elsewhere)
        todo = query
        for k in (16, 128, 0):
            if k == 0:  # still alone among its 128 nearest (a dense piece): search exactly
                dist, near = _nearest_foreign(vertices, idx_live, group[labels[idx_live]], todo,
                                              group[labels[todo]], home, by_x)
                dist, near = dist[:, None], near[:, None]
            else:
                k = min(k, len(idx_live))
                dist, near = tree.query(vertices[todo], k=k)
                dist, near = dist.reshape(len(todo), k), idx_live[near.reshape(len(todo), k)]
            foreign = group[labels[near]] != group[labels[todo]][:, None]
            rows = np.flatnonzero(foreign.any(axis=1))
            col = np.argmax(foreign, axis=1)[rows]
            d, src, dst = dist[rows, col], todo[rows], near[rows, col]
            order = np.lexsort((d, group[labels[src]]))
            first = np.ones(len(order), dtype=bool)
            first[1:] = group[labels[src[order]]][1:] != group[labels[src[order]]][:-1]
            for i in order[first]:
                g = int(group[labels[src[i]]])
                if g not in best or d[i] < best[g][0]:
                    best[g] = (float(d[i]), int(src[i]), int(dst[i]))
            # groups none of whose vertices saw another group among their k nearest ask again
            todo = todo[~np.isin(group[labels[todo]], list(best))]
            if not len(todo):
                break
        joined = False
        for d, a, b in sorted(best.values()):
            if d > max_gap:
                continue
            ra, rb = _find(uf, labels[a]), _find(uf, labels[b])
            if ra != rb:
                uf[ra] = rb
                chosen.append((a, b, d))
                joined = True
        if not joined:
            break
    root_main = _find(uf, main)
    dropped = [int(p) for p in others if _find(uf, p) != root_main]
    if not chosen:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), dropped
    pairs = np.array([(a, b) for a, b, _ in chosen], dtype=np.int64)
    return pairs, np.array([d for _, _, d in chosen]), dropped


def kept_edges(vertices, comp, piece_area, eu, ev, weight, main, exclude, drop_others, max_gap):
    """Edges of the kept pieces (those of ``comp`` but the ``exclude``d), plus gap edges joining
    them to ``main`` (healing); with ``drop_others`` only ``main``'s own edges. Returns the edges
    (u, v, weight), the number of gap edges and the pieces left unjoined."""
    area = piece_area.copy()
    area[list(exclude)] = 0
    if drop_others:
        keep = comp[eu] == main
        return eu[keep], ev[keep], weight[keep], 0, [int(p) for p in np.flatnonzero(area > 0) if p != main]
    pairs, gaps, unreached = heal_edges(vertices, comp, area, main, max_gap)
    keep = ~np.isin(comp[eu], list(exclude)) if len(exclude) else np.ones(len(eu), dtype=bool)
    return (np.concatenate([eu[keep], pairs[:, 0]]), np.concatenate([ev[keep], pairs[:, 1]]),
            np.concatenate([weight[keep], np.maximum(gaps, weight.min())]), len(pairs), unreached)


def long_gap_wires(vertices, comp, labels, entry, pred_entry, step):
    """The rings reached across a healed gap longer than two steps (a decimated axon can lose
    whole stretches): no membrane there, so they become wires of the minimum radius between the
    vertices at either end of the gap. ``entry``: each ring's nearest vertex, ``pred_entry`` its
    predecessor. Returns a mask of those rings and, per ring, the gap's two ends (parent's side
    first)."""
    count = len(entry)
    has = pred_entry >= 0
    ends = np.zeros((count, 2, 3))
    wire = np.zeros(count, dtype=bool)
    crossing = has & (comp[entry] != comp[np.maximum(pred_entry, 0)])
    if crossing.any():
        near_end, far_end = vertices[entry[crossing]], vertices[pred_entry[crossing]]
        long_gap = np.linalg.norm(near_end - far_end, axis=1) > 2 * step
        rings = labels[entry[crossing]][long_gap]
        wire[rings] = True
        ends[rings, 0] = far_end[long_gap]  # the parent's side
        ends[rings, 1] = near_end[long_gap]  # the child's side
    wire[0] = False
    return wire, ends
