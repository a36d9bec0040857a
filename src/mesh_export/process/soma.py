"""The soma region of a neuron mesh: the connected stretch of surface around the cell body
whose cross-sections stay soma-sized.

Given a point inside the cell body (the thickest cross-section found by the skeletonizer,
a nucleus position from a CAVE soma table, or ``--soma X,Y,Z``):

1. ``r0``: the inscribed radius of the largest ball found by moving the point uphill on the
   distance to the surface (distance to the nearest surface sample).
2. Local thickness of every surface vertex within a few ``r0`` of it: whether the ball of
   diameter ``0.7 r0`` (0.6, then 0.5, where that breaks the region up) touching the vertex from inside (against its normal) is empty of surface.
   Soma vertices see across the cell body (several um); neurite vertices across their neurite
   (under ~2 um), however decimated the surface is. One nearest-sample query per vertex.
3. The region: those thick vertices connected to the point through thick vertices, plus the
   pockets they enclose (pieces of the rest that reach neither beyond the region nor out of the
   neighbourhood); then again from the region's centroid, once.
4. Trunk bases sticking out of the cell body go: the region's distance from the point, as a
   function of direction, is fitted by a quadric; vertices beyond 1.3 x the fit are neurite.

Seen from its centre the soma's surface is star-shaped (:func:`surface_distance`): the
skeletonizer takes into the soma the rings beside it whose centres lie inside that surface, and
starts every neurite on it (:func:`absorb_rings_inside`, :func:`exits_on_surface`).

The skeletonizer writes the region as a single-point soma whose sphere has the region's
surface area (radius ``sqrt(area / 4 pi)``) and starts every neurite at the region's edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SomaRegion", "soma_region", "indices_within", "surface_distance", "absorb_rings_inside",
           "exits_on_surface"]

#: A vertex is soma if it is at least this fraction of the inscribed radius thick (the first
#: fraction whose region is not a collapsed patch, see :data:`MIN_REGION_RADIUS`).
THICK_FRACTIONS = (0.7, 0.6, 0.5)
#: A region whose equivalent-sphere radius is under this fraction of the largest inscribed
#: ball's radius has collapsed: the surface around a ball has at least the ball's area, less the
#: stems' openings (sound regions measure 1.15-1.66 on the synthetic and fly cells, collapsed
#: ones 0.06-0.62: an irregular cell body, or a subdivided coarse mesh's flat facets, where the
#: stricter test breaks the region up). The next, looser fraction is tried.
MIN_REGION_RADIUS = 1.0
#: At most this fraction of the thickness test's half-bar is forgiven for coarse faces.
SLACK = 0.35
#: ... and at least this fraction is always forgiven: a densely sampled surface (a fine or a
#: subdivided mesh) shows every facet crease and voxel bump inside the ball, which an edge-sized
#: slack no longer covers.
MIN_SLACK = 0.15
#: How far from the point (in inscribed radii) the region may reach.
REACH = 3.0
#: The surface "near the ball" (in inscribed radii from the point) whose thick stretches compete
#: to be the region: the ball touches the surface at one radius; a cell body's wall lies within
#: about half a radius more, a neurite's far beyond.
NEAR_BALL = 1.5
#: Region vertices farther than ``1 + PROTRUSION`` times the cell body's fitted surface from
#: its deepest point are a trunk's base sticking out of it, not soma (see ``_without_protrusions``).
PROTRUSION = 0.3
#: A ring beside the soma whose centre lies nearer the soma's centre than this fraction of the
#: soma's surface in that direction is soma membrane the thickness test left out (a band round
#: a stem's base on a coarse surface): its centre is inside the cell body, and a neurite
#: started there would run through it.
INSIDE = 0.95
#: Directions (nearest soma vertices) the soma surface's distance is taken over.
STAR_NEIGHBOURS = 12


@dataclass
class SomaRegion:
    vertices: np.ndarray  # indices of the region's vertices
    centre: np.ndarray  # area-weighted centroid of the region's surface
    area: float  # surface area of the region (mesh units^2)
    inscribed: float  # inscribed radius at the point the region was grown from
    seed: np.ndarray  # that point

    @property
    def radius(self) -> float:
        """Radius of the sphere with the region's surface area."""
        return math.sqrt(max(self.area, 0.0) / (4 * math.pi))


