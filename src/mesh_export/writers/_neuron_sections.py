"""A skeleton as the morphology writers write it, and the sections NEURON's Import3d makes of
that file (``core.import3d``): the one place swc, hoc and NeuroML agree on numbers and order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mesh_export.core.import3d import import3d_sections, list_name, type_name  # noqa: F401  (re-exported)


@dataclass
class Written:
    """A skeleton as a morphology writer writes it: validated, in the output units, sorted
    (``order[k]`` is the input node written k-th) and rounded to the ``decimals`` written, so
    that what is computed here from the numbers is what a reader of the file computes."""

    skeleton: object
    order: np.ndarray
    decimals: int


def written_form(skeleton, units=None, allow_units: bool = False, format_name: str = "morphology") -> Written:
    from mesh_export.model import as_skeleton_for_writing
    from mesh_export.writers import _text

    sk = as_skeleton_for_writing(skeleton, units, allow_units, format_name, sort=False)
    order = sk.topological_order()
    if not np.array_equal(order, np.arange(len(sk))):
        sk = sk.reordered(order)
    positive = sk.radii[sk.radii > 0]
    decimals = _text.morphology_decimals(np.concatenate([sk.nodes.reshape(-1), sk.radii]),
                                         float(positive.min()) if len(positive) else 0.0)
    sk.nodes = np.round(sk.nodes, decimals)
    sk.radii = np.round(sk.radii, decimals)
    return Written(sk, order, decimals)


def sections_of(written: Written):
    """Import3d's sections of a written skeleton, and each node's place (``core.import3d.Places``)."""
    sk = written.skeleton
    return import3d_sections(sk.types, sk.parents, sk.nodes, 2.0 * sk.radii)


def rank_in(order) -> np.ndarray:
    """``rank[i]``: where ``i`` stands in the permutation ``order`` (its inverse); with a
    Written's ``order``, the position at which input node ``i`` is written."""
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


class PointPlaces(NamedTuple):
    """Import3d's ``sections`` of a skeleton's file, and for each point asked about the
    ``section`` it lies in (a position in ``sections``) and its ``x`` there (0-1, unclamped)."""

    sections: list
    section: np.ndarray
    x: np.ndarray


def places_of_points(skeleton, nodes, fractions) -> PointPlaces:
    """Where NEURON puts the points ``fractions`` (clipped to 0-1) of the way from ``nodes``
    (indices into ``skeleton``) towards their parents, on the sections Import3d makes of our
    SWC file and our hoc file makes alike: the one mapping of the hoc writer's
    ``section_of_points`` and the synapse table's ``sections_at``."""
    written = written_form(skeleton, "um", True, "hoc")
    places = sections_of(written)
    at = rank_in(written.order)[np.asarray(nodes, dtype=np.int64).reshape(-1)]
    fractions = np.clip(np.asarray(fractions, dtype=np.float64).reshape(-1), 0.0, 1.0)
    # Along the stretch to the parent's point x runs linearly (NEURON's x is 3-D arc length);
    # a node NEURON draws no stretch from (a wire's start, a dropped section) keeps its own x.
    x = places.x[at] + fractions * (places.x_toward_parent[at] - places.x[at])
    return PointPlaces(places.sections, places.section[at], x)
