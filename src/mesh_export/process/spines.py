"""Spines: short side branches that end near their shaft's axis, drawn as short branches of one
radius that gives them their area (or, when even the thinnest branch has more, folded into
their shaft)."""

from __future__ import annotations

import math

import numpy as np

from mesh_export.process.surface_graph import sum_at

__all__ = ["subtree_extent", "spine_radius", "find_spines", "spine_necks", "draw_spines"]


def subtree_extent(nodes, parents, order):
    """For each node: the farthest distance from it to any node of its subtree, and the
    number of nodes in its subtree (``order``: parents before children)."""
    m = len(nodes)
    gap = np.linalg.norm(nodes - nodes[np.maximum(parents, 0)], axis=1).tolist()
    height = [0.0] * m
    size = [1] * m
    par = parents.tolist()
    for i in order[::-1].tolist():
        p = par[i]
        if p >= 0:
            reach = height[i] + gap[i]
            if reach > height[p]:
                height[p] = reach
            size[p] += size[i]
    return np.asarray(height), np.asarray(size, dtype=np.int64)



def spine_radius(base_cost, lengths, area, r_parent, floor):
    """Uniform radius r of spine branches whose frustum area (first edge from the shaft's radius
    ``r_parent`` over ``base_cost`` length, the rest cylinders of total ``lengths``) is ``area``;
    NaN where even the floor radius has more area than the spine (it cannot be drawn)."""

    def model(r):
        return np.pi * (r_parent + r) * np.sqrt(base_cost**2 + (r_parent - r) ** 2) + 2 * np.pi * r * lengths

    lo = np.full(len(area), floor)
    hi = np.maximum(2.0 * r_parent, 2 * floor)
    drawable = model(lo) <= area
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        big = model(mid) > area
        hi = np.where(big, mid, hi)
        lo = np.where(big, lo, mid)
    return np.where(drawable, 0.5 * (lo + hi), np.nan)


def find_spines(nodes, parents, order, spine_len, wire):
    """Spines: short side branches (at most 8 nodes, not wires) that end within ``spine_len``
    of their shaft's axis, never the child that carries the shaft on (the farthest reach); the
    outermost only: a side branch inside a spine is part of that spine. Returns each node's
    spine (its root, -1: none), whether it is in one and whether it is a spine's root."""
    m = len(nodes)
    height, size = subtree_extent(nodes, parents, order)
    kids = np.bincount(parents[parents >= 0], minlength=m)
    spine_root = np.zeros(m, dtype=bool)
    par = np.maximum(parents, 0)
    gap = np.linalg.norm(nodes - nodes[par], axis=1)
    reach_from_parent = height + gap
    candidate = (parents > 0) & (kids[par] >= 2) & (reach_from_parent <= spine_len) & (size <= 8) & ~wire
    if candidate.any():
        # the child that carries the shaft on (farthest reach) is never a spine
        best = np.full(m, -1.0)
        np.maximum.at(best, parents[parents > 0], reach_from_parent[parents > 0])
        spine_root = candidate & (reach_from_parent < best[par])
    # Outermost candidates only: a side branch inside a spine is part of that spine.
    root_list = spine_root.tolist()
    par_list = parents.tolist()
    of = [-1] * m  # the root of each spine node's spine
    for i in order.tolist():
        p = par_list[i]
        if p >= 0 and of[p] >= 0:
            of[i] = of[p]
            root_list[i] = False
        elif root_list[i]:
            of[i] = i
    spine_of = np.asarray(of, dtype=np.int64)
    in_spine = spine_of >= 0
    spine_root = np.asarray(root_list, dtype=bool)
    return spine_of, in_spine, spine_root