def indices_within(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Indices of ``points`` within ``radius`` of ``centre`` (a box test first: cheap on big meshes)."""
    idx = np.flatnonzero(np.abs(points[:, 0] - centre[0]) <= radius)
    for c in (1, 2):
        idx = idx[np.abs(points[idx, c] - centre[c]) <= radius]
    return idx[((points[idx] - centre) ** 2).sum(axis=1) <= radius * radius]


def _deepest_near(point: np.ndarray, samples: np.ndarray, steps: int = 40) -> np.ndarray:
    """The point moved uphill on the distance to the surface, to the centre of the largest ball
    it can reach: a nucleus dimple or a decimated facet beside the seed makes the ball at the
    seed itself too small, and the thickness test's scale with it (stem bases then pass as soma)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(samples)
    depth, near = tree.query(point)
    if not depth > 0:
        return point
    move = 0.25 * depth
    for _ in range(steps):
        away = point - samples[near]
        trial = point + move * away / max(float(np.linalg.norm(away)), 1e-300)
        d, n = tree.query(trial)
        if d > depth:
            point, depth, near = trial, d, n
        else:
            move *= 0.5
            if move < 1e-3 * depth:
                break
    return point


def soma_region(vertices: np.ndarray, normals: np.ndarray, vertex_area: np.ndarray, eu: np.ndarray,
                ev: np.ndarray, candidates: np.ndarray, seed: np.ndarray, samples: np.ndarray,
                tolerance: float, rounds: int = 2) -> SomaRegion:
    """The soma region around ``seed`` (see the module docstring), at the strictest thickness
    fraction that does not collapse it."""
    point = _deepest_near(np.asarray(seed, dtype=np.float64), samples)
    depth = float(np.sqrt(((samples - point) ** 2).sum(axis=1).min()))
    region = None
    for fraction in THICK_FRACTIONS:
        region = _grown_region(vertices, normals, vertex_area, eu, ev, candidates, point, samples, tolerance,
                               rounds, fraction)
        if region.radius >= MIN_REGION_RADIUS * depth:
            break
    return _without_protrusions(region, vertices, vertex_area, eu, ev, point)


def _shape_basis(directions: np.ndarray) -> np.ndarray:
    x, y, z = directions.T
    return np.column_stack([np.ones(len(x)), x, y, z, x * x, y * y, x * y, y * z, z * x])


def _without_protrusions(region: SomaRegion, vertices, vertex_area, eu, ev, point) -> SomaRegion:
    """The region less the bases of trunks that stick out of the cell body. A trunk nearly as
    thick as the thickness test's ball (an apical trunk on a small soma: 2.2 um across a 9 um
    soma) passes it for several um: the region took 20-25% more area than the soma's membrane.
    A cell body is a rounded, star-shaped body about its deepest point: its distance from that
    point, as a function of direction, is fitted by a quadric (a weighted least-squares fit,
    refitted without what lies beyond ``1 + PROTRUSION / 2`` of it), and vertices beyond
    ``1 + PROTRUSION`` of the fit are neurite. What stays joined to the region's deepest part
    is the soma."""
    members = region.vertices
    if len(members) < 4 * _shape_basis(np.eye(3)).shape[1]:
        return region
    offset = vertices[members] - point
    distance = np.linalg.norm(offset, axis=1)
    basis = _shape_basis(offset / np.maximum(distance, 1e-300)[:, None])
    weight = np.sqrt(vertex_area[members])
    fit_rows = np.ones(len(members), dtype=bool)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(basis[fit_rows] * weight[fit_rows, None], distance[fit_rows] * weight[fit_rows],
                                   rcond=None)
        fitted = basis @ coef
        fit_rows = distance <= (1 + PROTRUSION / 2) * fitted
    beyond = distance > (1 + PROTRUSION) * fitted
    if not beyond.any():
        return region
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = members[~beyond]
    local = np.full(len(vertices), -1, dtype=np.int64)
    local[keep] = np.arange(len(keep))
    lu, lv = local[eu], local[ev]
    both = (lu >= 0) & (lv >= 0)
    k = len(keep)
    _, label = connected_components(coo_matrix((np.ones(int(both.sum())), (lu[both], lv[both])), shape=(k, k)),
                                    directed=False)
    area_per = np.bincount(label, weights=vertex_area[keep])
    keep = keep[label == int(np.argmax(area_per))]
    weights = vertex_area[keep]
    area = float(weights.sum())
    if not area > 0:
        return region
    centre = (vertices[keep] * weights[:, None]).sum(axis=0) / area
    return SomaRegion(keep, centre, area, region.inscribed, region.seed)


def _grown_region(vertices, normals, vertex_area, eu, ev, candidates, point, samples, tolerance, rounds,
                  fraction) -> SomaRegion:
    """The soma region around ``seed`` (see the module docstring).

    ``normals`` point out of the body; ``candidates`` is a mask of the vertices that may
    belong (the soma's piece of the mesh); ``samples`` points on the surface of that piece (vertices and face centres);
    ``tolerance`` how close to the surface counts as touching it (about half an edge length).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    region = None
    for _ in range(rounds):
        r0 = max(float(np.sqrt(((samples - point) ** 2).sum(axis=1).min())), 2 * tolerance)
        reach = REACH * r0
        bar = fraction * r0
        sample_tree = cKDTree(samples[indices_within(samples, point, reach + bar)])
        idx = indices_within(vertices, point, reach)
        idx = idx[candidates[idx]]
        if not len(idx):
            idx = np.flatnonzero(candidates)
            idx = idx[[int(np.argmin(np.linalg.norm(vertices[idx] - point, axis=1)))]]
        # The neighbourhood as its own graph: local ids 0..k-1, and which of them touch
        # candidate vertices outside it.
        k = len(idx)
        local = np.full(len(vertices), -1, dtype=np.int64)
        local[idx] = np.arange(k)
        lu, lv = local[eu], local[ev]
        both = (lu >= 0) & (lv >= 0)
        graph_u, graph_v = lu[both], lv[both]
        leaving = ((lu >= 0) & (lv < 0) & candidates[ev]) | ((lv >= 0) & (lu < 0) & candidates[eu])
        border = np.zeros(k, dtype=bool)
        border[np.where(lu >= 0, lu, lv)[leaving]] = True

        def components(mask):
            keep = mask[graph_u] & mask[graph_v]
            graph = csr_matrix((np.ones(int(keep.sum()), dtype=np.int8), (graph_u[keep], graph_v[keep])),
                               shape=(k, k))
            return connected_components(graph, directed=False)[1]

        # Thick enough: the ball of diameter ``bar`` touching the vertex from inside is empty
        # of surface (one nearest-sample query per vertex).
        half_bar = 0.5 * bar
        clearance, _ = sample_tree.query(vertices[idx] - normals[idx] * half_bar, distance_upper_bound=half_bar)
        # The slack for coarse faces is capped: on a decimated small soma (edges ~0.8 um, bar
        # ~1.8 um) two edge lengths would call a 1.5 um dendrite stem soma-thick.
        thick = clearance >= half_bar - max(min(2 * tolerance, SLACK * half_bar), MIN_SLACK * half_bar)
        dist = np.linalg.norm(vertices[idx] - point, axis=1)
        start = int(np.argmin(dist))
        thick[start] = True
        label = components(thick)
        # The region is the thick stretch that wraps the ball, not whichever holds the one
        # vertex nearest the point: on a clustered or finely faceted surface that vertex can sit
        # in a patch of a few vertices (the soma collapsed to 0.2 um on a dense fly neuron).
        # The stretch with the most area near the ball's surface wins; the nearest vertex's
        # otherwise (nothing thick near the ball).
        near = thick & (dist <= NEAR_BALL * r0)
        if near.any():
            near_area = np.bincount(label[near], weights=vertex_area[idx][near], minlength=int(label.max()) + 1)
            start_label = int(np.argmax(near_area)) if near_area.max() > 0 else int(label[start])
        else:
            start_label = int(label[start])
        inside = thick & (label == start_label)
        # Pockets: pieces of the rest that reach neither beyond the region nor out of the
        # neighbourhood are enclosed by the region (bumps, holes, a pinched patch).
        rest = ~inside
        if rest.any():
            label = components(rest)
            limit = float(dist[inside].max())
            out = np.unique(label[rest & (border | (dist > limit))])
            inside |= rest & ~np.isin(label, out)
        members = idx[inside]
        weights = vertex_area[members]
        area = float(weights.sum())
        centre = (vertices[members] * weights[:, None]).sum(axis=0) / area if area > 0 else point
        region = SomaRegion(members, centre, area, r0, point)
        point = centre
    return region


def surface_distance(soma_vertices: np.ndarray, point: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """The soma's surface seen from ``point`` as star-shaped: its distance along the direction
    of each of ``towards`` (offsets from ``point``) is the median distance of the
    ``STAR_NEIGHBOURS`` soma vertices nearest that direction (through a stem's opening: its rim's)."""
    from scipy.spatial import cKDTree

    offset = soma_vertices - point
    distance = np.linalg.norm(offset, axis=1)
    tree = cKDTree(offset / np.maximum(distance, 1e-300)[:, None])
    reach = np.linalg.norm(towards, axis=1)
    k = min(STAR_NEIGHBOURS, len(offset))
    _, near = tree.query(towards / np.maximum(reach, 1e-300)[:, None], k=k)
    return np.median(distance[near.reshape(len(towards), k)], axis=1)


def absorb_rings_inside(vertices, labels, parents, centroid, ring_area, soma_point, rounds: int = 8):
    """Rings next to the soma (ring 0) whose centres lie inside it (see :data:`INSIDE` and
    :func:`surface_distance`) go into it: their vertices relabelled 0, their area added to the
    soma's, their children hung on the soma. Repeated while the grown soma takes more. Returns
    the number of rings absorbed (``labels``, ``parents``, ``ring_area`` are updated in place;
    an absorbed ring is left as an empty leaf on the soma, which tidying drops)."""
    gone = np.zeros(len(parents), dtype=bool)
    for _ in range(rounds):
        children = np.flatnonzero((parents == 0) & ~gone)
        soma = np.flatnonzero(labels == 0)
        if not len(children) or len(soma) < STAR_NEIGHBOURS:
            break
        towards = centroid[children] - soma_point
        surface = surface_distance(vertices[soma], soma_point, towards)
        inside = children[np.linalg.norm(towards, axis=1) < INSIDE * surface]
        if not len(inside):
            break
        into = np.zeros(len(parents), dtype=bool)
        into[inside] = True
        labels[into[np.maximum(labels, 0)] & (labels >= 0)] = 0
        ring_area[0] += ring_area[inside].sum()
        ring_area[inside] = 0
        parents[into[np.maximum(parents, 0)] & (parents >= 0)] = 0
        gone |= into
    return int(gone.sum())


def exits_on_surface(exits, has_exit, nodes, soma_vertices, soma_point):
    """Exits inside the soma moved out onto its surface, on the way from the soma's point to
    their neurite's first node: an exit is the centre of the vertices where the neurite meets
    the soma region, which on a coarse surface can be spread round a wide arc whose centre lies
    deep in the cell body. Returns the exits (a copy) and how many moved."""
    exits = exits.copy()
    which = np.flatnonzero(has_exit)
    if not len(which) or len(soma_vertices) < STAR_NEIGHBOURS:
        return exits, 0
    surface = surface_distance(soma_vertices, soma_point, exits[which] - soma_point)
    inside = np.linalg.norm(exits[which] - soma_point, axis=1) < INSIDE * surface
    which = which[inside]
    if len(which):
        towards = nodes[which] - soma_point
        reach = np.linalg.norm(towards, axis=1)
        along = np.minimum(surface_distance(soma_vertices, soma_point, towards), reach)
        exits[which] = soma_point + towards * (along / np.maximum(reach, 1e-300))[:, None]
    return exits, int(len(which))
