"""A surface labelled by its morphology: every face's compartment and path distance from the
soma, and the cell's synapses as points in the surface's frame (what a scene draws).

A face takes the compartment of the skeleton node whose cable surface it is nearest: among
its first vertex's :data:`CANDIDATES` nearest nodes (one KD-tree query for every vertex) the
one minimising ``distance - radius``, so a face on the soma's membrane goes to the soma's
sphere rather than to a thin neurite starting beside it. The soma's nodes are tried for every
vertex besides (there are a handful of them), since a big soma's centre is rarely among a
membrane vertex's nearest nodes. Path distance is the node's distance from the root along
the tree (one shortest-path pass over the tree), averaged over the face's three vertices.
"""

from __future__ import annotations

import numpy as np

from mesh_export.core.synapses import INPUT, OUTPUT
from mesh_export.core.units import conversion_factor
from mesh_export.model import FACE_ATTRIBUTES, SOMA, SYNAPSE_POINTS, Skeleton

__all__ = ["label_faces", "synapse_points", "affine_since", "in_frame", "CANDIDATES"]

#: A face farther than this (um) outside every node's sphere belongs to no compartment (0).
MAX_GAP_UM = 5.0
#: Nearest nodes tried per vertex. On the test cells 1, 2, 4 and 8 label the same faces (the
#: soma, where a thin cable's node beside a thick one matters most, is tried for every vertex);
#: 4 keeps the cable-surface choice among close nodes at 2/3 of 8's time.
CANDIDATES = 4
_CHUNK = 1 << 20  # vertices per query chunk: the (chunk, k) temporaries stay ~100 MB


def path_distances(skeleton: Skeleton) -> np.ndarray:
    """Each node's distance from the root along the tree, in the skeleton's units."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    n = len(skeleton)
    child = np.flatnonzero(skeleton.parents >= 0)
    lengths = skeleton.edge_lengths()[child]
    # A zero-length edge would vanish from a sparse matrix: the smallest positive float keeps it.
    graph = csr_matrix((np.maximum(lengths, np.finfo(float).tiny), (skeleton.parents[child], child)), shape=(n, n))
    return dijkstra(graph, directed=False, indices=skeleton.root)


def nearest_nodes(skeleton: Skeleton, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the node whose cable surface (sphere of its radius) is nearest, and how far
    outside that surface the point is."""
    from scipy.spatial import cKDTree

    nodes, radii = skeleton.nodes, skeleton.radii
    tree = cKDTree(nodes)
    k = min(CANDIDATES, len(nodes))
    soma = np.flatnonzero(skeleton.types == SOMA)
    best = np.empty(len(points), dtype=np.int64)
    outside = np.empty(len(points), dtype=np.float32)
    for start in range(0, len(points), _CHUNK):
        chunk = np.asarray(points[start : start + _CHUNK], dtype=np.float64)
        distances, index = tree.query(chunk, k=k, workers=-1)
        distances, index = distances.reshape(len(chunk), k), index.reshape(len(chunk), k)
        gaps = distances - radii[index]
        pick = np.argmin(gaps, axis=1)
        rows = np.arange(len(chunk))
        chosen, gap = index[rows, pick], gaps[rows, pick]
        for s in soma:  # a few points: the soma's sphere(s) against every vertex
            soma_gap = np.sqrt(((chunk - nodes[s]) ** 2).sum(axis=1)) - radii[s]
            closer = soma_gap < gap
            chosen[closer], gap[closer] = s, soma_gap[closer]
        best[start : start + len(chunk)] = chosen
        outside[start : start + len(chunk)] = gap
    return best, outside


def label_faces(mesh, skeleton: Skeleton):
    """``mesh`` with ``metadata["face_attributes"]`` ``compartment`` (uint8: the SWC type of the
    nearest node; 0 for a custom type, or a face more than :data:`MAX_GAP_UM` outside
    every node's sphere) and ``path_distance`` (float32, the
    mesh's units). ``skeleton`` is in the mesh's frame; its units are converted if they differ."""
    units = getattr(mesh, "units", None)
    if units and skeleton.units and skeleton.units != units:
        skeleton = skeleton.to_units(units)
    faces = np.asarray(mesh.faces)
    node_of_vertex, outside = nearest_nodes(skeleton, np.asarray(mesh.vertices))
    types = skeleton.types[node_of_vertex[faces[:, 0]]]
    known = (types >= 1) & (types <= 4)
    if units:  # debris the skeleton left out, a merged stranger: no compartment of this cell
        known &= outside[faces[:, 0]] <= MAX_GAP_UM * conversion_factor("um", units)
    compartment = np.where(known, types, 0).astype(np.uint8)
    along = path_distances(skeleton).astype(np.float32)[node_of_vertex]
    distance = (along[faces[:, 0]] + along[faces[:, 1]] + along[faces[:, 2]]) / np.float32(3)
    mesh.metadata.setdefault(FACE_ATTRIBUTES, {})
    mesh.metadata[FACE_ATTRIBUTES] = {**mesh.metadata[FACE_ATTRIBUTES], "compartment": compartment,
                                      "path_distance": distance.astype(np.float32)}
    return mesh


def affine_since(mesh, first_step: int) -> tuple[float, np.ndarray]:
    """``(factor, offset)``: how the geometric steps recorded after step ``first_step``
    (unit conversion, scale, centre) moved the coordinates: ``new = old * factor + offset``."""
    factor, offset = 1.0, np.zeros(3)
    for step in mesh.metadata.get("steps", [])[first_step:]:
        if step.get("step") in ("convert_units", "scale"):
            factor *= step["factor"]
            offset = offset * step["factor"]
        elif step.get("step") == "center":
            offset = offset + np.asarray(step["offset"])
    return factor, offset


def in_frame(skeleton: Skeleton, source_units: str, factor: float, offset: np.ndarray,
             units: str | None) -> Skeleton:
    """``skeleton`` moved as ``affine_since`` says the mesh was, from ``source_units`` (the
    mesh's before those steps) to ``units`` (its synapses stay in nm)."""
    from dataclasses import replace

    skeleton = skeleton.to_units(source_units)
    return replace(skeleton, nodes=skeleton.nodes * factor + offset, radii=skeleton.radii * factor,
                   units=units or skeleton.units, metadata=dict(skeleton.metadata))


def synapse_points(mesh, table, factor_from_nm: float, offset: np.ndarray) -> None:
    """The cell's synapses (a SynapseTable's rows, nm, dataset frame) as points in ``mesh``'s
    frame in ``metadata[SYNAPSE_POINTS]``: ``positions`` (n, 3) float32, ``direction`` (input /
    output), ``partner`` and ``id`` (int64), ``size`` (float32), ``tag``. Only the rows placed
    on the cell, of known direction: a row the mapping left off (debris, far away) is not this
    cell's to draw."""
    if table is None or not len(table):
        return
    keep = np.isin(table.direction.astype(str), (INPUT, OUTPUT)) & table.placed
    rows = table.rows
    mesh.metadata[SYNAPSE_POINTS] = {
        "positions": (rows.positions[keep] * factor_from_nm + offset).astype(np.float32),
        "direction": np.asarray(table.direction[keep], dtype=str),
        "partner": np.asarray(table.partner[keep], dtype=np.int64),
        "id": np.asarray(rows.ids[keep], dtype=np.int64),
        "size": np.asarray(rows.size[keep], dtype=np.float32),
        "tag": np.asarray(table.tag[keep], dtype=str),
    }
