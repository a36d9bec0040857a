"""Spines: short side branches that end near their shaft's axis, drawn as short branches of one
radius that gives them their area (or, when even the thinnest branch has more, folded into
their shaft)."""

from __future__ import annotations

import numpy as np

__all__ = ["subtree_extent", "spine_radius"]


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

