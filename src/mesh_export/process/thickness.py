"""Thinnest feature of a closed surface, block by block: memory bounded by one block, not the grid.

The inside of a closed, outward-wound surface is found column by column: where each column of
voxel centres crosses the surface (a crossing toggles inside/outside), so no full-size grid,
no flood fill and no labels are needed. Each block (with a halo) is filled from the crossings,
its Euclidean distance transform taken, and the thickness read on its ridge (medial) voxels,
as the whole-grid version did. Distances up to the halo are exact; deeper ones only say "thick".
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidArgumentError

#: Bytes per voxel of a block while it is measured: the uint8 fill, scipy's distance transform
#: (float64 distances, int32 feature indices, its bool input) and the ridge filter.
BLOCK_BYTES_PER_VOXEL = 48
_FACE_CHUNK = 1 << 15


def column_crossings(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, pitch: float):
    """For every face, the voxel columns (centres) inside its xy projection and the surface's
    height there, in voxel units: arrays ``i, j, z``. Column centres are nudged by an
    irrational amount so none lies exactly on an edge (no crossing counted twice or lost)."""
    nudge = np.array([math.sqrt(2) * 1e-6, math.sqrt(3) * 1e-6])
    grid = (np.asarray(vertices, dtype=np.float64) - origin) / pitch - 0.5
    out_i, out_j, out_z = [], [], []
    for start in range(0, len(faces), _FACE_CHUNK):
        tri = grid[faces[start : start + _FACE_CHUNK]]  # (n, 3, 3)
        lo = np.ceil(tri[:, :, :2].min(axis=1) - nudge).astype(np.int64)
        hi = np.floor(tri[:, :, :2].max(axis=1) - nudge).astype(np.int64)
        span = np.maximum(hi - lo + 1, 0)
        count = span[:, 0] * span[:, 1]
        keep = count > 0
        if not keep.any():
            continue
        tri, lo, span, count = tri[keep], lo[keep], span[keep], count[keep]
        owner = np.repeat(np.arange(len(tri)), count)
        local = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        ci = lo[owner, 0] + local // span[owner, 1]
        cj = lo[owner, 1] + local % span[owner, 1]
        px, py = ci + nudge[0], cj + nudge[1]
        a, b, c = tri[owner, 0], tri[owner, 1], tri[owner, 2]
        det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            u = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (py - a[:, 1])) / det
            v = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (px - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
        inside = (det != 0) & (u >= 0) & (v >= 0) & (u + v <= 1)
        z = a[:, 2] + u * (b[:, 2] - a[:, 2]) + v * (c[:, 2] - a[:, 2])
        out_i.append(ci[inside])
        out_j.append(cj[inside])
        out_z.append(z[inside])
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_z)


def _block_size(budget: int, halo: int) -> int:
    """The largest cubic block (a multiple of 8, at least 16) whose padded volume fits ``budget``."""
    side = int((budget / BLOCK_BYTES_PER_VOXEL) ** (1 / 3)) - 2 * halo
    side -= side % 8
    if side < 16:
        raise InvalidArgumentError(
            f"--max-memory {budget / 2**20:.0f} MiB is too small to check the thinnest feature "
            f"(needs about {BLOCK_BYTES_PER_VOXEL * (16 + 2 * halo) ** 3 / 2**20:.0f} MiB)")
    return min(side, 64)  # small blocks crop tighter around a neuron's branches


def ridge_thickness(vertices, faces, pitch: float, *, budget: int, halo: int = 12) -> tuple[np.ndarray, dict]:
    """Thickness (mesh units) at every ridge voxel of the closed surface's inside, at ``pitch``,
    and facts about the run (blocks, block side, peak block bytes)."""
    from scipy import ndimage

    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    origin = lo - 2 * pitch
    shape = np.ceil((hi - lo) / pitch).astype(np.int64) + 4
    i, j, z = column_crossings(vertices, faces, origin, pitch)
    # A crossing at height z toggles every voxel centre above it: the first is ceil(z).
    k = np.ceil(z).astype(np.int64)
    order = np.lexsort((j, i))
    i, j, k = i[order], j[order], k[order]
    side = _block_size(budget, halo)
    values, blocks, measured = [], 0, 0
    for a0 in range(0, shape[0], side):
        ia, ib = max(a0 - halo, 0), min(a0 + side + halo, shape[0])
        rows = slice(np.searchsorted(i, ia), np.searchsorted(i, ib))
        bi, bj, bk = i[rows], j[rows], k[rows]
        for b0 in range(0, shape[1], side):
            ja, jb = max(b0 - halo, 0), min(b0 + side + halo, shape[1])
            in_cols = (bj >= ja) & (bj < jb)
            ci, cj, ck = bi[in_cols] - ia, bj[in_cols] - ja, bk[in_cols]
            if not len(ci):
                continue
            for c0 in range(0, shape[2], side):
                ka, kb = max(c0 - halo, 0), min(c0 + side + halo, shape[2])
                blocks += 1
                sel = ck < kb
                solid = np.zeros((ib - ia, jb - ja, kb - ka), dtype=np.uint8)
                np.add.at(solid, (ci[sel], cj[sel], np.maximum(ck[sel] - ka, 0)), 1)
                np.cumsum(solid, axis=2, dtype=np.uint8, out=solid)
                solid &= 1
                inside = solid.view(bool)
                if not inside.any() or inside.all():
                    continue  # all outside, or all inside (thicker than the halo)
                measured += 1
                # Only the box around the inside, with one empty layer: the nearest empty voxel
                # of any inside voxel is then within the box (clamp it to the box), so the
                # distances are the same, on a neuron's sparse blocks at a fraction of the cost.
                lo, hi = [], []
                for axis in range(3):
                    used = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
                    lo.append(max(int(used[0]) - 1, 0))
                    hi.append(min(int(used[-1]) + 2, inside.shape[axis]))
                box = tuple(slice(a, b) for a, b in zip(lo, hi))
                distance = ndimage.distance_transform_edt(inside[box]).astype(np.float32)
                del solid, inside
                starts = (a0 - ia, b0 - ja, c0 - ka)
                core = tuple(slice(max(s0 - a, 0), max(min(s0 + side, b) - a, 0))
                             for s0, a, b in zip(starts, lo, hi))
                ridge = (distance > 0) & (distance >= ndimage.maximum_filter(distance, size=3))
                d = distance[core][ridge[core]]
                del distance, ridge
                # (2d - 1) voxels: a 1-voxel line has d = 1; a tube of D voxels has d ~ D/2 + 1/2 on its axis.
                values.append((2 * d - 1) * pitch)
    thickness = np.concatenate(values) if values else np.zeros(0, dtype=np.float32)
    padded = (side + 2 * halo) ** 3
    return thickness, {"blocks": blocks, "blocks_measured": measured, "block_side": side,
                       "grid_voxels": int(np.prod(shape)),
                       "peak_block_bytes": int(padded * BLOCK_BYTES_PER_VOXEL)}
