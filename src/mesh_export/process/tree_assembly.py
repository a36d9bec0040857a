"""Tree assembly: the rings' nodes and parents made into the final tree (nodes inserted between
a node and its parent, nodes dropped, nodes that coincide with their parent merged into it)."""

from __future__ import annotations

import numpy as np

from mesh_export.process.surface_graph import sum_at

__all__ = ["merge_coincident", "GrowingTree", "tidy_rings", "fold_stub_trunks", "compact_rings", "assemble",
           "first_points_on_soma"]


def merge_coincident(nodes, parents, radii, tolerance):
    """Nodes within ``tolerance`` of their parent merged into it (their children adopted):
    a zero-length segment is an error to NeuroM and a zero-length section to NEURON."""
    par = np.maximum(parents, 0)
    same = (parents > 0) & (np.linalg.norm(nodes - nodes[par], axis=1) <= tolerance)
    if not same.any():
        return nodes, parents, radii
    target = np.where(same, par, np.arange(len(nodes)))
    for _ in range(64):  # chains of coincident nodes
        nxt = target[target]
        if np.array_equal(nxt, target):
            break
        target = nxt
    parents = np.where(parents >= 0, target[par], -1)
    keep = np.flatnonzero(~same)
    newid = np.full(len(nodes), -1, dtype=np.int64)
    newid[keep] = np.arange(len(keep))
    return nodes[keep], np.where(parents[keep] >= 0, newid[np.maximum(parents[keep], 0)], -1), radii[keep]


class GrowingTree:
    """A tree that takes new nodes between existing ones, then drops the unwanted."""

    def __init__(self, nodes, parents, radii):
        self.nodes, self.parents, self.radii = list(nodes), parents.tolist(), list(radii)

    def insert(self, children, positions, radii) -> np.ndarray:
        """A new node between each of ``children`` and its parent; returns their indices."""
        first = len(self.nodes)
        for k, child in enumerate(np.asarray(children, dtype=np.int64).tolist()):
            self.nodes.append(positions[k])
            self.radii.append(float(radii[k]))
            self.parents.append(self.parents[child])
            self.parents[child] = first + k
        return np.arange(first, len(self.nodes))

    def compact(self, alive: np.ndarray):
        nodes, parents, radii = np.asarray(self.nodes), np.asarray(self.parents, dtype=np.int64), np.asarray(self.radii)
        keep = np.flatnonzero(alive)
        newid = np.full(len(nodes), -1, dtype=np.int64)
        newid[keep] = np.arange(len(keep))
        return nodes[keep], np.where(parents[keep] >= 0, newid[np.maximum(parents[keep], 0)], -1), radii[keep]


def tidy_rings(parents, centroid, ring_area, tiny):
    """The rings' tree tidied: leaves on the soma go into it (area kept); nodes within ``tiny``
    of their parent are merged into it. Returns which rings are kept and their parents;
    ``ring_area`` takes the merged rings' area (in place)."""
    count = len(parents)
    alive = np.ones(count, dtype=bool)
    for _ in range(3):
        kids = np.bincount(parents[alive & (parents >= 0)], minlength=count)
        leaf = alive & (kids == 0) & (parents == 0)
        if not leaf.any():
            break
        ring_area[0] += ring_area[leaf].sum()
        ring_area[leaf] = 0
        alive &= ~leaf
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
    return alive, parents


def _trunk_of(parents, alive):
    """Each ring's soma child (the ring below the soma, ring 0, on its way there); -1 for the
    soma and for dead rings."""
    top = np.where(alive & (parents > 0), parents, np.arange(len(parents)))
    for _ in range(64):  # pointer doubling: depth up to 2**64
        nxt = np.where(parents[top] > 0, top[top], top)
        if np.array_equal(nxt, top):
            break
        top = nxt
    top = np.where(alive, top, -1)
    top[0] = -1
    return top


#: A soma child beside another trunk, with at most this many steps of cable in all, is a piece
#: of that trunk's flared base (the issue's served decimated cell: 4.8 um, 4 steps, of apical base).
FLARE_STEPS = 8
#: ... and one beside none, with at most this many, a bump of the cell body.
BUMP_STEPS = 3


