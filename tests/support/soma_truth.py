"""How a morphology's soma compares with a synthetic cell's outer soma membrane
(tests/support/cells.py): the figures issue 22 asks for, shared by the tests and
benchmarks/morphology_figures.py.

"Inside the soma" is geometric: a point is inside when it is nearer the soma's centre than the
outer membrane is along the same direction (the membrane's distance there: the median over its
vertices within a few degrees of that direction). Cell bodies are star-shaped about their
centre; a stem's opening has no membrane vertices, so the direction through it takes its rim's.
"""

from __future__ import annotations

import numpy as np

from support.cells import SOMA

#: Cable counts as inside when it is this much (a fraction of the membrane's distance) inside:
#: the neurites start on the membrane, and a decimated membrane lies within a face's depth of it.
MARGIN = 0.05


class MembraneStar:
    """The outer soma membrane as a distance from ``centre`` per direction."""

    def __init__(self, vertices, centre, neighbours: int = 12):
        from scipy.spatial import cKDTree

        self.centre = np.asarray(centre, dtype=np.float64)
        offset = np.asarray(vertices, dtype=np.float64) - self.centre
        self.distance = np.linalg.norm(offset, axis=1)
        self.tree = cKDTree(offset / self.distance[:, None])
        self.k = min(neighbours, len(offset))

    def inside(self, points) -> np.ndarray:
        offset = np.asarray(points, dtype=np.float64) - self.centre
        dist = np.linalg.norm(offset, axis=1)
        _, near = self.tree.query(offset / np.maximum(dist, 1e-300)[:, None], k=self.k)
        membrane = np.median(self.distance[near.reshape(len(offset), -1)], axis=1)
        return dist < (1 - MARGIN) * membrane


def cable_inside(skeleton, inside, samples: int = 20) -> tuple[float, float]:
    """Neurite cable (every edge but those from the soma node, which NEURON does not draw as
    cable) for which ``inside(points)`` holds (sampled along each edge), and the total, in the
    skeleton's units."""
    par = skeleton.parents
    edges = np.flatnonzero(par > 0)
    a, b = skeleton.nodes[par[edges]], skeleton.nodes[edges]
    length = np.linalg.norm(b - a, axis=1)
    t = (np.arange(samples) + 0.5) / samples
    points = a[:, None, :] + (b - a)[:, None, :] * t[None, :, None]
    within = inside(points.reshape(-1, 3)).reshape(len(edges), samples).mean(axis=1)
    return float((within * length).sum()), float(length.sum())


def cable_in_soma_sphere(skeleton) -> tuple[float, float]:
    """Cable inside the sphere NEURON draws for the soma (its radius, about its node), and the
    total: for meshes without a membrane truth."""
    return cable_inside(skeleton, lambda p: np.linalg.norm(p - skeleton.nodes[0], axis=1) < skeleton.radii[0])


def soma_figures(cell, skeleton, neuron_area_um2: float) -> dict:
    """Area ratio against the outer surface, soma radius against the outer membrane's
    equivalent sphere, cable inside the soma, primary neurites against the trunks."""
    sk = skeleton.to_units("nm")
    star = MembraneStar(cell.mesh.vertices[cell.labels == SOMA], cell.soma_center)
    inside, total = cable_inside(sk, star.inside)
    return {
        "area_ratio": neuron_area_um2 / (cell.outer_area * 1e-6),
        "soma_radius_ratio": float(sk.radii[0]) / cell.soma_equivalent_radius,
        "cable_inside": inside / total,
        "cable_inside_um": inside / 1000.0,
        "nodes_inside": int(star.inside(sk.nodes[1:]).sum()),
        "primary": int((sk.parents == 0).sum()),
        "trunks": cell.trunks,
    }
