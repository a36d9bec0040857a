"""Synapses onto a morphology: each synapse at the nearest point of the skeleton's cable.

Each synapse goes to the point of the skeleton whose cable SURFACE it is nearest: the edge
(node -> parent) minimising ``distance to the axis - the radius there`` (so a synapse on a thin
spine beside a thick shaft goes to the spine), found among the edges of its nearest samples
(a KD-tree over points every :data:`SAMPLE_UM` along every edge) and measured exactly on them.
Within :data:`SOMA_MARGIN_UM` of the soma's surface (or nearer the soma's surface than any
cable's) it goes to the soma: the soma point whose sphere's surface is nearest, where
NeuroMorpho's 3-point soma is the root's sphere alone, as NEURON's Import3d builds it. Edges
leaving the soma start at their first node: NEURON's sections begin there (Import3d puts no
point of a dendrite inside the soma), so nothing is placed on the stretch between.

Each placed synapse gets its node, the fraction from that node towards its parent (``pos``,
as BMTK's ``afferent_swc_pos``), its distance from the axis and a tag: CAVE's prediction where
the table has one, else measured: ``soma``; ``spine`` on a drawn spine (a terminal branch
ending within :data:`MAX_SPINE_LENGTH_UM` of its branch point, as the skeletonizer draws them;
its tip is the spine's node) or more than :data:`SPINE_GAP_UM` outside its shaft's surface (a
spine the skeleton does not draw: the synapse sits at the spine's base, its length in the
distance); else ``shaft``. An output synapse's tag describes the partner's membrane, which
only a prediction can tell: measured tags are given to inputs (and rows of unknown direction).
A synapse more than :data:`MAX_GAP_UM` outside every cable's surface (debris, a merge, the
wrong units) is not placed: its row stays, with the reason.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mesh_export.core.import3d import three_point_soma
from mesh_export.core.synapses import INPUT, OUTPUT, SynapseRows, SynapseTable
from mesh_export.core.units import conversion_factor
from mesh_export.model import SOMA, Skeleton

__all__ = ["map_synapses", "attach_synapses", "SOMA_MARGIN_UM", "MAX_GAP_UM", "SPINE_GAP_UM"]

#: Synapses this close to the soma's surface (um) go to the soma.
SOMA_MARGIN_UM = 1.0
#: A synapse farther than this outside every cable's surface (um) is not this cell's.
MAX_GAP_UM = 4.0
#: Measured tags: a synapse this far outside its shaft's surface (um) is on an undrawn spine.
SPINE_GAP_UM = 0.5
#: A terminal branch reaching no farther than this from its branch point (um) is a drawn spine
#: (the skeletonizer's ``max_spine_length``).
MAX_SPINE_LENGTH_UM = 3.0
#: Edge samples for the candidate search: spacing (um) and how many nearest samples to try.
SAMPLE_UM = 0.5
CANDIDATES = 12


def _spine_tips(sk: Skeleton) -> np.ndarray:
    """Per node: the tip of its unbranched stretch when that stretch is a drawn spine (a leaf
    branch ending within MAX_SPINE_LENGTH_UM of its base off a neurite), else -1. ``sk``
    sorted: parents before children."""
    n = len(sk)
    parents = sk.parents
    children = np.bincount(parents[parents >= 0], minlength=n)
    par, kids, soma = parents.tolist(), children.tolist(), (sk.types == SOMA).tolist()
    start = list(range(n))  # each node's stretch's first node
    for i in range(n):
        p = par[i]
        if p >= 0 and kids[p] == 1 and not soma[p]:
            start[i] = start[p]
    first = np.asarray(start, dtype=np.int64)
    to_um = conversion_factor(sk.units, "um")
    leaves = np.flatnonzero((children == 0) & (parents >= 0))
    base = parents[first[leaves]]
    reach = np.linalg.norm(sk.nodes[leaves] - sk.nodes[np.maximum(base, 0)], axis=1) * to_um
    spines = leaves[(base >= 0) & (sk.types[np.maximum(base, 0)] != SOMA) & (reach <= MAX_SPINE_LENGTH_UM)]
    tip_of_stretch = np.full(n, -1, dtype=np.int64)
    tip_of_stretch[first[spines]] = spines
    return tip_of_stretch[first]


def _edge_samples(a: np.ndarray, b: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` along each edge a -> b (both ends included) and their edge."""
    length = np.linalg.norm(b - a, axis=1)
    count = np.maximum(np.ceil(length / step).astype(np.int64), 1) + 1
    edge = np.repeat(np.arange(len(a)), count)
    offsets = np.cumsum(count) - count
    t = (np.arange(len(edge)) - offsets[edge]) / (count[edge] - 1)
    return a[edge] + (b - a)[edge] * t[:, None], edge