def spine_necks(vertices, vertex_area, nodes, parents, area, spine_of, in_spine, spine_root, rv, lab, perp,
                median_r, axis_r):
    """Each spine's area (its nodes' rings) plus its neck's base inside the shaft's ring: the
    vertices ``rv`` (of nodes ``lab``, ``perp`` from the axis) of a ring with spines on it that
    lie beyond 1.5 x its median axis distance ``median_r``, given to the nearest of its spines.
    Returns the spines' roots, the area per spine root, the shaft area left per node and the axis
    radii (a spiny ring's is its median axis distance)."""
    from scipy.spatial import cKDTree

    m = len(nodes)
    spine_area = np.zeros(m)
    spiny = np.bincount(parents[spine_root], minlength=m) > 0
    roots = np.flatnonzero(spine_root)
    shaft_area = area.copy()
    if len(roots):
        subtree_area = sum_at(np.maximum(spine_of, 0), np.where(in_spine, area, 0.0), m)
        spine_area[roots] = subtree_area[roots]
        neck = spiny[lab] & (perp > 1.5 * np.nan_to_num(median_r)[lab])
        if neck.any():
            vn, ln = rv[neck], lab[neck]
            k = min(6, len(roots))
            _, near = cKDTree(nodes[roots]).query(vertices[vn], k=k)
            near = roots[near.reshape(len(vn), k)]
            mine = parents[near] == ln[:, None]
            found = mine.any(axis=1)
            owner = near[np.arange(len(vn)), np.argmax(mine, axis=1)]
            moved = sum_at(owner[found], vertex_area[vn[found]], m)
            spine_area += moved
            shaft_area -= sum_at(ln[found], vertex_area[vn[found]], m)
            axis_r = np.where(spiny & np.isfinite(median_r), median_r, axis_r)
    return roots, spine_area, shaft_area, axis_r


def draw_spines(nodes, parents, radii, half, roots, spine_of, in_spine, spine_root, spine_area, floor, tiny, spines):
    """Spine branches: a node just inside the shaft, then the spine's ring nodes, one uniform
    radius giving the spine its area. Spines that cannot be drawn with their area (narrowing
    from the shaft's radius at their base already costs more), or all with ``spines=False``,
    give it to their shaft, spread along it. Returns the radii, which spine roots are drawn,
    the area folded into shafts, the base nodes (their children, positions) and the nodes that
    go (those of spines not drawn)."""
    m = len(nodes)
    radii = radii.copy()
    drawn = np.zeros(m, dtype=bool)
    folded_area = 0.0
    base_nodes = np.zeros((0, 3))
    base_child = np.zeros(0, dtype=np.int64)
    if len(roots):
        p_of = parents[roots]
        r_p = radii[p_of]
        to_root = nodes[roots] - nodes[p_of]
        d_root = np.linalg.norm(to_root, axis=1)
        inset = 0.25 * r_p
        with_base = d_root > inset + tiny
        base_cost = np.where(with_base, inset, d_root)
        inner = in_spine & ~spine_root
        inner_len = sum_at(spine_of[inner], np.linalg.norm(nodes[inner] - nodes[parents[inner]], axis=1), m)[roots]
        inner_len += np.where(with_base, d_root - inset, 0.0)
        r_spine = (spine_radius(base_cost, inner_len, spine_area[roots], r_p, floor) if spines
                   else np.full(len(roots), np.nan))
        ok = np.isfinite(r_spine)
        drawn[roots[ok]] = True
        radius_of_spine = np.zeros(m)
        radius_of_spine[roots[ok]] = r_spine[ok]
        members = in_spine & drawn[np.maximum(spine_of, 0)]
        radii[members] = radius_of_spine[spine_of[members]]
        lost = roots[~ok]
        if len(lost):
            # Their area to the shaft, spread along it (a bump at one node would add the
            # slanted frustums' area).
            gain = sum_at(parents[lost], spine_area[lost], m).astype(np.float64)
            folded_area = float(spine_area[lost].sum())
            shaft_edge = (parents > 0) & ~in_spine
            ea, eb = np.flatnonzero(shaft_edge), parents[shaft_edge]
            width = np.maximum(half, tiny)
            for _ in range(4):
                density = gain / width
                flux = 0.25 * (density[ea] - density[eb]) * np.minimum(width[ea], width[eb])
                gain += sum_at(eb, flux, m) - sum_at(ea, flux, m)
            grow = (gain > 0) & ~in_spine
            grow[0] = False
            radii[grow] += gain[grow] / (2 * math.pi * width[grow])
        pick = ok & with_base
        b = roots[pick]
        base_nodes = nodes[parents[b]] + to_root[pick] / d_root[pick, None] * inset[pick, None]
        base_child = b
    gone = in_spine & ~drawn[np.maximum(spine_of, 0)]
    return radii, drawn, folded_area, base_child, base_nodes, gone
