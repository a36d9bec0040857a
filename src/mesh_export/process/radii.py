"""Radii: each ring's perimeter-equivalent radius (its area over 2 pi times the cable length
its node stands for), held near the ring's distance to the local axis."""

from __future__ import annotations

import numpy as np

from mesh_export.process.surface_graph import sum_at

__all__ = ["weighted_median"]


def weighted_median(groups: np.ndarray, values: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    """Per group (0..count-1), the weighted median of ``values`` (NaN for empty groups)."""
    out = np.full(count, np.nan)
    if not len(groups):
        return out
    order = np.lexsort((values, groups))
    g, v, w = groups[order], values[order], weights[order]
    total = sum_at(g, w, count)
    cum = np.cumsum(w)
    start = np.concatenate([[0.0], cum[:-1]])
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    base = np.maximum.accumulate(np.where(first, start, 0.0))  # cumulative weight before each group
    above = (cum - base) >= 0.5 * total[g]
    pick = np.flatnonzero(above & np.concatenate([[True], ~(above[:-1] & (g[1:] == g[:-1]))]))
    out[g[pick]] = v[pick]
    return out

