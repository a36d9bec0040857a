"""NeuroML2 morphology (``<cell>`` with ``<morphology>``) through libNeuroML.

Registered only when libNeuroML is importable (optional extra). The segments are the 3-D
points of the sections NEURON's Import3d makes of the same cell's SWC (so the membrane area
is NEURON's): one segment per node, its id the node's index in the written order, ending at
the node; a single-point soma (or NeuroMorpho's three points) is one spherical segment
(proximal = distal, diameter 2r), a soma of several points the frustums between them; a
neurite joined to the soma by a wire starts with a stub a nanometre long (no cable from the
soma's centre, as in NEURON). Segment groups: ``soma_group``, ``axon_group``,
``basal_dendrite``, ``apical_dendrite`` (NeuroLex sao273773228), ``dendrite_group`` (basal
and apical), ``dend_N_group`` for a custom type N, one group per NEURON section named as Import3d
names it (``dend_12``, neuroLexId sao864921383: a section, which NEURON exports keep) and
``all``. NeuroML2 lengths are micrometres by definition, so no other units are accepted.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np

from mesh_export.writers.registry import SKELETON, Writer, register_builtin
from mesh_export.writers.swc import header_lines

_OPTIONS = {
    "units": "NeuroML2 lengths are micrometres; only um is accepted",
    "cell_id": "id of the <cell> element (default from the root id, else 'cell')",
}
# NeuroLex ids: libNeuroML's (neuroml.neuro_lex_ids) for soma, axon and dendrites; the apical
# dendrite's and a section's as neuroConstruct and NeuroML's NEURON export use them.
_LEX = {"soma_group": "GO:0043025", "axon_group": "GO:0030424", "dendrite_group": "GO:0030425",
        "apical_dendrite": "sao273773228"}
_SECTION_LEX = "sao864921383"
_GROUP_OF_TYPE = {1: "soma_group", 2: "axon_group", 3: "basal_dendrite", 4: "apical_dendrite"}
_STUB = 1e-3  # um


def _nml_id(text: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", str(text))
    return ident if re.match(r"[A-Za-z_]", ident) else f"cell_{ident}"


def write_neuroml(skeleton, path, units: str | None = None, cell_id: str | None = None) -> None:
    import neuroml
    from neuroml.writers import NeuroMLWriter

    from mesh_export.errors import UnitsError
    from mesh_export.writers._neuron_sections import sections_of, type_name, written_form

    if units and units not in ("um", "micrometre", "micrometer", "micron", "microns"):
        raise UnitsError("NeuroML2 lengths are micrometres by definition; use --units um")
    written = written_form(skeleton, "um", False, "NeuroML")
    sk = written.skeleton
    root_id = sk.metadata.get("root_id")
    cid = _nml_id(cell_id or (f"cell_{root_id}" if root_id is not None else "cell"))
    nodes, types = sk.nodes, sk.types
    sections = sections_of(written).sections

    def point(xyz, diameter):
        # NeuroML2 diameters are > 0 (the schema says so): a zero-diameter point is written as
        # the stub's width, and the notes say how many.
        return neuroml.Point3DWithDiam(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]),
                                       diameter=float(diameter) if diameter > 0 else _STUB)

    made: dict[int, neuroml.Segment] = {}
    order: list[int] = []

    def add(node, proximal, distal, parent):
        segment = neuroml.Segment(id=int(node), name=f"seg{node}" if node else "soma", proximal=proximal,
                                  distal=distal)
        if parent is not None:
            segment.parent = neuroml.SegmentParent(segments=int(parent[0]), fraction_along=float(parent[1]))
        made[int(node)] = segment
        order.append(int(node))

    def attach_to(node):
        """(segment, fraction) of a point at ``node``, for a child starting there."""
        if node in made:
            return node, (0.5 if len(sections[0].points) == 1 and node == sections[0].points[0] else 1.0)
        root = sections[0]
        return root.points[1], 0.0  # the first point of a soma of several points: its first segment's start

    section_segments = []
    for sec in sections:
        pts, diams = list(sec.points), list(sec.diams)
        mine = []
        if len(pts) == 1:  # a sphere
            add(pts[0], point(nodes[pts[0]], diams[0]), point(nodes[pts[0]], diams[0]), None)
            mine.append(pts[0])
        elif sec.wire >= 0:  # joined by a wire: a stub pointing back at where the wire starts
            offset = nodes[pts[0]] - nodes[sec.wire]
            gap = float(np.linalg.norm(offset))
            start = nodes[pts[0]] - offset / max(gap, 1e-300) * min(_STUB, 0.5 * gap) if gap > 0 else \
                nodes[pts[0]] - np.array([_STUB, 0, 0])
            add(pts[0], point(start, diams[0]), point(nodes[pts[0]], diams[0]), attach_to(sec.wire))
            mine.append(pts[0])
        for k in range(1, len(pts)):
            parent = (pts[k - 1], 1.0) if pts[k - 1] in mine else (attach_to(pts[k - 1]) if sec.parent >= 0 else None)
            add(pts[k], point(nodes[pts[k - 1]], diams[k - 1]), point(nodes[pts[k]], diams[k]), parent)
            mine.append(pts[k])
        section_segments.append(mine)
    # Nodes in sections NEURON drops (one point, or two points at one place): a stub each,
    # so that every node still has its segment.
    for node in range(1, len(sk)):
        if node not in made and types[node] != 1:
            parent = int(sk.parents[node])
            add(node, point(nodes[node] - np.array([_STUB, 0, 0]), 2 * sk.radii[node]),
                point(nodes[node], 2 * sk.radii[node]), attach_to(parent))
    segments = [made[k] for k in order]
    morphology = neuroml.Morphology(id=f"{cid}_morphology", segments=segments)

    groups: dict[str, list[int]] = {}
    for node in made:
        t = int(types[node])
        groups.setdefault(_GROUP_OF_TYPE.get(t, f"{type_name(t)}_group"), []).append(node)
    for name in ("soma_group", "axon_group", "basal_dendrite", "apical_dendrite",
                 *sorted(g for g in groups if g not in _GROUP_OF_TYPE.values())):
        if name in groups:
            morphology.segment_groups.append(neuroml.SegmentGroup(
                id=name, neuro_lex_id=_LEX.get(name),
                members=[neuroml.Member(segments=m) for m in sorted(groups[name])]))
    dendrites = [g for g in ("basal_dendrite", "apical_dendrite") if g in groups]
    if dendrites:
        morphology.segment_groups.append(neuroml.SegmentGroup(
            id="dendrite_group", neuro_lex_id=_LEX["dendrite_group"],
            includes=[neuroml.Include(segment_groups=g) for g in dendrites]))
    for sec, members in zip(sections, section_segments):
        morphology.segment_groups.append(neuroml.SegmentGroup(
            id=f"{sec.name}_{sec.index}", neuro_lex_id=_SECTION_LEX,
            members=[neuroml.Member(segments=m) for m in members]))
    top = [g.id for g in morphology.segment_groups if g.id in groups]
    morphology.segment_groups.append(neuroml.SegmentGroup(
        id="all", includes=[neuroml.Include(segment_groups=g) for g in top]))

    head = header_lines(sk, "NeuroML2")
    if (sk.radii == 0).any():
        head.append(f"NeuroML2 diameters are above 0: {int((sk.radii == 0).sum())} zero-radius nodes written "
                    f"with diameter {_STUB} um")
    notes = "; ".join(head)
    cell = neuroml.Cell(id=cid, morphology=morphology, notes=notes)
    doc = neuroml.NeuroMLDocument(id=cid, notes=notes)
    doc.cells.append(cell)
    NeuroMLWriter.write(doc, str(path))


# ---------------------------------------------------------------------------- reading

_TYPE_OF_GROUP = {"soma_group": 1, "axon_group": 2, "basal_dendrite": 3, "apical_dendrite": 4}
_CUSTOM_GROUP = re.compile(r"^dend_(\d+)_group$")


def read_neuroml(path):
    """The morphology of a NeuroML2 file's first ``<cell>`` as a Skeleton (micrometres): a node at
    each segment's distal end (its parent the segment's parent, or that segment's own start when
    attached at fraction 0), the start of a parentless segment of length a node of its own (a
    soma of several points), types from the soma/axon/dendrite groups. Read with the standard
    library's XML parser: libNeuroML is not needed to read."""
    from xml.etree import ElementTree

    from mesh_export.errors import InputError
    from mesh_export.model import Skeleton

    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise InputError(f"{path}: not well-formed XML ({exc})") from None
    morphology = next(root.iterfind(".//{*}morphology"), None)
    if morphology is None:
        raise InputError(f"{path}: no <morphology> (a NeuroML file without a cell's shape)")
    segments = {}
    try:
        for segment in morphology.iterfind("{*}segment"):
            parent = segment.find("{*}parent")
            distal = segment.find("{*}distal")
            proximal = segment.find("{*}proximal")
            segments[int(segment.get("id"))] = (
                None if parent is None else (int(parent.get("segment")), float(parent.get("fractionAlong", "1"))),
                _point(distal), None if proximal is None else _point(proximal))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: a segment without a whole distal point or id ({exc})") from None
    if not segments:
        raise InputError(f"{path}: a morphology without segments")
    ids = sorted(segments)
    index = {segment: k for k, segment in enumerate(ids)}
    nodes = [segments[s][1] for s in ids]
    parents = [-1] * len(ids)
    starts = {}  # a parentless segment with length: its start is a node too (a soma of several points)
    for s in ids:
        parent, distal, proximal = segments[s]
        if parent is None:
            if proximal is not None and proximal[:3] != distal[:3]:
                starts[s] = len(nodes)
                nodes.append(proximal)
                parents.append(-1)
                parents[index[s]] = starts[s]
            continue
        if parent[0] not in index:
            raise InputError(f"{path}: segment {s} names a parent segment {parent[0]} the file does not have")
        attached = index[parent[0]]
        if parent[1] == 0.0:  # at the start of the parent segment: where that segment begins
            attached = starts.get(parent[0], parents[attached] if parents[attached] >= 0 else attached)
        parents[index[s]] = attached
    types = np.full(len(nodes), 3, dtype=np.int64)
    for group in morphology.iterfind("{*}segmentGroup"):
        name = group.get("id", "")
        custom = _CUSTOM_GROUP.match(name)
        swc_type = _TYPE_OF_GROUP.get(name, int(custom.group(1)) if custom else None)
        if swc_type is None:
            continue
        for member in group.iterfind("{*}member"):
            segment = int(member.get("segment"))
            if segment in index:
                types[index[segment]] = swc_type
                if segment in starts:
                    types[starts[segment]] = swc_type
    order = _roots_first(parents)
    xyz = np.array([n[:3] for n in nodes], dtype=np.float64)[order]
    radii = np.array([n[3] / 2 for n in nodes], dtype=np.float64)[order]
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    parent_of = np.array(parents, dtype=np.int64)[order]
    parent_of = np.where(parent_of >= 0, renumber[np.maximum(parent_of, 0)], -1)
    skeleton = Skeleton(xyz, parent_of, radii, types[order], "um")
    skeleton.metadata["source"] = {"file": str(path)}
    return skeleton


def _point(element) -> tuple[float, float, float, float]:
    return (float(element.get("x")), float(element.get("y")), float(element.get("z")), float(element.get("diameter")))


def _roots_first(parents: list[int]) -> np.ndarray:
    """Nodes in an order where every parent comes before its children (depth first from the roots)."""
    children: dict[int, list[int]] = {}
    for node, parent in enumerate(parents):
        children.setdefault(parent, []).append(node)
    order, stack = [], list(reversed(children.get(-1, [])))
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(children.get(node, [])))
    if len(order) != len(parents):
        from mesh_export.errors import InputError

        raise InputError("the segments' parents form a cycle")
    return np.asarray(order, dtype=np.int64)


# Optional: libNeuroML is an extra. find_spec does not import it (the CLI starts fast).
if importlib.util.find_spec("neuroml") is not None:
    register_builtin(
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
