"""Morphologies: the ``Skeleton`` type and ``skeletonize(mesh)``, a surface mesh -> one tree.

NEURON simulates cables, not surfaces. ``skeletonize`` turns a neuron's surface mesh into a
tree rooted at the soma whose membrane area, as NEURON computes it from frustums, matches
the mesh's surface area:

1. Pieces: the mesh's connected pieces are healed into one graph (each piece joined to its
   nearest neighbour piece by a gap edge, minimum-spanning-tree style) or all but the
   largest dropped.
2. Soma: the point of largest inscribed radius (distance to the surface) among cross-section
   centroids of a first wavefront pass, or the point given.
3. Wavefront: geodesic distance from the soma over the vertex graph (Dijkstra), cut into
   bands of width ``step``; each connected piece of a band is a cross-section ("ring"),
   its area-weighted centroid a node, its parent the ring holding the Dijkstra predecessor
   of its nearest vertex (so the result is always a tree).
4. Radii: the ring's surface area over 2 pi times the cable length the node stands for,
   i.e. the perimeter-equivalent radius; it is kept within a factor of two of the mean
   distance of the ring's vertices to the local axis, floored at ``min_radius`` and never
   above twice the soma radius. Frustums with these radii have the ring's area, so the model's
   membrane area follows the mesh's.

Pure numpy/scipy (no GPL code). Coordinates stay in the mesh's units; writers convert to the
format's units (micrometres for SWC, hoc and NeuroML).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from .errors import InputError, InvalidArgumentError, InvalidMeshError, UnitsError
from .units import conversion_factor, normalize_units

__all__ = [
    "Skeleton",
    "skeletonize",
    "read_swc",
    "SkeletonizeError",
    "InvalidSkeletonError",
    "SkeletonUnitsWarning",
    "output_units",
    "SOMA",
    "AXON",
    "BASAL",
    "APICAL",
]

# SWC structure identifiers (the standard four; NEURON and MorphIO know no others reliably).
SOMA, AXON, BASAL, APICAL = 1, 2, 3, 4
_NEURITE_TYPES = (AXON, BASAL, APICAL)


class SkeletonizeError(InvalidMeshError):
    """The mesh cannot be turned into a morphology: flat, no area, no volume."""

    exit_code = 14


class InvalidSkeletonError(InvalidMeshError):
    """A skeleton is not one valid tree: several roots, cycles, NaN or non-positive radii."""

    exit_code = 15


class SkeletonUnitsWarning(UserWarning):
    """A morphology is being written in units other than micrometres (NEURON's convention)."""


# ----------------------------------------------------------------------------- the type


@dataclass
class Skeleton:
    """A neuron morphology: one tree of nodes.

    ``nodes`` (n, 3) positions, ``parents`` (n,) index of each node's parent (-1 for the
    root), ``radii`` (n,), ``types`` (n,) SWC structure ids (1 soma, 2 axon, 3 basal
    dendrite, 4 apical dendrite), ``units`` of positions and radii, ``metadata``
    (provenance: source, root id, steps).
    """

    nodes: np.ndarray
    parents: np.ndarray
    radii: np.ndarray
    types: np.ndarray | None = None
    units: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = np.asarray(self.nodes, dtype=np.float64).reshape(-1, 3)
        self.parents = np.asarray(self.parents).astype(np.int64, copy=False).reshape(-1)
        self.radii = np.asarray(self.radii, dtype=np.float64).reshape(-1)
        if self.types is None:
            self.types = np.full(len(self.nodes), BASAL, dtype=np.int64)
            if len(self.nodes):
                self.types[self.parents < 0] = SOMA
        else:
            self.types = np.asarray(self.types).astype(np.int64, copy=False).reshape(-1)
        if self.units is not None:
            self.units = normalize_units(self.units)

    # -- views

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def vertices(self) -> np.ndarray:
        """Alias of ``nodes`` (the name trimesh-style code expects)."""
        return self.nodes

    @property
    def edges(self) -> np.ndarray:
        """(m, 2) child, parent index pairs."""
        child = np.flatnonzero(self.parents >= 0)
        return np.column_stack([child, self.parents[child]])

    @property
    def root(self) -> int:
        roots = np.flatnonzero(self.parents < 0)
        if len(roots) != 1:
            raise InvalidSkeletonError(f"a skeleton has exactly one root; this one has {len(roots)}")
        return int(roots[0])

    def child_counts(self) -> np.ndarray:
        return np.bincount(self.parents[self.parents >= 0], minlength=len(self))

    def edge_lengths(self) -> np.ndarray:
        """Length of the edge from each node to its parent (0 for the root)."""
        lengths = np.zeros(len(self))
        child = self.parents >= 0
        lengths[child] = np.linalg.norm(self.nodes[child] - self.nodes[self.parents[child]], axis=1)
        return lengths

    def total_length(self) -> float:
        """Total cable length (sum of edge lengths), in ``units``."""
        return float(self.edge_lengths().sum())

    def membrane_area(self) -> float:
        """Frustum (lateral) area of the neurites plus a sphere for a single-point soma,
        as NEURON's Import3d computes it (edges from the soma are inside the soma)."""
        child = np.flatnonzero(self.parents >= 0)
        parent = self.parents[child]
        neurite = self.types[parent] != SOMA
        a, b = child[neurite], parent[neurite]
        length = np.linalg.norm(self.nodes[a] - self.nodes[b], axis=1)
        ra, rb = self.radii[a], self.radii[b]
        area = float(np.sum(np.pi * (ra + rb) * np.sqrt(length**2 + (ra - rb) ** 2)))
        soma = np.flatnonzero(self.types == SOMA)
        if len(soma) == 1:
            area += 4.0 * np.pi * float(self.radii[soma[0]]) ** 2
        return area

    # -- transforms

    def to_units(self, units: str) -> "Skeleton":
        """The same skeleton with positions and radii in ``units``."""
        target = normalize_units(units)
        if self.units is None:
            raise UnitsError(f"the skeleton's units are unknown, so it cannot be converted to {target}")
        if target == self.units:
            return self
        factor = conversion_factor(self.units, target)
        return replace(self, nodes=self.nodes * factor, radii=self.radii * factor, units=target,
                       metadata=dict(self.metadata))

    def topological_order(self) -> np.ndarray:
        """Node indices, root first, every parent before its children (depth first, so each
        unbranched section's nodes are consecutive)."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import depth_first_order

        n = len(self)
        root = self.root
        child = np.flatnonzero(self.parents >= 0)
        graph = csr_matrix((np.ones(len(child), dtype=np.int8), (self.parents[child], child)), shape=(n, n))
        order = depth_first_order(graph, root, directed=True, return_predecessors=False)
        if len(order) != n:
            raise InvalidSkeletonError(
                f"{n - len(order)} of {n} skeleton nodes are not connected to the root (a cycle or a second tree)"
            )
        return order

    def sorted(self) -> "Skeleton":
        """A copy in topological order: node 0 is the root and parents[i] < i for every other node."""
        order = self.topological_order()
        if np.array_equal(order, np.arange(len(self))):
            return self
        rank = np.empty(len(self), dtype=np.int64)
        rank[order] = np.arange(len(self))
        parents = self.parents[order]
        parents = np.where(parents >= 0, rank[np.maximum(parents, 0)], -1)
        return replace(self, nodes=self.nodes[order], parents=parents, radii=self.radii[order],
                       types=self.types[order], metadata=dict(self.metadata))

    # -- checks

    def validate(self) -> "Skeleton":
        """Raise InvalidSkeletonError unless this is one tree with finite positions, finite
        positive radii, standard types (soma only at the root) and known units."""
        n = len(self)
        if n == 0:
            raise InvalidSkeletonError("the skeleton is empty")
        for name, arr in (("parents", self.parents), ("radii", self.radii), ("types", self.types)):
            if len(arr) != n:
                raise InvalidSkeletonError(f"skeleton {name} has {len(arr)} entries for {n} nodes")
        if self.units is None:
            raise UnitsError("the skeleton's units are unknown; morphologies must state them")
        if not np.isfinite(self.nodes).all():
            raise InvalidSkeletonError("the skeleton has NaN or infinite node positions")
        bad = ~(np.isfinite(self.radii) & (self.radii > 0))
        if bad.any():
            raise InvalidSkeletonError(f"{int(bad.sum())} skeleton nodes have a zero, negative or NaN radius")
        if (self.parents >= n).any() or (self.parents < -1).any():
            raise InvalidSkeletonError("skeleton parent indices are out of range")
        if (self.parents == np.arange(n)).any():
            raise InvalidSkeletonError("a skeleton node is its own parent")
        root = self.root
        self.topological_order()  # every node reachable from the root: no cycles, no second tree
        if self.types[root] != SOMA:
            raise InvalidSkeletonError(f"the root node has type {int(self.types[root])}, not 1 (soma)")
        others = np.delete(self.types, root)
        if not np.isin(others, _NEURITE_TYPES).all():
            bad_types = sorted(set(np.unique(others).tolist()) - set(_NEURITE_TYPES))
            raise InvalidSkeletonError(
                f"skeleton node types {bad_types} are not axon/basal/apical (2/3/4); only the root is soma (1)"
            )
        return self


def output_units(units: str | None, allow_units: bool = False, format_name: str = "this format") -> str:
    """The units to write a morphology in: micrometres unless explicitly allowed otherwise."""
    target = normalize_units(units) if units else "um"
    if target != "um":
        if not allow_units:
            raise UnitsError(
                f"{format_name} files are read as micrometres by NEURON and other tools; writing {target} "
                "needs an explicit --allow-units"
            )
        warnings.warn(f"writing a {format_name} morphology in {target}, not micrometres: "
                      "NEURON will read the numbers as micrometres", SkeletonUnitsWarning, stacklevel=3)
    return target


def as_skeleton_for_writing(skeleton: Skeleton, units: str | None, allow_units: bool, format_name: str) -> Skeleton:
    """Validated, converted to the output units and topologically sorted."""
    if not isinstance(skeleton, Skeleton):
        raise InvalidArgumentError(f"{format_name} writes a Skeleton (see mesh_export.skeleton.skeletonize), "
                                   f"not a {type(skeleton).__name__}")
    target = output_units(units, allow_units, format_name)
    skeleton.validate()
    return skeleton.to_units(target).sorted()


def read_swc(path) -> Skeleton:
    """An SWC file as a Skeleton in micrometres (the format's convention), node order kept.

    Read as found, not validated: ``info`` and ``preview`` describe files with several
    roots or odd types too. Ids need not be contiguous; a parent id that names no node is
    an error.
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    rows = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                fields = line.split()
                if len(fields) < 7:
                    raise InputError(f"{path}:{number}: an SWC line needs 7 fields "
                                     "(id type x y z radius parent)")
                rows.append([float(v) for v in fields[:7]])
    except ValueError as exc:
        raise InputError(f"cannot read {path} as SWC: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows:
        raise InputError(f"{path} holds no SWC nodes")
    data = np.asarray(rows)
    ids = data[:, 0].astype(np.int64)
    parent_ids = data[:, 6].astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise InputError(f"{path}: node ids are not unique")
    order = np.argsort(ids)
    position = np.minimum(np.searchsorted(ids[order], parent_ids), len(ids) - 1)
    found = ids[order][position] == parent_ids
    parents = np.where(found, order[position], -1)
    dangling = (~found) & (parent_ids >= 0)
    if dangling.any():
        raise InputError(f"{path}: {int(dangling.sum())} nodes name a parent id that does not exist")
    return Skeleton(nodes=data[:, 2:5], parents=parents, radii=data[:, 5], types=data[:, 1].astype(np.int64),
                    units="um", metadata={"source": {"file": str(path)}})


# ---------------------------------------------------------------------- skeletonization


def _unique_edges(faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = faces[:, [0, 1, 2]].reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    lo = np.minimum(a, b).astype(np.int64)
    hi = np.maximum(a, b).astype(np.int64)
    keep = lo != hi
    keys = np.unique(lo[keep] * n + hi[keep])
    return keys // n, keys % n


def _graph(n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray):
    from scipy.sparse import csr_matrix

    return csr_matrix((w, (u, v)), shape=(n, n))


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _heal_edges(vertices, labels, piece_area, main, max_gap):
    """Gap edges joining every piece to the tree of pieces (Kruskal over candidate links:
    each piece's nearest vertex in another piece, and in the main piece)."""
    from scipy.spatial import cKDTree

    pieces = np.flatnonzero(piece_area > 0)
    others = pieces[pieces != main]
    if len(others) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), []
    if piece_area[main] <= 0:
        raise SkeletonizeError("the soma's piece of the mesh has no area")
    in_other = np.isin(labels, others)
    idx_other = np.flatnonzero(in_other)
    idx_live = np.flatnonzero(np.isin(labels, pieces))
    candidates = []  # (distance, vertex a, vertex b)

    def best_per_piece(dist, src, dst):
        order = np.lexsort((dist, labels[src]))
        first = np.ones(len(order), dtype=bool)
        first[1:] = labels[src][order][1:] != labels[src][order][:-1]
        pick = order[first]
        candidates.append(np.column_stack([dist[pick], src[pick], dst[pick]]))

    # Nearest vertex of the main piece: guarantees every piece has a link.
    main_idx = np.flatnonzero(labels == main)
    dist, near = cKDTree(vertices[main_idx]).query(vertices[idx_other])
    best_per_piece(dist, idx_other, main_idx[near])
    # Nearest vertex in any other piece, among the k nearest: chains of broken pieces.
    k = min(16, len(idx_live))
    dist, near = cKDTree(vertices[idx_live]).query(vertices[idx_other], k=k)
    near = idx_live[near]
    foreign = labels[near] != labels[idx_other][:, None]
    has = foreign.any(axis=1)
    first = np.argmax(foreign, axis=1)
    rows = np.flatnonzero(has)
    best_per_piece(dist[rows, first[rows]], idx_other[rows], near[rows, first[rows]])

    links = np.concatenate(candidates)
    links = links[np.argsort(links[:, 0], kind="stable")]
    uf = np.arange(len(piece_area))
    chosen, dropped = [], []
    for d, a, b in links:
        if max_gap is not None and d > max_gap:
            break
        ra, rb = _find(uf, labels[int(a)]), _find(uf, labels[int(b)])
        if ra != rb:
            uf[ra] = rb
            chosen.append((int(a), int(b), d))
    root_main = _find(uf, main)
    dropped = [int(p) for p in others if _find(uf, p) != root_main]
    if not chosen:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), dropped
    chosen = np.array(chosen)
    return chosen[:, :2].astype(np.int64), chosen[:, 2], dropped


def _rings(vertices, vertex_area, eu, ev, dist, step, sources):
    """Label every reached vertex with its ring (connected piece of one distance band).
    Returns labels (-1 unreached; sources get 0), the number of rings."""
    from scipy.sparse.csgraph import connected_components

    n = len(vertices)
    reached = np.isfinite(dist)
    band = np.full(n, -2, dtype=np.int64)
    band[reached] = np.floor(dist[reached] / step).astype(np.int64)
    band[sources] = -1
    same = (band[eu] == band[ev]) & (band[eu] != -2)
    g = _graph(n, eu[same], ev[same], np.ones(int(same.sum()), dtype=np.int8))
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


def _ring_stats(vertices, vertex_area, labels, count):
    live = labels >= 0
    lab = labels[live]
    w = vertex_area[live]
    area = np.bincount(lab, weights=w, minlength=count)
    safe = np.where(area > 0, area, 1.0)
    cnt = np.bincount(lab, minlength=count).astype(np.float64)
    centroid = np.empty((count, 3))
    for c in range(3):
        weighted = np.bincount(lab, weights=w * vertices[live, c], minlength=count) / safe
        plain = np.bincount(lab, weights=vertices[live, c], minlength=count) / np.maximum(cnt, 1)
        centroid[:, c] = np.where(area > 0, weighted, plain)
    return centroid, area


def _surface_tree(vertices, faces):
    from scipy.spatial import cKDTree

    centres = vertices[faces].mean(axis=1)
    return cKDTree(np.concatenate([vertices, centres]))


def _detect_soma(vertices, normals, labels, count, centroid, surface_tree):
    """Centre and inscribed radius of the thickest cross-section: the ring centroid farthest
    from the surface among rings whose vertices surround it (normals pointing away)."""
    dist, _ = surface_tree.query(centroid)
    live = labels >= 0
    lab = labels[live]
    offset = vertices[live] - centroid[lab]
    norm = np.linalg.norm(offset, axis=1)
    norm[norm == 0] = 1.0
    radial = np.einsum("ij,ij->i", offset, normals[live]) / norm
    cnt = np.maximum(np.bincount(lab, minlength=count), 1)
    coherence = np.abs(np.bincount(lab, weights=radial, minlength=count) / cnt)
    score = np.where((coherence > 0.5) & (np.bincount(lab, minlength=count) >= 4), dist, -1.0)
    best = int(np.argmax(score))
    if score[best] <= 0:
        best = int(np.argmax(dist))
    return centroid[best], float(dist[best])


def _vertex_normals(vertices, faces, face_cross):
    normals = np.zeros_like(vertices)
    flat = faces.reshape(-1)
    for c in range(3):
        normals[:, c] = np.bincount(flat, weights=np.repeat(face_cross[:, c], 3), minlength=len(vertices))
    length = np.linalg.norm(normals, axis=1)
    length[length == 0] = 1.0
    return normals / length[:, None]


def skeletonize(
    mesh,
    *,
    soma: Sequence[float] | None = None,
    soma_units: str = "nm",
    heal: bool = True,
    largest_component: bool = False,
    max_gap: float | None = None,
    step: float | None = None,
    min_radius: float = 0.05,
    radius_units: str = "um",
) -> Skeleton:
    """Turn a surface mesh (``trimesh.Trimesh`` with known ``units``) into one tree rooted at the soma.

    soma: soma centre in ``soma_units`` (nanometres by default, as ``--soma X,Y,Z``);
        detected as the point of largest inscribed radius when not given.
    heal: join disconnected pieces to the tree across their gaps (default); with
        ``largest_component=True`` every piece but the largest is dropped instead.
    max_gap: pieces farther than this (mesh units) from the rest are dropped, not healed.
    step: width of the wavefront bands (node spacing), mesh units; default 2.5 median edge
        lengths, at least 1 um.
    min_radius: radius floor, in ``radius_units`` (default 0.05 um).
    """
    from scipy.sparse.csgraph import connected_components, dijkstra

    from . import __version__
    from .validate import check_surface

    check_surface(mesh)
    units = getattr(mesh, "units", None)
    if units is None:
        raise UnitsError("the mesh's units are unknown; a skeleton needs them (NEURON reads micrometres): "
                         "declare them with --units-in")
    units = normalize_units(units)
    to_um = conversion_factor(units, "um")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    n = len(vertices)

    cross = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    face_area = 0.5 * np.linalg.norm(cross, axis=1)
    total_area = float(face_area.sum())
    vertex_area = np.bincount(faces.reshape(-1), weights=np.repeat(face_area / 3.0, 3), minlength=n)
    used = vertex_area > 0
    if not used.any():
        raise SkeletonizeError("the mesh has no surface area (every face is degenerate): no morphology to make")
    centred = vertices[used] - vertices[used].mean(axis=0)
    sing = np.linalg.svd(centred[:: max(1, len(centred) // 200000)], compute_uv=False)
    if sing[-1] <= 1e-6 * sing[0]:
        raise SkeletonizeError("the mesh is flat (it encloses no volume): a morphology needs a 3-D surface")

    eu, ev = _unique_edges(faces, n)
    length = np.linalg.norm(vertices[eu] - vertices[ev], axis=1)
    median_edge = float(np.median(length)) if len(length) else 0.0
    if step is None:
        step = max(2.5 * median_edge, 1.0 / to_um)
    step = float(step)
    if not (step > 0 and math.isfinite(step)):
        raise InvalidArgumentError(f"step must be a positive length, got {step}")
    weight = np.maximum(length, 1e-9 * max(median_edge, 1e-30))

    # Pieces. "Solid" pieces (at least 2% of the area) define the surface for inscribed
    # radii: tiny ones are often debris inside the cell body.
    ncomp, comp = connected_components(_graph(n, eu, ev, weight), directed=False)
    piece_area = np.bincount(comp, weights=vertex_area, minlength=ncomp)
    largest = int(np.argmax(piece_area))
    drop_others = largest_component or not heal
    solid_piece = piece_area >= 0.02 * total_area
    if drop_others:
        solid_piece[:] = False
        solid_piece[largest] = True
    solid = solid_piece[comp] & used
    surface_tree = _surface_tree(vertices, faces[solid[faces[:, 0]]])
    normals = _vertex_normals(vertices, faces, cross)

    def joined(main, exclude=()):
        """Edges of the kept pieces, plus gap edges joining them (healing)."""
        area = piece_area.copy()
        area[list(exclude)] = 0
        if drop_others:
            keep = comp[eu] == main
            return eu[keep], ev[keep], weight[keep], 0, [int(p) for p in np.flatnonzero(area > 0) if p != main]
        pairs, gaps, unreached = _heal_edges(vertices, comp, area, main, max_gap)
        keep = ~np.isin(comp[eu], list(exclude)) if len(exclude) else np.ones(len(eu), dtype=bool)
        return (np.concatenate([eu[keep], pairs[:, 0]]), np.concatenate([ev[keep], pairs[:, 1]]),
                np.concatenate([weight[keep], np.maximum(gaps, weight.min())]), len(pairs), unreached)

    # Soma: given, or the thickest cross-section of a first wavefront, started from an
    # extremity so that its bands cut the soma across.
    soma_point = None
    if soma is not None:
        soma_point = np.asarray(soma, dtype=np.float64).reshape(-1)
        if soma_point.shape != (3,) or not np.isfinite(soma_point).all():
            raise InvalidArgumentError(f"soma must be three finite coordinates X,Y,Z, got {soma!r}")
        soma_point = soma_point * conversion_factor(soma_units, units)
        soma_r = float(surface_tree.query(soma_point)[0])
    else:
        feu, fev, fw, _, _ = joined(largest)
        reach = np.flatnonzero(solid)
        centre = (vertices[reach] * vertex_area[reach, None]).sum(axis=0) / vertex_area[reach].sum()
        start = reach[int(np.argmax(np.linalg.norm(vertices[reach] - centre, axis=1)))]
        dist0 = dijkstra(_graph(n, feu, fev, fw), directed=False, indices=int(start))
        labels0, count0 = _rings(vertices, vertex_area, feu, fev, dist0, step, np.array([start]))
        centroid0, _ = _ring_stats(vertices, vertex_area, labels0, count0)
        soma_point, soma_r = _detect_soma(vertices, normals, labels0, count0, centroid0, surface_tree)
    extent = float(np.linalg.norm(vertices[used].max(axis=0) - vertices[used].min(axis=0)))
    if not soma_r > 1e-6 * extent:
        raise SkeletonizeError("the mesh encloses no volume around the soma (zero inscribed radius)")
    solid_idx = np.flatnonzero(solid)
    main = int(comp[solid_idx[int(np.argmin(np.linalg.norm(vertices[solid_idx] - soma_point, axis=1)))]])
    in_main = comp == main

    # Other pieces: those wholly inside the soma (debris, nucleus) are dropped; the rest
    # healed across their gaps, or dropped with largest_component.
    far = np.linalg.norm(vertices - soma_point, axis=1) > 1.5 * soma_r
    piece_outside = np.bincount(comp, weights=(far & used).astype(np.float64), minlength=ncomp) > 0
    internal = [int(p) for p in np.flatnonzero((piece_area > 0) & ~piece_outside) if p != main]
    eu, ev, weight, healed, unreached = joined(main, internal)
    dropped = sorted(set(internal) | set(unreached))
    graph = _graph(n, eu, ev, weight)
    kept_area = float(piece_area.sum() - piece_area[dropped].sum())

    # Soma region: vertices of the soma's piece within 2 inscribed radii of the centre, in
    # the soma's own patch; they are the wavefront's sources and the soma node's area.
    candidates = np.flatnonzero(used & in_main)
    near_soma = np.linalg.norm(vertices[candidates] - soma_point, axis=1)
    ball = candidates[near_soma <= 2.0 * soma_r]
    if len(ball) == 0:
        ball = candidates[[int(np.argmin(near_soma))]]
    inside = np.zeros(n, dtype=bool)
    inside[ball] = True
    both = inside[eu] & inside[ev]
    _, patch = connected_components(_graph(n, eu[both], ev[both], np.ones(int(both.sum()), np.int8)), directed=False)
    seed = ball[int(np.argmin(np.linalg.norm(vertices[ball] - soma_point, axis=1)))]
    sources = ball[patch[ball] == patch[seed]]

    # Wavefront from the soma.
    dist, pred, _ = dijkstra(graph, directed=False, indices=sources, min_only=True, return_predecessors=True)
    labels, count = _rings(vertices, vertex_area, eu, ev, dist, step, sources)
    centroid, ring_area = _ring_stats(vertices, vertex_area, labels, count)
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
    soma_area = float(ring_area[0])
    centroid[0] = soma_point

    # Tidy the tree: fold one-node spurs and leaves on the soma into their parent (area kept),
    # merge nodes that coincide with their parent.
    alive = np.ones(count, dtype=bool)
    for _ in range(3):
        kids = np.bincount(parents[alive & (parents >= 0)], minlength=count)
        leaf = alive & (kids == 0) & (parents >= 0)
        par = np.maximum(parents, 0)
        gap = np.linalg.norm(centroid - centroid[par], axis=1)
        spur = leaf & ((kids[par] > 1) & (gap < 1.5 * step) | (par == 0))
        spur &= parents >= 0
        if not spur.any():
            break
        ring_area += np.bincount(parents[spur], weights=ring_area[spur], minlength=count)
        ring_area[spur] = 0
        alive &= ~spur
    tiny = 1e-6 * step
    par = np.maximum(parents, 0)
    same = alive & (parents > 0) & (np.linalg.norm(centroid - centroid[par], axis=1) < tiny)
    if same.any():
        target = np.arange(count)
        target[same] = parents[same]
        for _ in range(64):  # follow chains of coincident nodes
            nxt = target[target]
            if np.array_equal(nxt, target):
                break
            target = nxt
        ring_area += np.bincount(target[same], weights=ring_area[same], minlength=count)
        alive &= ~same
        parents = np.where(parents >= 0, target[np.maximum(parents, 0)], -1)

    # Compact.
    keep = np.flatnonzero(alive)
    newid = np.full(count, -1, dtype=np.int64)
    newid[keep] = np.arange(len(keep))
    nodes = centroid[keep]
    parents = np.where(parents[keep] >= 0, newid[np.maximum(parents[keep], 0)], -1)
    area = ring_area[keep]
    ring_of = newid[np.where(labels >= 0, labels, 0)]
    ring_of[labels < 0] = -1
    m = len(nodes)
    soma_area = float(area[0])

    # A soma child that branches at once or ends would make a zero-length first section:
    # give it a first point on the soma surface.
    kids = np.bincount(parents[parents >= 0], minlength=m)
    needs = np.flatnonzero((parents == 0) & (kids != 1))
    soma_radius = float(np.clip(math.sqrt(max(soma_area, 0.0) / (4 * math.pi)), soma_r, 2.0 * soma_r))
    if len(needs):
        offset = nodes[needs] - nodes[0]
        gap = np.linalg.norm(offset, axis=1)
        frac = np.where(gap > 1.1 * soma_radius, soma_radius / np.maximum(gap, 1e-300), 0.5)
        extra = nodes[0] + offset * frac[:, None]
        base = len(nodes)
        nodes = np.concatenate([nodes, extra])
        parents = np.concatenate([parents, np.zeros(len(needs), dtype=np.int64)])
        parents[needs] = base + np.arange(len(needs))
        area = np.concatenate([area, np.zeros(len(needs))])
        m = len(nodes)

    # Radii: area over (2 pi x cable length represented), held near the ring's axis distance.
    child = np.flatnonzero(parents >= 0)
    par = parents[child]
    seg = np.linalg.norm(nodes[child] - nodes[par], axis=1)
    counted = par != 0  # NEURON does not count edges from the soma centre
    half = np.bincount(child[counted], weights=0.5 * seg[counted], minlength=m)
    half += np.bincount(par[counted], weights=0.5 * seg[counted], minlength=m)
    # Axis direction per node: towards the parent (soma children: away from the soma).
    direction = np.zeros((m, 3))
    direction[child] = nodes[child] - nodes[par]
    dnorm = np.linalg.norm(direction, axis=1)
    dnorm[dnorm == 0] = 1.0
    direction /= dnorm[:, None]
    rv = np.flatnonzero(ring_of >= 0)
    lab = ring_of[rv]
    off = vertices[rv] - nodes[lab]
    along = np.einsum("ij,ij->i", off, direction[lab])
    perp = np.sqrt(np.maximum(np.einsum("ij,ij->i", off, off) - along**2, 0.0))
    wsum = np.bincount(lab, weights=vertex_area[rv], minlength=m)
    axis_r = np.bincount(lab, weights=perp * vertex_area[rv], minlength=m) / np.maximum(wsum, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        area_r = area / (2 * math.pi * half)
    radii = np.where(np.isfinite(area_r) & (area_r > 0), area_r, axis_r)
    has_axis = axis_r > 0
    radii = np.where(has_axis, np.clip(radii, 0.5 * axis_r, 2.0 * axis_r), radii)
    # Nodes with nothing measured (the inserted soma-surface points): their child's radius.
    empty = ~(radii > 0) | ~np.isfinite(radii)
    if len(needs):
        inserted = np.arange(m - len(needs), m)
        radii[inserted] = np.nan
        empty[inserted] = True
        for _ in range(2):
            kid_r = np.full(m, np.nan)
            kid_r[parents[child]] = radii[child]
            fill = empty & np.isfinite(kid_r)
            radii[fill] = kid_r[fill]
    floor = min_radius * conversion_factor(radius_units, units)
    radii = np.where(np.isfinite(radii), radii, floor)
    radii = np.clip(radii, floor, max(2.0 * soma_radius, floor))
    radii[0] = soma_radius

    types = np.full(m, BASAL, dtype=np.int64)
    types[0] = SOMA
    metadata = {k: v for k, v in getattr(mesh, "metadata", {}).items() if k not in ("units", "steps")}
    metadata["steps"] = [*getattr(mesh, "metadata", {}).get("steps", []), {
        "step": "skeletonize",
        "tool": f"mesh-export {__version__}",
        "method": "wavefront",
        "step_length": step,
        "heal": bool(heal and not largest_component),
        "healed_gaps": healed,
        "dropped_pieces": len(dropped),
        "soma": [float(x) for x in soma_point],
        "soma_given": soma is not None,
        "soma_radius": soma_radius,
        "min_radius": floor,
        "units": units,
    }]
    metadata["mesh_area"] = total_area
    metadata["kept_area"] = kept_area
    skeleton = Skeleton(nodes, parents, radii, types, units, metadata).sorted()
    return skeleton.validate()
