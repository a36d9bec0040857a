"""Tree assembly: the rings' nodes and parents made into the final tree (nodes inserted between
a node and its parent, nodes dropped, nodes that coincide with their parent merged into it)."""

from __future__ import annotations

import numpy as np

from mesh_export.process.surface_graph import sum_at

__all__ = ["merge_coincident", "GrowingTree", "tidy_rings", "compact_rings", "assemble", "first_points_on_soma"]


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


def first_points_on_soma(nodes, parents, radii, soma_radius):
    """A soma child that branches at once or ends would make a zero-length first section:
    it gets a first point on the soma's surface."""
    m = len(nodes)
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
    return nodes, parents, radii
