"""Surfaces inside the cell body that are not its membrane: set aside before the soma is drawn.

A real cell body's mesh holds more than its outer membrane: the nucleus envelope (a closed
surface ~0.8 x the soma's radius, a piece of its own or joined to the membrane through a few
non-manifold edges), vesicle-like pockets, flat sheets of faces (chunk-boundary walls,
self-contacts). Taken for membrane they draw the soma on the nucleus, and the wavefront runs
branches across the cell body.

What tells them apart is that nothing outside the cell can see them. Around the soma the
surface is cut into patches (faces joined through edges that have exactly two faces: an inner
surface meets the membrane, if at all, only through non-manifold edges or single vertices),
every open edge loop is closed by a flat fan (a cut-out's open top, the ball's own cut through
the neurites), and the lot is rendered from many directions with a z-buffer: a face is
visible when it is the nearest surface at some pixel from some direction. A patch of which
no part is ever visible, and which lies wholly near the soma, is enclosed by the rest of the
cell: it is set aside, its area reported, and the skeleton never sees it. Concave folds of the
membrane itself are joined to visible membrane through ordinary edges and are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SetAside", "enclosed_faces", "view_directions"]

#: Directions the surface is viewed from (a Fibonacci sphere): enough that a membrane fold
#: open to the outside faces one of them.
VIEWS = 40
#: A patch is enclosed when less than this fraction of its area is ever visible (a few faces
#: of a nucleus can be glimpsed through a pixel-sized gap).
VISIBLE_FRACTION = 0.01
#: At most this many pixels across the neighbourhood looked at (a finer mesh than that is seen
#: at this resolution: an opening narrower than a pixel hides what is behind it).
MAX_PIXELS = 512
#: Patches of fewer faces are left alone: a decimated surface folds pairs of faces into its
#: inside, hidden but of no area to speak of, and each would cost a look of its own.
MIN_FACES = 12
#: Pixels per median edge length: faces much smaller than a pixel can lose every pixel to a
#: neighbour on the same surface, which only ever makes a patch look less visible.
PIXELS_PER_EDGE = 1.5


@dataclass
class SetAside:
    """What was taken out: per kind ("inner surfaces": closed patches; "sheets": open ones),
    the number of patches and their area (mesh units^2)."""

    faces: np.ndarray  # mask over the mesh's faces
    inner_surfaces: dict = field(default_factory=lambda: {"count": 0, "area": 0.0})
    sheets: dict = field(default_factory=lambda: {"count": 0, "area": 0.0})

    def record(self) -> dict:
        return {"inner_surfaces": dict(self.inner_surfaces), "sheets": dict(self.sheets)}


def view_directions(count: int = VIEWS) -> np.ndarray:
    k = np.arange(count) + 0.5
    z = 1 - 2 * k / count
    r = np.sqrt(1 - z * z)
    phi = np.pi * (3 - np.sqrt(5)) * k
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def _edge_faces(faces: np.ndarray, n: int):
    """Each face side's edge (sorted ids), the edges' face counts, and the sides sorted by edge."""
    a = faces.reshape(-1).astype(np.int64)
    b = faces[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.argsort(key)
    sorted_key = key[order]
    start = np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]])
    group = np.cumsum(start) - 1
    counts = np.bincount(group)
    return key, order, group, counts


def _patches(faces: np.ndarray, n: int):
    """Faces joined through edges with exactly two faces: patch id per face; per face side,
    whether its edge is open (one face)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = len(faces)
    key, order, group, counts = _edge_faces(faces, n)
    face_of_side = order // 3
    two = counts[group] == 2
    firsts = np.flatnonzero(two & np.concatenate([[True], group[1:] != group[:-1]]))
    u, v = face_of_side[firsts], face_of_side[firsts + 1]
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(m, m))
    _, patch = connected_components(graph, directed=False)
    open_side = np.zeros(3 * m, dtype=bool)
    open_side[order[counts[group] == 1]] = True
    return patch, open_side


