"""Morphologies: the ``Skeleton`` type and ``skeletonize(mesh)``, a surface mesh -> one tree.

NEURON simulates cables, not surfaces. ``skeletonize`` turns a neuron's surface mesh into a
tree rooted at the soma whose membrane area, as NEURON computes it from frustums, matches
the mesh's surface area:

0. Surface: a mesh far finer than the bands (median edge under 0.075 um) is worked on as its
   vertices clustered on a 0.1 um grid, each cluster carrying its vertices' area and normal, so
   areas stay the mesh's (:mod:`mesh_export.process.skeleton_surface`); others as they are.
   Set aside: surfaces that nothing outside the cell sees (a nucleus envelope inside the cell
   body, separate or joined to the membrane by non-manifold edges; sheets across it: cutout or
   chunk walls, self-contacts) are not membrane (:mod:`mesh_export.process.enclosed`); they are
   taken out before anything else is measured (a clustered vertex keeps the share of its carried
   area that is not set aside), and their count and area recorded.
1. Pieces: the mesh's connected pieces are joined into one graph by a minimum spanning tree
   over their gaps (fragment to fragment), or all but the largest dropped; pieces wholly
   inside the soma (debris) are dropped.
2. Soma: a point in the cell body (given, or the thickest cross-section of a first wavefront)
   grows the soma region (:mod:`mesh_export.process.soma`); the soma is the sphere with the region's
   surface area, its node at the region's centroid (or at the point given).
3. Wavefront: geodesic distance from the soma region over the vertex graph (Dijkstra), cut
   into bands of width ``step``; each connected piece of a band is a cross-section ("ring"),
   its area-weighted centroid a node, its parent the ring holding the Dijkstra predecessor of
   its nearest vertex (so the result is always a tree). Rings beside the soma whose centres lie
   inside it (seen from its centre, the soma's surface is star-shaped) are soma membrane and go
   into it; a trunk's base cut by a band into a second, stub piece is folded into the trunk, so
   each trunk that leaves the soma is one primary neurite. Each neurite starts with a node
   where it leaves the soma region, on the soma's surface.
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

Each stage has a module of its own in :mod:`mesh_export.process`: ``skeleton_surface`` (0),
``surface_graph`` (the mesh's
edges, areas, normals), ``healing`` (1, and the wires of 5), ``soma_point`` and ``soma`` (2),
``wavefront`` (3, and the exits), ``spines`` (4), ``radii`` (5), ``tree_assembly`` (the rings'
nodes and parents made into the final tree); this module runs them in order.

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
from mesh_export.process.enclosed import PIXELS_PER_EDGE, enclosed_faces
from mesh_export.process.healing import kept_edges, long_gap_wires
from mesh_export.process.radii import axis_distances, cable_lengths, shaft_radii
from mesh_export.process.soma_point import enclosing_piece, thickest_point
from mesh_export.process.spines import draw_spines, find_spines, spine_necks
from mesh_export.process.skeleton_surface import skeleton_surface
from mesh_export.process.surface_graph import edge_graph, sum_at, surface_measures, surface_samples, unique_edges
from mesh_export.process.tree_assembly import (assemble, compact_rings, first_points_on_soma, fold_stub_trunks,
                                               merge_coincident, tidy_rings)
from mesh_export.process.wavefront import label_rings, ring_stats, ring_tree, soma_exits

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


#: Surfaces wider than this (um) are not looked at for being enclosed: a nucleus or a sheet
#: across a cell body is smaller.
MAX_ENCLOSED = 40.0
#: ... nor smaller than this (um^2): a vesicle's pocket changes nothing a morphology shows.
MIN_ENCLOSED_AREA = 1.0


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
    coarsen: bool = True,
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
    coarsen: a mesh far finer than the wavefront's bands is skeletonized on its vertices
        clustered on a grid, each cluster carrying its vertices' area
        (:mod:`mesh_export.process.skeleton_surface`); ``False``: on the mesh as given.
    """
    from scipy.sparse.csgraph import dijkstra

    from mesh_export._version import __version__
    from mesh_export.process.soma import absorb_rings_inside, exits_on_surface, soma_region

    check_surface(mesh)
    units = getattr(mesh, "units", None)
    if units is None:
        raise UnitsError("the mesh's units are unknown; a skeleton needs them (NEURON reads micrometres): "
                         "declare them with --units-in")
    units = normalize_units(units)
    to_um = conversion_factor(units, "um")
    surface = skeleton_surface(mesh.vertices, mesh.faces, to_um, step, coarsen)
    vertices, faces, n = surface.vertices, surface.faces, len(surface.vertices)
    face_area, vertex_area, normals, total_area = (surface.face_area, surface.vertex_area, surface.normals,
                                                   surface.total_area)
    used = vertex_area > 0
    if not used.any():
        raise SkeletonizeError("the mesh has no surface area (every face is degenerate): no morphology to make")
    some = np.flatnonzero(used)
    some = vertices[some[:: max(1, len(some) // 200000)]]
    sing = np.linalg.svd(some - some.mean(axis=0), compute_uv=False)
    if sing[-1] <= 1e-6 * sing[0]:
        raise SkeletonizeError("the mesh is flat (it encloses no volume): a morphology needs a 3-D surface")

    eu, ev = surface.eu, surface.ev
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

    drop_others = largest_component or not heal

    # Surfaces nothing outside the cell sees (a nucleus envelope, sheets across the cell body)
    # are not membrane: set aside before anything is measured on the surface.
    aside = enclosed_faces(vertices, faces, face_area, median_edge / PIXELS_PER_EDGE, MAX_ENCLOSED / to_um,
                           MIN_ENCLOSED_AREA / to_um**2)
    if aside.faces.any():
        coarse_faces, faces = faces, faces[~aside.faces]
        face_area, kept_vertex_area, kept_normals = surface_measures(vertices, faces)
        if surface.record:
            # A clustered surface's vertices carry the full mesh's area and normals: each keeps
            # the share of its coarse area that was not set aside (a nucleus envelope's clusters
            # none), and where it lost some, the normal of what is left.
            _, coarse_vertex_area, _ = surface_measures(vertices, coarse_faces)
            share = np.divide(kept_vertex_area, coarse_vertex_area, out=np.zeros(n), where=coarse_vertex_area > 0)
            vertex_area = vertex_area * np.minimum(share, 1.0)
            normals = np.where((share < 1.0)[:, None], kept_normals, normals)
        else:
            vertex_area, normals = kept_vertex_area, kept_normals
        del coarse_faces
        used = vertex_area > 0
        eu, ev = unique_edges(faces, n)
        weight = np.maximum(np.linalg.norm(vertices[eu] - vertices[ev], axis=1), 1e-9 * max(median_edge, 1e-30))
    ncomp, comp, piece_area, largest, solid_piece, solid, surface_tree = _pieces(
        vertices, faces, face_area, vertex_area, eu, ev, weight, total_area, drop_others)

    def joined(main, exclude):
        return kept_edges(vertices, comp, piece_area, eu, ev, weight, main, exclude, drop_others, max_gap)

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
        seed = thickest_point(vertices, normals, vertex_area, solid, feu, fev, fw, step, surface_tree)
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

    # Wavefront from the soma region: each ring a node, its parent the ring holding the
    # Dijkstra predecessor of its nearest vertex.
    dist, pred, _ = dijkstra(graph, directed=False, indices=sources, min_only=True, return_predecessors=True)
    labels, count = label_rings(vertices, vertex_area, eu2, ev2, dist, step, sources)
    centroid, ring_area = ring_stats(vertices, vertex_area, labels, count)
    entry, entry_pred, parents = ring_tree(dist, pred, labels, count)
    centroid[0] = soma_point
    absorbed = absorb_rings_inside(vertices, labels, parents, centroid, ring_area, soma_point)
    wire, ends = long_gap_wires(vertices, comp, labels, entry, entry_pred, step)

    # Tidy the tree, compact, then sort (parents before children).
    tiny = 1e-6 * step
    alive, parents = tidy_rings(parents, centroid, ring_area, tiny)
    alive, stubs = fold_stub_trunks(alive, parents, centroid, ring_area, labels, eu2, ev2, wire, step)
    nodes, parents, area, wire, ends, ring_of = compact_rings(alive, parents, centroid, ring_area, wire, ends, labels)
    order_sorted = Skeleton(nodes, parents, np.ones(len(nodes)), None, units).topological_order()
    soma_area = float(area[0])
    soma_radius = math.sqrt(soma_area / (4 * math.pi))

    spine_of, in_spine, spine_root = find_spines(nodes, parents, order_sorted, max_spine_length / to_um, wire)
    exits, has_exit, exit_len = soma_exits(vertices, vertex_area, pred, ring_of, nodes, parents, tiny)
    exits, exits_moved = exits_on_surface(exits, has_exit, nodes, vertices[ring_of == 0], nodes[0])
    exit_len = np.where(has_exit, np.linalg.norm(exits - nodes, axis=1), 0.0)
    half = cable_lengths(nodes, parents, in_spine, wire, exit_len)
    rv, lab, perp, axis_r, median_r = axis_distances(vertices, vertex_area, nodes, parents, in_spine, ring_of,
                                                     exits, has_exit)
    floor = min_radius * conversion_factor(radius_units, units)
    roots, spine_area, shaft_area, axis_r = spine_necks(vertices, vertex_area, nodes, parents, area, spine_of,
                                                        in_spine, spine_root, rv, lab, perp, median_r, axis_r)
    radii = shaft_radii(shaft_area, half, axis_r, floor, soma_radius)
    radii, drawn, folded_area, base_child, base_nodes, gone = draw_spines(
        nodes, parents, radii, half, roots, spine_of, in_spine, spine_root, spine_area, floor, tiny, spines)

    nodes, parents, radii, wires, wire_length = assemble(nodes, parents, radii, exits, has_exit, base_child,
                                                         base_nodes, wire, ends, gone, floor)
    nodes, parents, radii = first_points_on_soma(nodes, parents, radii, soma_radius, vertices[ring_of == 0])
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
        "set_aside": aside.record(),
        "stub_trunks_folded": stubs,
        "rings_absorbed_into_soma": absorbed,
        "exits_moved_onto_soma": exits_moved,
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
    if surface.record:
        metadata["steps"][-1]["surface"] = surface.record
    skeleton = Skeleton(nodes, parents, radii, types, units, metadata).sorted()
    return skeleton.validate()


def _pieces(vertices, faces, face_area, vertex_area, eu, ev, weight, total_area, drop_others):
    """The mesh's pieces (connected components of its edges) and their areas; the "solid"
    ones (at least 2% of the area: tiny ones are often debris inside the cell body), which
    define the surface for inscribed radii, and a tree of points on their surface."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    ncomp, comp = connected_components(edge_graph(len(vertices), eu, ev, weight), directed=False)
    piece_area = sum_at(comp, vertex_area, ncomp)
    largest = int(np.argmax(piece_area))
    solid_piece = piece_area >= 0.02 * total_area
    if drop_others:
        solid_piece[:] = False
        solid_piece[largest] = True
    solid = solid_piece[comp] & (vertex_area > 0)
    on_solid = solid[faces[:, 0]]
    surface_tree = cKDTree(surface_samples(vertices, faces[on_solid], face_area[on_solid]))
    return ncomp, comp, piece_area, largest, solid_piece, solid, surface_tree