def map_synapses(skeleton: Skeleton, rows: SynapseRows, root_id: int | None = None) -> SynapseTable:
    """``rows`` mapped onto ``skeleton`` (sorted; see the module docstring)."""
    from scipy.spatial import cKDTree

    sk = skeleton
    n_rows = len(rows)
    to_nm = conversion_factor(sk.units, "nm")
    nodes, radii = sk.nodes * to_nm, sk.radii * to_nm
    um = conversion_factor("um", "nm")
    points = rows.positions
    directions = rows.directions(root_id)

    # Neurite edges: node -> parent; those leaving the soma begin (and end) at their first node.
    child = np.flatnonzero((sk.parents >= 0) & (sk.types != SOMA))
    parent = sk.parents[child]
    from_soma = sk.types[parent] == SOMA
    a, r_a = nodes[child], radii[child]
    b = np.where(from_soma[:, None], a, nodes[np.maximum(parent, 0)])
    r_b = np.where(from_soma, r_a, radii[np.maximum(parent, 0)])

    edge_gap = np.full(n_rows, np.inf)
    edge_of = np.full(n_rows, -1, dtype=np.int64)
    t_best = np.zeros(n_rows)
    d_best = np.full(n_rows, np.inf)
    r_best = np.zeros(n_rows)
    finite = np.isfinite(points).all(axis=1)
    if len(child) and finite.any():
        samples, sample_edge = _edge_samples(a, b, SAMPLE_UM * um)
        k = min(CANDIDATES, len(samples))
        _, near = cKDTree(samples).query(points[finite], k=k)
        candidates = sample_edge[np.asarray(near).reshape(-1, k)]  # (m, k)
        p = points[finite][:, None, :]
        ca, ab = a[candidates], (b - a)[candidates]
        ab2 = np.einsum("mkj,mkj->mk", ab, ab)
        t = np.clip(np.einsum("mkj,mkj->mk", p - ca, ab) / np.where(ab2 > 0, ab2, 1.0), 0.0, 1.0)
        d = np.linalg.norm(p - (ca + ab * t[..., None]), axis=2)
        r = r_a[candidates] + t * (r_b - r_a)[candidates]
        gap = d - r
        pick = np.argmin(gap, axis=1)
        rows_at = np.arange(len(pick))
        edge_gap[finite] = gap[rows_at, pick]
        edge_of[finite] = candidates[rows_at, pick]
        t_best[finite] = t[rows_at, pick]
        d_best[finite] = d[rows_at, pick]
        r_best[finite] = r[rows_at, pick]

    soma_nodes = np.flatnonzero(sk.types == SOMA)
    if not len(soma_nodes) or three_point_soma(sk.types, sk.parents, sk.nodes, 2.0 * sk.radii):
        soma_nodes = np.array([sk.root])  # NEURON's soma: one sphere at the root (or no soma)
    to_soma = np.linalg.norm(points[:, None, :] - nodes[soma_nodes][None], axis=2)
    # the soma point whose surface (not centre) is nearest: a soma drawn as a fat centre and
    # thin outline points (a contour) is its centre's sphere, not the outline's beads
    soma_gaps = to_soma - radii[soma_nodes][None]
    soma_pick = np.argmin(np.where(np.isfinite(soma_gaps), soma_gaps, np.inf), axis=1)
    soma_node = soma_nodes[soma_pick]
    soma_d = to_soma[np.arange(n_rows), soma_pick]
    soma_gap = soma_d - radii[soma_node]
    on_soma = finite & ((soma_gap <= SOMA_MARGIN_UM * um) | (soma_gap <= edge_gap))

    gap = np.where(on_soma, soma_gap, edge_gap)
    placed = finite & (gap <= MAX_GAP_UM * um)
    node = np.where(on_soma, soma_node, np.where(edge_of >= 0, child[np.maximum(edge_of, 0)], -1))
    node = np.where(placed, node, -1)
    pos = np.where(on_soma | ~placed, 0.0, t_best)
    distance = np.where(on_soma, soma_d, d_best)
    radius = np.where(on_soma, radii[soma_node], r_best)

    spine_tip = _spine_tips(sk)
    on_spine = placed & ~on_soma & (spine_tip[np.maximum(node, 0)] >= 0)
    measured = np.where(on_soma, "soma", np.where(on_spine | (gap > SPINE_GAP_UM * um), "spine", "shaft"))
    predicted = rows.tags.astype(str) != ""
    measurable = placed & (directions != OUTPUT)
    tag = np.where(predicted, rows.tags.astype(str), np.where(measurable, measured, "")).astype(object)
    tag_source = np.where(predicted, "predicted", np.where(measurable, "measured", "")).astype(object)
    spine_node = np.where(on_spine, spine_tip[np.maximum(node, 0)], -1)

    reason = np.full(n_rows, "", dtype=object)
    reason[~finite] = "no position"
    far = finite & ~placed
    if far.any():
        reason[far] = [f"far: {g / um:.1f} um outside the nearest cable's surface (more than {MAX_GAP_UM:g} um; "
                       "debris, a merge or other units?)" for g in gap[far]]
    anchors = nodes[np.maximum(node, 0)]
    info = {"mapping": "nearest cable surface", "soma_margin_um": SOMA_MARGIN_UM, "max_gap_um": MAX_GAP_UM}
    if n_rows and finite.any():
        info["nearest_gap_um"] = round(float(np.min(gap[finite])) / um, 3)
    return SynapseTable(rows, root_id, directions, rows.partners(root_id), node, pos, distance, radius, tag,
                        tag_source, spine_node, reason, anchors, info)


def attach_synapses(skeleton: Skeleton, rows: SynapseRows, root_id: int | None = None) -> Skeleton:
    """``skeleton`` (sorted, so that its node numbers are the ones written) carrying ``rows``
    mapped onto it; the counts recorded in its skeletonize step (the sidecar shows them)."""
    sk = skeleton.sorted()
    table = map_synapses(sk, rows, root_id)
    metadata = dict(sk.metadata)
    steps = [dict(step) for step in metadata.get("steps", [])]
    if steps and steps[-1].get("step") == "skeletonize":
        steps[-1]["synapses"] = table.counts()
    metadata["steps"] = steps
    return replace(sk, metadata=metadata, synapses=table)
