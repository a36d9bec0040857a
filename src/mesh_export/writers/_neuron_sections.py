"""A skeleton as the morphology writers write it, and the sections NEURON's Import3d makes of
that file (``core.import3d``): the one place swc, hoc and NeuroML agree on numbers and order."""

from __future__ import annotations

from dataclasses import dataclass

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
