"""Tree assembly: the rings' nodes and parents made into the final tree (nodes inserted between
a node and its parent, nodes dropped, nodes that coincide with their parent merged into it)."""

from __future__ import annotations

import numpy as np

__all__ = ["merge_coincident", "GrowingTree"]


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

