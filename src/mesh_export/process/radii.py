"""Radii: each ring's perimeter-equivalent radius (its area over 2 pi times the cable length
its node stands for), held near the ring's distance to the local axis."""

from __future__ import annotations

import math

import numpy as np

from mesh_export.process.surface_graph import sum_at

__all__ = ["weighted_median", "cable_lengths", "axis_distances", "shaft_radii"]


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


def cable_lengths(nodes, parents, in_spine, wire, exit_len):
    """Cable length each shaft node stands for: half of each shaft edge (not edges from the
    soma centre, not spine edges, not wires), the whole edge from a soma exit (which has no area)."""
    m = len(nodes)
    child = np.flatnonzero(parents >= 0)
    par = parents[child]
    seg = np.linalg.norm(nodes[child] - nodes[par], axis=1)
    counted = (par != 0) & ~in_spine[child] & ~wire[child]
    half = sum_at(child[counted], 0.5 * seg[counted], m)
    half += sum_at(par[counted], 0.5 * seg[counted], m)
    half += exit_len
    return half


def axis_distances(vertices, vertex_area, nodes, parents, in_spine, ring_of, exits, has_exit):
    """Each ring vertex's distance to its node's axis (from its parent, or its soma exit,
    towards its shaft children). Returns the ring vertices, their nodes, their distances, and
    per node the area-weighted mean and median distance."""
    m = len(nodes)
    rv = np.flatnonzero(ring_of >= 0)
    shaft_kids = (parents >= 0) & ~in_spine
    ahead = np.zeros((m, 3))
    nk = np.bincount(parents[shaft_kids & (parents >= 0)], minlength=m)
    for c in range(3):
        ahead[:, c] = sum_at(parents[shaft_kids], nodes[shaft_kids, c], m)
    behind = np.where((parents >= 0)[:, None], nodes[np.maximum(parents, 0)], nodes)
    behind = np.where(has_exit[:, None], exits, behind)
    front = np.where((nk > 0)[:, None], ahead / np.maximum(nk, 1)[:, None], nodes)
    direction = front - behind
    direction[parents == 0] = np.where(has_exit[parents == 0, None], nodes[parents == 0] - exits[parents == 0],
                                       nodes[parents == 0] - nodes[0])
    dnorm = np.linalg.norm(direction, axis=1)
    dnorm[dnorm == 0] = 1.0
    direction /= dnorm[:, None]
    lab = ring_of[rv]
    off = vertices[rv] - nodes[lab]
    along = np.einsum("ij,ij->i", off, direction[lab])
    perp = np.sqrt(np.maximum(np.einsum("ij,ij->i", off, off) - along**2, 0.0))
    wsum = sum_at(lab, vertex_area[rv], m)
    axis_r = sum_at(lab, perp * vertex_area[rv], m) / np.maximum(wsum, 1e-300)
    median_r = weighted_median(lab, perp, vertex_area[rv], m)
    return rv, lab, perp, axis_r, median_r


def shaft_radii(shaft_area, half, axis_r, floor, soma_radius):
    """Shaft radii: area over (2 pi x cable length), held within a factor of two of the ring's
    axis distance, at least ``floor``; the soma's is ``soma_radius``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        area_r = shaft_area / (2 * math.pi * half)
    radii = np.where(np.isfinite(area_r) & (area_r > 0), area_r, axis_r)
    radii = np.where(axis_r > 0, np.clip(radii, 0.5 * axis_r, 2.0 * axis_r), radii)
    radii = np.where(np.isfinite(radii), radii, floor)
    radii = np.maximum(radii, floor)
    radii[0] = soma_radius
    return radii
