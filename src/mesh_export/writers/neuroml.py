"""NeuroML2 morphology (``<cell>`` with ``<morphology>``) through libNeuroML.

Registered only when libNeuroML is importable (optional extra). One segment per skeleton
edge, the soma a spherical segment (proximal = distal, diameter 2r), segment groups
``soma_group``, ``axon_group``, ``dendrite_group`` and ``all``. NeuroML2 lengths are
micrometres by definition, so no other units are accepted.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np

from mesh_export.writers.registry import SKELETON, Writer, register
from mesh_export.writers.swc import header_lines

_OPTIONS = {
    "units": "NeuroML2 lengths are micrometres; only um is accepted",
    "cell_id": "id of the <cell> element (default from the root id, else 'cell')",
}


def _nml_id(text: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", str(text))
    return ident if re.match(r"[A-Za-z_]", ident) else f"cell_{ident}"


def write_neuroml(skeleton, path, units: str | None = None, cell_id: str | None = None) -> None:
    import neuroml
    from neuroml.writers import NeuroMLWriter

    from mesh_export.errors import UnitsError
    from mesh_export.model import as_skeleton_for_writing

    if units and units not in ("um", "micrometre", "micrometer", "micron", "microns"):
        raise UnitsError("NeuroML2 lengths are micrometres by definition; use --units um")
    sk = as_skeleton_for_writing(skeleton, "um", False, "NeuroML")
    root_id = sk.metadata.get("root_id")
    cid = _nml_id(cell_id or (f"cell_{root_id}" if root_id is not None else "cell"))

    nodes, radii, parents, types = sk.nodes, sk.radii, sk.parents, sk.types
    soma_c, soma_r = nodes[0], float(radii[0])

    def point(xyz, diameter):
        return neuroml.Point3DWithDiam(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]),
                                       diameter=float(diameter))

    segments = [neuroml.Segment(id=0, name="soma", proximal=point(soma_c, 2 * soma_r),
                                distal=point(soma_c, 2 * soma_r))]
    groups = {"axon_group": [], "dendrite_group": []}
    for i in range(1, len(sk)):
        p = int(parents[i])
        if p == 0:
            # A stub a nanometre long, pointing back at the soma: NEURON's import of the same
            # SWC counts no cable between the soma and a neurite's first node (the soma's area
            # already holds the soma region's surface), and a cable from the soma's surface or
            # centre would add membrane the mesh does not have (3% on a decimated cell).
            offset = nodes[i] - soma_c
            gap = float(np.linalg.norm(offset))
            start = nodes[i] - offset / max(gap, 1e-300) * min(1e-3, 0.5 * gap)
            proximal = point(start, 2 * radii[i])
            fraction = 0.5
        else:
            proximal = point(nodes[p], 2 * radii[p])
            fraction = 1.0
        segments.append(neuroml.Segment(
            id=i, name=f"seg{i}", proximal=proximal, distal=point(nodes[i], 2 * radii[i]),
            parent=neuroml.SegmentParent(segments=p, fraction_along=fraction)))
        groups["axon_group" if types[i] == 2 else "dendrite_group"].append(i)

    morphology = neuroml.Morphology(id=f"{cid}_morphology", segments=segments)
    morphology.segment_groups.append(neuroml.SegmentGroup(
        id="soma_group", neuro_lex_id="sao864921383", members=[neuroml.Member(segments=0)]))
    lex = {"axon_group": "sao1770195789", "dendrite_group": "sao1211023249"}  # NeuroLex ids
    for name, members in groups.items():
        if members:
            morphology.segment_groups.append(neuroml.SegmentGroup(
                id=name, neuro_lex_id=lex[name], members=[neuroml.Member(segments=m) for m in members]))
    includes = [neuroml.Include(segment_groups=g.id) for g in morphology.segment_groups]
    morphology.segment_groups.append(neuroml.SegmentGroup(id="all", includes=includes))

    notes = "; ".join(header_lines(sk, "NeuroML2"))
    cell = neuroml.Cell(id=cid, morphology=morphology, notes=notes)
    doc = neuroml.NeuroMLDocument(id=cid, notes=notes)
    doc.cells.append(cell)
    NeuroMLWriter.write(doc, str(path))


# Optional: libNeuroML is an extra. find_spec does not import it (the CLI starts fast).
if importlib.util.find_spec("neuroml") is not None:
    register(
        Writer(
            name="neuroml",
            extensions=(".cell.nml", ".nml"),
            write=write_neuroml,
            accepts=(SKELETON,),
            options=_OPTIONS,
            description="NeuroML2 cell morphology (libNeuroML); micrometres",
            backend="libNeuroML",
        )
    )
