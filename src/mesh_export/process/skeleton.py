"""Morphologies: the ``Skeleton`` type and ``skeletonize(mesh)``, a surface mesh -> one tree.

NEURON simulates cables, not surfaces. ``skeletonize`` turns a neuron's surface mesh into a
tree rooted at the soma whose membrane area, as NEURON computes it from frustums, matches
the mesh's surface area:

1. Pieces: the mesh's connected pieces are joined into one graph by a minimum spanning tree
   over their gaps (fragment to fragment), or all but the largest dropped; pieces wholly
   inside the soma (debris, a nucleus) are dropped.
2. Soma: a point in the cell body (given, or the thickest cross-section of a first wavefront)
   grows the soma region (:mod:`mesh_export.process.soma`); the soma is the sphere with the region's
   surface area, its node at the region's centroid (or at the point given).
3. Wavefront: geodesic distance from the soma region over the vertex graph (Dijkstra), cut
   into bands of width ``step``; each connected piece of a band is a cross-section ("ring"),
   its area-weighted centroid a node, its parent the ring holding the Dijkstra predecessor of
   its nearest vertex (so the result is always a tree). Each neurite starts with a node where
   it leaves the soma region.
4. Spines: side branches that end within ``max_spine_length`` of their shaft's axis. The bases
   of their necks are taken out of the shaft's ring (vertices beyond 1.5 x its median axis
   distance) and given to them; each is drawn as a short branch of one radius that gives it its
   area, or, when even the thinnest branch would have more area than the spine (narrowing from
   a thick shaft's radius costs area), its area goes to its shaft, spread along it.
5. Radii: the ring's surface area over 2 pi times the cable length the node stands for,
   i.e. the perimeter-equivalent radius, kept within a factor of two of the ring's distance to
   the local axis and floored at ``min_radius``. Frustums with these radii have the rings'
   area, so the model's membrane area follows the mesh's. A healed gap longer than two steps
   (a decimated axon can lose whole stretches) is a wire of the minimum radius.

Pure numpy/scipy (no GPL code). Coordinates stay in the mesh's units; writers convert to the
format's units (micrometres for SWC, hoc and NeuroML).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from mesh_export.errors import InvalidArgumentError, UnitsError
from mesh_export.core.units import conversion_factor, normalize_units
from mesh_export.core.validate import check_surface
from mesh_export.model import SKELETON, SURFACE, kind_of
from mesh_export.process.healing import heal_edges
from mesh_export.process.radii import weighted_median
from mesh_export.process.soma_point import enclosing_piece, thickest_cross_section
from mesh_export.process.spines import spine_radius, subtree_extent
from mesh_export.process.surface_graph import edge_graph, sum_at, surface_measures, surface_samples, unique_edges
from mesh_export.process.tree_assembly import GrowingTree, merge_coincident
from mesh_export.process.wavefront import label_rings, ring_stats

# The public names of morphologies: the type, its constants, the SWC reader and the errors
# live in the model and errors (writers need them, and sit below process); re-exported here
# so that `from mesh_export.process.skeleton import Skeleton` works.
from mesh_export.errors import InvalidSkeletonError, SkeletonizeError
from mesh_export.model import APICAL, AXON, BASAL, SOMA, Skeleton, SkeletonUnitsWarning, output_units, read_swc

__all__ = [
    "Skeleton",
    "skeletonize",
    "skeleton_for_writer",
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


def skeleton_for_writer(data, writer):
    """``data`` as ``writer`` takes it: a surface mesh given to a skeleton-only format (swc,
    hoc, neuroml) is skeletonized with the default settings; anything else is passed on."""
    if (SKELETON in writer.accepts and SURFACE not in writer.accepts
            and kind_of(data) == SURFACE):
        check_surface(data)
        return skeletonize(data)
    return data


def skeletonize(
    mesh,
    *,
    soma: Sequence[float] | None = None,
    soma_units: str = "nm",
    soma_note: str | None = None,
    soma_seed_only: bool = False,
    heal: bool = True,
    largest_component: bool = False,
    max_gap: float | None = None,
    step: float | None = None,
    min_radius: float = 0.05,
    radius_units: str = "um",
    spines: bool = True,
    max_spine_length: float = 3.0,
) -> Skeleton:
    """Turn a surface mesh (``trimesh.Trimesh`` with known ``units``) into one tree rooted at the soma.

    soma: a point in the cell body in ``soma_units`` (nanometres by default, as ``--soma X,Y,Z``);
        the soma node is put there. Detected (the thickest cross-section) when not given. Either
        way the soma region grown around it gives the soma's area and radius.
        "auto" or "mesh" (as ``--soma``) also mean: detect it.
    soma_note: where the soma point came from (recorded in the metadata and header).
    soma_seed_only: the point only seeds the soma region (a nucleus position): the soma node
        goes to the region's centroid, not to the point.
    heal: join disconnected pieces to the tree across their gaps (default); with
        ``largest_component=True`` every piece but the largest is dropped instead.
    max_gap: pieces farther than this (mesh units) from the rest are dropped, not healed
        (default: heal across any gap).
    step: width of the wavefront bands (node spacing), mesh units; default 2.5 median edge
        lengths or 1.2 times the 90th-percentile edge length, whichever is longer, at least 1 um.
    min_radius: radius floor, in ``radius_units`` (default 0.05 um).
    spines: draw short side protrusions (at most ``max_spine_length`` um from their shaft's
        axis) as short branches of their own area, keeping their shaft's radius; those too small
        to draw with their area give it to their shaft. ``False``: every such protrusion's
        area goes to its shaft.
    """
    from scipy.sparse.csgraph import connected_components, dijkstra
    from scipy.spatial import cKDTree

    from mesh_export._version import __version__
    from mesh_export.process.soma import soma_region

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

    face_area, vertex_area, normals = surface_measures(vertices, faces)
    total_area = float(face_area.sum())
    used = vertex_area > 0
    if not used.any():
        raise SkeletonizeError("the mesh has no surface area (every face is degenerate): no morphology to make")
    some = np.flatnonzero(used)
    some = vertices[some[:: max(1, len(some) // 200000)]]
    sing = np.linalg.svd(some - some.mean(axis=0), compute_uv=False)
    if sing[-1] <= 1e-6 * sing[0]:
        raise SkeletonizeError("the mesh is flat (it encloses no volume): a morphology needs a 3-D surface")

    eu, ev = unique_edges(faces, n)
    length = np.linalg.norm(vertices[eu] - vertices[ev], axis=1)
    median_edge, long_edge = (float(x) for x in np.percentile(length, [50, 90])) if len(length) else (0.0, 0.0)
    if step is None:
        # A band must be wider than most edges that cross it, or its ring falls apart into
        # pieces that pass for side branches (a decimated cell's apical trunk read 0.44 x its
        # radius at 1 um bands, 0.63 x at 1.2 x the 90th-percentile edge; well-resolved cells,
        # whose bands are already wider than that, are unchanged).
        step = max(2.5 * median_edge, 1.2 * long_edge, 1.0 / to_um)
    step = float(step)
    if not (step > 0 and math.isfinite(step)):
        raise InvalidArgumentError(f"step must be a positive length, got {step}")
    max_gap = math.inf if max_gap is None else float(max_gap)
    if not max_gap > 0:
        raise InvalidArgumentError(f"max_gap must be a positive length, got {max_gap}")
    weight = np.maximum(length, 1e-9 * max(median_edge, 1e-30), out=length)
    del length

    # Pieces. "Solid" pieces (at least 2% of the area) define the surface for inscribed
    # radii: tiny ones are often debris inside the cell body.
    ncomp, comp = connected_components(edge_graph(n, eu, ev, weight), directed=False)
    piece_area = sum_at(comp, vertex_area, ncomp)
    largest = int(np.argmax(piece_area))
    drop_others = largest_component or not heal
    solid_piece = piece_area >= 0.02 * total_area
    if drop_others:
        solid_piece[:] = False
        solid_piece[largest] = True
    solid = solid_piece[comp] & used
    on_solid = solid[faces[:, 0]]
    surface_tree = cKDTree(surface_samples(vertices, faces[on_solid], face_area[on_solid]))
    del on_solid

    def joined(main, exclude=()):
        """Edges of the kept pieces, plus gap edges joining them (healing)."""
        area = piece_area.copy()
        area[list(exclude)] = 0
        if drop_others:
            keep = comp[eu] == main
            return eu[keep], ev[keep], weight[keep], 0, [int(p) for p in np.flatnonzero(area > 0) if p != main]
        pairs, gaps, unreached = heal_edges(vertices, comp, area, main, max_gap)
        keep = ~np.isin(comp[eu], list(exclude)) if len(exclude) else np.ones(len(eu), dtype=bool)
        return (np.concatenate([eu[keep], pairs[:, 0]]), np.concatenate([ev[keep], pairs[:, 1]]),
                np.concatenate([weight[keep], np.maximum(gaps, weight.min())]), len(pairs), unreached)

    # Soma point: given, or the thickest cross-section of a first wavefront, started from an
    # extremity so that its bands cut the soma across.
    if isinstance(soma, str):
        soma = None
    if soma is not None:
        seed = np.asarray(soma, dtype=np.float64).reshape(-1)
        if seed.shape != (3,) or not np.isfinite(seed).all():
            raise InvalidArgumentError(f"soma must be three finite coordinates X,Y,Z, got {soma!r}")
        seed = seed * conversion_factor(soma_units, units)
    else:  # (the solid pieces are enough to find the cell body)
        feu, fev, fw, _, _ = joined(largest, exclude=np.flatnonzero(~solid_piece).tolist())
        reach = np.flatnonzero(solid)
        centre = (vertices[reach] * vertex_area[reach, None]).sum(axis=0) / vertex_area[reach].sum()
        start = reach[int(np.argmax(np.linalg.norm(vertices[reach] - centre, axis=1)))]
        dist0 = dijkstra(edge_graph(n, feu, fev, fw), directed=False, indices=int(start))
        labels0, count0 = label_rings(vertices, vertex_area, feu, fev, dist0, step, np.array([start]))
        centroid0, _ = ring_stats(vertices, vertex_area, labels0, count0)
        seed, _ = thickest_cross_section(vertices, normals, labels0, count0, centroid0, surface_tree, solid)
    extent = float(np.linalg.norm(vertices[used].max(axis=0) - vertices[used].min(axis=0)))
    inscribed = float(surface_tree.query(seed)[0])
    if not inscribed > 1e-6 * extent:
        raise SkeletonizeError("the mesh encloses no volume around the soma (zero inscribed radius)")
    main = enclosing_piece(vertices, normals, vertex_area, comp, solid, seed, inscribed)
    in_main = comp == main

    # Soma region: the surface around the point whose cross-sections stay soma-sized.
    region = soma_region(vertices, normals, vertex_area, eu, ev, in_main & used, seed,
                         surface_samples(vertices, faces[in_main[faces[:, 0]]], face_area[in_main[faces[:, 0]]]),
                         0.5 * median_edge)
    soma_point = seed if soma is not None and not soma_seed_only else region.centre
    soma_radius = region.radius
    if not soma_radius > 1e-6 * extent:
        raise SkeletonizeError("the mesh encloses no volume around the soma (no soma region)")

    # Other pieces: those wholly inside the soma (debris, nucleus) are dropped; the rest
    # healed across their gaps, or dropped with largest_component.
    reach_soma = max(1.5 * soma_radius, float(np.linalg.norm(vertices[region.vertices] - soma_point, axis=1).max()))
    far = np.linalg.norm(vertices - soma_point, axis=1) > reach_soma
    piece_outside = sum_at(comp, (far & used).astype(np.float64), ncomp) > 0
    internal = [int(p) for p in np.flatnonzero((piece_area > 0) & ~piece_outside) if p != main]
    eu2, ev2, weight2, healed, unreached = joined(main, internal)
    dropped = sorted(set(internal) | set(unreached))
    graph = edge_graph(n, eu2, ev2, weight2)
    kept_area = float(piece_area.sum() - piece_area[dropped].sum())
    sources = region.vertices

    # Wavefront from the soma region.
    dist, pred, _ = dijkstra(graph, directed=False, indices=sources, min_only=True, return_predecessors=True)
    labels, count = label_rings(vertices, vertex_area, eu2, ev2, dist, step, sources)
    centroid, ring_area = ring_stats(vertices, vertex_area, labels, count)
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
    centroid[0] = soma_point
    # Long healed gaps (a decimated axon can lose whole stretches): no membrane there, so they
    # become wires of the minimum radius between the vertices at either end of the gap.
    ends = np.zeros((count, 2, 3))
    wire = np.zeros(count, dtype=bool)
    crossing = has & (comp[entry] != comp[np.maximum(p, 0)])
    if crossing.any():
        near_end, far_end = vertices[entry[crossing]], vertices[p[crossing]]
        long_gap = np.linalg.norm(near_end - far_end, axis=1) > 2 * step
        rings = labels[entry[crossing]][long_gap]
        wire[rings] = True
        ends[rings, 0] = far_end[long_gap]  # the parent's side
        ends[rings, 1] = near_end[long_gap]  # the child's side
    wire[0] = False

    # Tidy the tree: leaves on the soma go into it (area kept); nodes that coincide with
    # their parent are merged into it.
    alive = np.ones(count, dtype=bool)
    for _ in range(3):
        kids = np.bincount(parents[alive & (parents >= 0)], minlength=count)
        leaf = alive & (kids == 0) & (parents == 0)
        if not leaf.any():
            break
        ring_area[0] += ring_area[leaf].sum()
        ring_area[leaf] = 0
        alive &= ~leaf
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
        ring_area += sum_at(target[same], ring_area[same], count)
        alive &= ~same
        parents = np.where(parents >= 0, target[np.maximum(parents, 0)], -1)

    # Compact, then sort (parents before children).
    keep = np.flatnonzero(alive)
    newid = np.full(count, -1, dtype=np.int64)
    newid[keep] = np.arange(len(keep))
    nodes = centroid[keep]
    parents = np.where(parents[keep] >= 0, newid[np.maximum(parents[keep], 0)], -1)
    area = ring_area[keep]
    wire, ends = wire[keep], ends[keep]
    ring_of = np.where(labels >= 0, newid[np.maximum(labels, 0)], -1)
    order_sorted = Skeleton(nodes, parents, np.ones(len(nodes)), None, units).topological_order()
    m = len(nodes)
    soma_area = float(area[0])
    soma_radius = math.sqrt(soma_area / (4 * math.pi))

    # Spines: short side branches that end within max_spine_length of their shaft's axis.
    height, size = subtree_extent(nodes, parents, order_sorted)
    kids = np.bincount(parents[parents >= 0], minlength=m)
    spine_len = max_spine_length / to_um
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
    for i in order_sorted.tolist():
        p = par_list[i]
        if p >= 0 and of[p] >= 0:
            of[i] = of[p]
            root_list[i] = False
        elif root_list[i]:
            of[i] = i
    spine_of = np.asarray(of, dtype=np.int64)
    in_spine = spine_of >= 0
    spine_root = np.asarray(root_list, dtype=bool)

    # Exits: where each neurite leaves the soma region, the centroid of its first ring's
    # vertices next to the region.
    stem = np.flatnonzero(parents == 0)
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

    # Cable length each shaft node stands for: half of each shaft edge (not edges from the
    # soma centre, not spine edges), the whole edge from a soma exit (which has no area).
    child = np.flatnonzero(parents >= 0)
    par = parents[child]
    seg = np.linalg.norm(nodes[child] - nodes[par], axis=1)
    counted = (par != 0) & ~in_spine[child] & ~wire[child]
    half = sum_at(child[counted], 0.5 * seg[counted], m)
    half += sum_at(par[counted], 0.5 * seg[counted], m)
    half += exit_len
    # Axis per node: from its parent towards its shaft children (or from the parent).
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

    # Spine necks inside shaft rings: the vertices of a ring with spines on it that lie beyond
    # 1.5 x its median axis distance are the necks' bases, and belong to the nearest of its spines.
    floor = min_radius * conversion_factor(radius_units, units)
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

    # Shaft radii: area over (2 pi x cable length), held near the ring's axis distance.
    with np.errstate(divide="ignore", invalid="ignore"):
        area_r = shaft_area / (2 * math.pi * half)
    radii = np.where(np.isfinite(area_r) & (area_r > 0), area_r, axis_r)
    radii = np.where(axis_r > 0, np.clip(radii, 0.5 * axis_r, 2.0 * axis_r), radii)
    radii = np.where(np.isfinite(radii), radii, floor)
    radii = np.maximum(radii, floor)
    radii[0] = soma_radius

    # Spine branches: a node just inside the shaft, then the spine's ring nodes, one uniform
    # radius giving the spine its area. Spines that cannot be drawn with their area (narrowing
    # from the shaft's radius at their base already costs more) give it to their shaft.
    drawn = np.zeros(m, dtype=bool)
    folded_area = 0.0
    base_nodes = np.zeros((0, 3))
    base_parent = np.zeros(0, dtype=np.int64)
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
        base_parent = parents[b]
        base_child = b
    gone = in_spine & ~drawn[np.maximum(spine_of, 0)]

    # Assemble: exits between the soma and its neurites, bases between shafts and spines, the
    # two ends of each wire across a long gap. Dropped spines go.
    ex = np.flatnonzero(has_exit & ~gone)
    wires = np.flatnonzero(wire & ~gone)
    tree = GrowingTree(nodes, parents, radii)
    tree.insert(ex, exits[ex], radii[ex])
    tree.insert(base_child, base_nodes, radii[base_child])
    child_end = tree.insert(wires, ends[wires, 1], np.full(len(wires), floor))
    tree.insert(child_end, ends[wires, 0], np.full(len(wires), floor))
    wire_length = float(np.linalg.norm(ends[wires, 1] - ends[wires, 0], axis=1).sum())
    alive = np.concatenate([~gone, np.ones(len(tree.nodes) - m, dtype=bool)])
    alive[0] = True
    nodes, parents, radii = tree.compact(alive)
    m = len(nodes)

    # A soma child that branches at once or ends would make a zero-length first section:
    # give it a first point on the soma's surface.
    kids = np.bincount(parents[parents >= 0], minlength=m)
    needs = np.flatnonzero((parents == 0) & (kids != 1))
    if len(needs):
        offset = nodes[needs] - nodes[0]
        gap = np.linalg.norm(offset, axis=1)
        frac = np.where(gap > 1.1 * soma_radius, soma_radius / np.maximum(gap, 1e-300), 0.5)
        extra = nodes[0] + offset * frac[:, None]
        base = len(nodes)
        nodes = np.concatenate([nodes, extra])
        parents = np.concatenate([parents, np.zeros(len(needs), dtype=np.int64)])
        parents[needs] = base + np.arange(len(needs))
        radii = np.concatenate([radii, radii[needs]])
        m = len(nodes)
    nodes, parents, radii = merge_coincident(nodes, parents, radii, max(1.0 / to_um * 1e-3, 1e-6 * step))
    m = len(nodes)

    types = np.full(m, BASAL, dtype=np.int64)
    types[0] = SOMA
    spine_count = int(len(roots))
    drawn_count = int(drawn[roots].sum()) if len(roots) else 0
    metadata = {k: v for k, v in getattr(mesh, "metadata", {}).items() if k not in ("units", "steps")}
    metadata["steps"] = [*getattr(mesh, "metadata", {}).get("steps", []), {
        "step": "skeletonize",
        "tool": f"mesh-export {__version__}",
        "method": "wavefront",
        "step_length": step,
        "heal": bool(heal and not largest_component),
        "healed_gaps": healed,
        "wires": {"count": int(len(wires)), "length": wire_length},
        "dropped_pieces": len(dropped),
        "dropped_area": float(piece_area[dropped].sum()) if dropped else 0.0,
        "max_gap": max_gap if math.isfinite(max_gap) else None,
        "soma": [float(x) for x in soma_point],
        "soma_given": soma is not None,
        "soma_source": soma_note or ("given" if soma is not None else "mesh"),
        "soma_radius": soma_radius,
        "soma_area": soma_area,
        "soma_region_vertices": int(len(region.vertices)),
        "spines": {"found": spine_count, "drawn": drawn_count, "folded": spine_count - drawn_count,
                   "folded_area": folded_area},
        "min_radius": floor,
        "units": units,
        "compartments": {"method": "none", "axon": False,
                         "reason": "no synapses given (mesh_export.process.compartments.split_axon types the axon)"},
    }]
    metadata["mesh_area"] = total_area
    metadata["kept_area"] = kept_area
    skeleton = Skeleton(nodes, parents, radii, types, units, metadata).sorted()
    return skeleton.validate()