def _fans(vertices: np.ndarray, faces: np.ndarray, open_side: np.ndarray) -> np.ndarray:
    """Triangles closing every loop of open edges with a fan from the loop's centroid."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = faces.reshape(-1)[open_side]
    b = faces[:, [1, 2, 0]].reshape(-1)[open_side]
    if not len(a):
        return np.zeros((0, 3, 3))
    ids, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inverse[: len(a)], inverse[len(a):]
    k = len(ids)
    _, loop = connected_components(coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(k, k)), directed=False)
    count = np.bincount(loop)
    middle = np.column_stack([np.bincount(loop, weights=vertices[ids, c]) for c in range(3)]) / count[:, None]
    return np.stack([vertices[a], vertices[b], middle[loop[ia]]], axis=1)


def _row_min(a: np.ndarray) -> np.ndarray:
    return np.minimum(np.minimum(a[:, 0], a[:, 1]), a[:, 2])  # 5x a.min(axis=1) on (t, 3)


def _row_max(a: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(a[:, 0], a[:, 1]), a[:, 2])


def _visible(triangles: np.ndarray, direction: np.ndarray, pixel: float, chunk: int = 1 << 22) -> np.ndarray:
    """Which triangles are the nearest surface, seen from far along ``direction``, at the
    centre of at least one pixel (a z-buffer, filled ``chunk`` triangle-pixel pairs at a time:
    a fan over a long open loop covers many pixels)."""
    helper = np.array([1.0, 0, 0]) if abs(direction[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(direction, e1)
    x, y, depth = triangles @ e1, triangles @ e2, triangles @ direction  # (t, 3) each
    x, y = (x - x.min()) / pixel, (y - y.min()) / pixel
    ix0, ix1 = np.ceil(_row_min(x) - 0.5).astype(np.int64), np.floor(_row_max(x) - 0.5).astype(np.int64)
    iy0, iy1 = np.ceil(_row_min(y) - 0.5).astype(np.int64), np.floor(_row_max(y) - 0.5).astype(np.int64)
    nx, ny = np.maximum(ix1 - ix0 + 1, 0), np.maximum(iy1 - iy0 + 1, 0)
    cover = nx * ny
    width = int(np.ceil(x.max())) + 2
    height = int(np.ceil(y.max())) + 2
    nearest = np.full(width * height, -np.inf)
    owner = np.full(width * height, -1, dtype=np.int64)
    ends = np.cumsum(cover)
    cuts = np.searchsorted(ends, np.arange(chunk, int(ends[-1]) if len(ends) else 0, chunk))
    # The barycentric formulas' terms that do not depend on the pixel, once per triangle (most
    # pixels of a thin fan triangle's box miss it: computing them per pixel was half the time).
    ax, ay, bx, by, cx, cy = x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2]
    b_c, c_b, c_a, a_c = by - cy, cx - bx, cy - ay, ax - cx
    det = b_c * a_c + c_b * (ay - cy)
    flat = np.abs(det) <= 1e-12  # seen edge-on: no pixel centre inside
    det[flat] = 1.0
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(triangles)]])):
        if hi <= lo:
            continue
        part = np.arange(lo, hi)
        part = part[~flat[part] & (cover[part] > 0)]
        tri = np.repeat(part, cover[part])
        within = np.arange(len(tri)) - np.repeat(np.cumsum(cover[part]) - cover[part], cover[part])
        row = np.maximum(nx[tri], 1)
        gx = ix0[tri] + within % row
        gy = iy0[tri] + within // row
        dx, dy = gx + 0.5, gy + 0.5  # the pixel centre, from the triangle's third corner
        dx -= cx[tri]
        dy -= cy[tri]
        at = det[tri]
        l1 = (b_c[tri] * dx + c_b[tri] * dy) / at
        l2 = (c_a[tri] * dx + a_c[tri] * dy) / at
        l3 = 1 - l1 - l2
        hit = (l1 >= -1e-9) & (l2 >= -1e-9) & (l3 >= -1e-9)
        tri, l1, l2, l3 = tri[hit], l1[hit], l2[hit], l3[hit]
        z = l1 * depth[tri, 0] + l2 * depth[tri, 1] + l3 * depth[tri, 2]
        pix = gy[hit] * width + gx[hit]
        order = np.lexsort((-z, pix))
        if not len(order):
            continue
        first = order[np.concatenate([[True], pix[order][1:] != pix[order][:-1]])]
        better = z[first] > nearest[pix[first]]
        nearest[pix[first[better]]] = z[first[better]]
        owner[pix[first[better]]] = tri[first[better]]
    seen = np.zeros(len(triangles), dtype=bool)
    seen[owner[owner >= 0]] = True
    return seen


def _clusters(lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Groups of boxes that overlap (transitively), as index arrays."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    k = len(lo)
    order = np.argsort(lo[:, 0])
    starts = lo[order, 0]
    pairs = [np.zeros((0, 2), dtype=np.int64)]
    for pos, i in enumerate(order):  # the boxes starting within this one's x-extent
        window = order[pos + 1:np.searchsorted(starts, hi[i, 0], side="right")]
        touching = window[((lo[window] <= hi[i]) & (lo[i] <= hi[window])).all(axis=1)]
        pairs.append(np.column_stack([np.full(len(touching), i), touching]))
    pairs = np.concatenate(pairs)
    _, label = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(k, k)),
                                    directed=False)
    return [np.flatnonzero(label == c) for c in np.unique(label)]


def enclosed_faces(vertices: np.ndarray, faces: np.ndarray, face_area: np.ndarray, pixel: float,
                   max_size: float, min_area: float, views: int = VIEWS) -> SetAside:
    """The faces of patches (at most ``max_size`` across, at least ``min_area``) that nothing
    outside the cell sees (see the module docstring). Each patch is looked at among the faces
    around it: its box grown by its own size on every side, where whatever encloses it must lie.
    Smaller patches are left alone: what they could change is as small as they are (and pieces
    of their own inside the soma are dropped by the skeletonizer anyway), while a decimated or
    non-manifold surface has thousands of them."""
    n = len(vertices)
    aside = SetAside(np.zeros(len(faces), dtype=bool))
    if not len(faces):
        return aside
    patch, open_side = _patches(faces, n)
    npatch = int(patch.max()) + 1
    corners = vertices[faces]
    patch_area = np.bincount(patch, weights=face_area, minlength=npatch)
    by_patch = np.argsort(patch, kind="stable")
    starts = np.searchsorted(patch[by_patch], np.arange(npatch))
    lo = np.column_stack([np.minimum.reduceat(corners[by_patch, :, c].min(axis=1), starts) for c in range(3)])
    hi = np.column_stack([np.maximum.reduceat(corners[by_patch, :, c].max(axis=1), starts) for c in range(3)])
    del corners, by_patch
    size = np.linalg.norm(hi - lo, axis=1)
    candidates = np.flatnonzero((size <= max_size) & (np.bincount(patch, minlength=npatch) >= MIN_FACES)
                                & (patch_area >= min_area))
    if not len(candidates):
        return aside
    grow = np.maximum(size[candidates], 4 * pixel)[:, None]
    box_lo, box_hi = lo[candidates] - grow, hi[candidates] + grow
    hidden = np.zeros(npatch, dtype=bool)
    # faces by their centres' x, to cut each neighbourhood's slab without a pass over the mesh
    centres = vertices[faces].mean(axis=1)
    # (a face bigger than this reaching in from outside is left out: one occluder fewer, which
    # can only make a patch look less enclosed)
    reach = 2.0 * float(np.sqrt(np.percentile(face_area, 99)))
    by_x = np.argsort(centres[:, 0])
    xs = centres[by_x, 0]
    for group in _clusters(box_lo, box_hi):
        glo, ghi = box_lo[group].min(axis=0), box_hi[group].max(axis=0)
        slab = by_x[np.searchsorted(xs, glo[0] - reach):np.searchsorted(xs, ghi[0] + reach, side="right")]
        region = np.sort(slab[((centres[slab] >= glo - reach) & (centres[slab] <= ghi + reach)).all(axis=1)])
        local = faces[region]
        _, local_open = _patches(local, n)
        triangles = np.concatenate([vertices[local], _fans(vertices, local, local_open)])
        seen = np.zeros(len(local), dtype=bool)
        mine = candidates[group]
        resolution = max(pixel, float(np.max(ghi - glo)) / MAX_PIXELS)
        for direction in view_directions(views):
            seen |= _visible(triangles, direction, resolution)[: len(local)]
            seen_area = np.bincount(patch[region], weights=face_area[region] * seen, minlength=npatch)
            hidden[mine] = seen_area[mine] < VISIBLE_FRACTION * patch_area[mine]
            if not hidden[mine].any():  # every patch here seen: no need to look further
                break
        else:
            # the few faces bridging a hidden patch to the membrane (too small to be candidates)
            # go with it when they are hidden too
            on_hidden = np.zeros(n, dtype=bool)
            on_hidden[local[hidden[patch[region]]].reshape(-1)] = True
            small = np.bincount(patch, minlength=npatch) < MIN_FACES
            touching = np.bincount(patch[region], weights=on_hidden[local].any(axis=1), minlength=npatch) > 0
            hidden |= small & touching & (seen_area == 0)
    if not hidden.any():
        return aside
    aside.faces[hidden[patch]] = True
    # Counted as surfaces: the hidden patches touching one another (a nucleus and the faces
    # bridging it to the membrane) are one, closed or open as its largest patch is.
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    open_patch = np.zeros(npatch, dtype=bool)
    open_patch[patch[open_side.reshape(-1, 3).any(axis=1)]] = True
    gone = np.flatnonzero(aside.faces)
    corners = faces[gone].reshape(-1)
    members = np.repeat(patch[gone], 3)
    graph = coo_matrix((np.ones(len(corners)), (members, corners)), shape=(npatch, n)).tocsr()
    links = (graph @ graph.T).tocoo()
    _, group = connected_components(coo_matrix((np.ones(len(links.row)), (links.row, links.col)),
                                               shape=(npatch, npatch)), directed=False)
    hidden_ids = np.flatnonzero(hidden)
    for g in np.unique(group[hidden_ids]):
        mine = hidden_ids[group[hidden_ids] == g]
        kind = "sheets" if open_patch[mine[np.argmax(patch_area[mine])]] else "inner_surfaces"
        record = getattr(aside, kind)
        record["count"] += 1
        record["area"] += float(patch_area[mine].sum())
    return aside