def fold_stub_trunks(alive, parents, centroid, ring_area, labels, eu, ev, wire, step):
    """A trunk's wide or flared base can meet the soma region in more than one piece of a band:
    the wavefront then starts a second, short "trunk" beside it, which is a piece of the same
    trunk's membrane, not a neurite of its own. A soma child whose whole subtree is short (at
    most ``FLARE_STEPS`` steps of cable: a flare's piece ends within the trunk's base) and whose
    rings share mesh edges with another trunk's rings is folded into the ring it shares the
    most edges with (its area kept there). A stub of at most ``BUMP_STEPS`` steps that touches
    no other trunk is a bump of the cell body the soma region left out (or a protrusion too
    short to be a neurite): its area goes to the soma. Returns ``alive`` (updated in place, as
    ``ring_area``) and the number of stubs folded."""
    top = _trunk_of(parents, alive)
    count = len(parents)
    par = np.maximum(parents, 0)
    edge = np.where(alive & (parents > 0), np.linalg.norm(centroid - centroid[par], axis=1), 0.0)
    cable = sum_at(np.maximum(top, 0), np.where(top >= 0, edge, 0.0), count)
    has_wire = sum_at(np.maximum(top, 0), (wire & (top >= 0)).astype(np.float64), count) > 0
    stub = (cable <= FLARE_STEPS * step) & ~has_wire
    stub[0] = False
    bump = stub & (cable <= BUMP_STEPS * step)
    la, lb = labels[eu], labels[ev]
    ok = (la >= 0) & (lb >= 0)
    ta, tb = np.where(ok, top[np.maximum(la, 0)], -1), np.where(ok, top[np.maximum(lb, 0)], -1)
    cross = (ta >= 0) & (tb >= 0) & (ta != tb)
    # each crossing edge seen from the stub's side: (stub trunk, the other side's ring)
    side_a = cross & stub[np.maximum(ta, 0)] & ~stub[np.maximum(tb, 0)]
    side_b = cross & stub[np.maximum(tb, 0)] & ~stub[np.maximum(ta, 0)]
    s_top = np.concatenate([ta[side_a], tb[side_b]])
    other = np.concatenate([lb[side_a], la[side_b]])
    into = np.full(count, -1, dtype=np.int64)
    into[bump & alive & (parents == 0)] = 0  # a bump of the soma, unless it touches a trunk
    if len(s_top):
        pairs, shared = np.unique(np.column_stack([s_top, other]), axis=0, return_counts=True)
        order = np.lexsort((-shared, pairs[:, 0]))
        pairs = pairs[order]
        first = np.concatenate([[True], pairs[1:, 0] != pairs[:-1, 0]])
        into[pairs[first, 0]] = pairs[first, 1]
    folded = (top >= 0) & (into[np.maximum(top, 0)] >= 0)
    target = into[np.maximum(top, 0)]
    ring_area += sum_at(target[folded], ring_area[folded], count)
    ring_area[folded] = 0
    alive &= ~folded
    return alive, int((into >= 0).sum())


def compact_rings(alive, parents, centroid, ring_area, wire, ends, labels):
    """The kept rings renumbered: their nodes, parents, areas, wires and wire ends, and each
    vertex's node (-1: none)."""
    count = len(parents)
    keep = np.flatnonzero(alive)
    newid = np.full(count, -1, dtype=np.int64)
    newid[keep] = np.arange(len(keep))
    nodes = centroid[keep]
    parents = np.where(parents[keep] >= 0, newid[np.maximum(parents[keep], 0)], -1)
    area = ring_area[keep]
    wire, ends = wire[keep], ends[keep]
    ring_of = np.where(labels >= 0, newid[np.maximum(labels, 0)], -1)
    return nodes, parents, area, wire, ends, ring_of


def assemble(nodes, parents, radii, exits, has_exit, base_child, base_nodes, wire, ends, gone, floor):
    """The final tree: exits between the soma and its neurites, bases between shafts and spines
    (``base_nodes`` below ``base_child``), the two ends of each wire across a long gap (radius
    ``floor``). The ``gone`` nodes (dropped spines) go. Returns the nodes, parents, radii, the
    wires kept and their total length."""
    m = len(nodes)
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
    return nodes, parents, radii, wires, wire_length


def first_points_on_soma(nodes, parents, radii, soma_radius, soma_vertices=None):
    """A soma child that branches at once or ends would make a zero-length first section:
    it gets a first point on the soma's surface (the surface of ``soma_vertices`` towards it,
    see :func:`mesh_export.process.soma.surface_distance`; without them, the sphere of
    ``soma_radius``), or nearer the child where that is too close to it (a first section of
    at least 5% of the way from the soma's centre)."""
    from mesh_export.process.soma import surface_distance

    m = len(nodes)
    kids = np.bincount(parents[parents >= 0], minlength=m)
    needs = np.flatnonzero((parents == 0) & (kids != 1))
    if len(needs):
        offset = nodes[needs] - nodes[0]
        gap = np.linalg.norm(offset, axis=1)
        if soma_vertices is not None and len(soma_vertices):
            along = surface_distance(soma_vertices, nodes[0], offset)
            frac = np.clip(along / np.maximum(gap, 1e-300), 0.0, 0.95)
        else:
            frac = np.where(gap > 1.1 * soma_radius, soma_radius / np.maximum(gap, 1e-300), 0.5)
        extra = nodes[0] + offset * frac[:, None]
        base = len(nodes)
        nodes = np.concatenate([nodes, extra])
        parents = np.concatenate([parents, np.zeros(len(needs), dtype=np.int64)])
        parents[needs] = base + np.arange(len(needs))
        radii = np.concatenate([radii, radii[needs]])
    return nodes, parents, radii
