"""NEURON hoc template: ``soma``, ``axon[]``, ``dend[]``, ``apic[]`` (and ``dend_N[]`` for a
custom type N) sections in the SectionLists ``somatic``, ``axonal``, ``basal``, ``apical``
(``dendritic_N``) and ``all``, with ``connect`` and ``pt3dadd``.

The sections are the ones NEURON's Import3d makes of the SWC file we write for the same
skeleton: the same names, numbering, 3-D points and connections (``_neuron_sections`` ports
Import3d's rules), so a model written against an Import3d-loaded SWC runs on this file and a
node's place (:func:`section_of_nodes`) is right on both. Every type is an array, as Import3d
makes them (``soma[0]``, even for one soma section). Load it with ``h.load_file("cell.hoc")``
and instantiate ``h.Cell_<root id>()``: the template is named after the cell (its root id, or
the file's name), so any number of exported cells load in one session; ``template`` names it.
A file name becomes a hoc identifier by turning every other character into ``_``, so files
whose names differ only there (``a-b.swc`` and ``a_b.swc``) both make ``Cell_a_b``: NEURON
loads the first and refuses to redeclare the second; give one of them ``template``.
A name NEURON cannot take for a template (a hoc keyword, a built-in class, function or
mechanism, or a section name the cell declares) is refused (:func:`check_template_name`).
"""

from __future__ import annotations

import re

import numpy as np

from mesh_export.writers import _text
from mesh_export.writers._neuron_sections import list_name, places_of_points, sections_of, type_name, written_form
from mesh_export.writers.registry import SKELETON, Writer, register_builtin
from mesh_export.writers.swc import header_lines

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names NEURON 8/9 cannot load as a template, measured by loading a template of each name in a
# fresh NEURON ("syntax error" for a keyword, "Redeclaring at top level" for a built-in); the
# product does not import NEURON to ask it. String, VecStim and the Import3d classes load in a
# bare session but break the standard library (stdrun.hoc, import3d.hoc) loaded afterwards.
_HOC_KEYWORDS = frozenset(
    "for if else while break continue return stop proc func obfunc iterator iterator_statement objref "
    "objectvar strdef double create connect access insert uninsert forall forsec ifsec begintemplate "
    "endtemplate public external local localobj new print delete help depvar eqn setpointer em read debug "
    "quit".split())
_NEURON_BUILTINS = frozenset(
    "Vector List String SectionList SectionRef Matrix Graph File Random Exp2Syn ExpSyn NetStim NetCon IClamp "
    "SEClamp VClamp APCount AlphaSynapse PointProcessMark VecStim IntFire1 Import3d_GUI Import3d_SWC_read Shape "
    "PlotShape Deck Timer Pointer StringFunctions CVode Glyph ValueFieldEditor Impedance LinearMechanism KSChan "
    "ParallelContext PythonObject MechanismType SaveState execute secname topology sin exp t dt v "
    "celsius".split())
_MECHANISMS = frozenset("hh pas extracellular fastpas capacitance morphology na_ion k_ion".split())
# Sections and SectionLists the template declares (and Import3d declares at top level).
_SECTION_NAMES = frozenset("soma axon dend apic all".split())
# Statements per hoc procedure: NEURON's parser handles big procedures, but splitting keeps
# memory and parse time flat (NEURON's own exported cells do the same).
_LINES_PER_PROC = 2000
_STANDARD_LISTS = ("somatic", "axonal", "basal", "apical")

_OPTIONS = {
    "units": "length units of the file; micrometres (NEURON's convention) unless allow_units",
    "allow_units": "allow units other than micrometres (with a warning)",
    "template": "name of the hoc template (default Cell_<root id>, else Cell_<file name>)",
}


def template_name(skeleton, path=None) -> str:
    """The default template name: ``Cell_<root id>``, else ``Cell_<file stem>`` made a hoc
    identifier, else ``MeshExportCell``."""
    from mesh_export.core.atomic import intended_name

    meta = skeleton.metadata or {}
    root_id = meta.get("root_id")
    if root_id is None and isinstance(meta.get("source"), dict):
        root_id = meta["source"].get("root_id")
    if root_id is not None:
        return "Cell_" + re.sub(r"[^A-Za-z0-9_]", "_", str(root_id))
    if path is not None:
        stem = intended_name(path)
        for ext in (".cell.nml", ".hoc", ".swc", ".nml"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
        else:
            stem = stem.rsplit(".", 1)[0]
        stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)
        if stem:
            return "Cell_" + stem
    return "MeshExportCell"


def check_template_name(name: str) -> None:
    """Refuse (InvalidArgumentError, one line) a template name NEURON cannot load."""
    from mesh_export.errors import InvalidArgumentError

    if not _IDENTIFIER.match(name):
        problem = "is not a hoc identifier"
    elif name in _HOC_KEYWORDS:
        problem = "is a hoc keyword (NEURON: syntax error)"
    elif name in _NEURON_BUILTINS:
        problem = "is a NEURON built-in name (NEURON: Redeclaring at top level)"
    elif name in _MECHANISMS:
        problem = "is a NEURON mechanism's name (NEURON: Redeclaring at top level)"
    elif name in _SECTION_NAMES:
        problem = "is a section name of the cell"
    else:
        return
    raise InvalidArgumentError(f"hoc template name {name!r} {problem}; choose another --template")


def section_of_nodes(skeleton):
    """Where NEURON puts each node of ``skeleton``: ``(names, indices, x)``, three arrays of
    ``len(skeleton)`` in the skeleton's own node order.

    ``names[i]`` is the section array (``"soma"``, ``"axon"``, ``"dend"``, ``"apic"``,
    ``"dend_5"``), ``indices[i]`` the index in it and ``x[i]`` the position along it (0-1),
    so that ``getattr(cell, names[i])[indices[i]](x[i])`` is node i's place both on the cell
    our hoc file builds and on the cell NEURON's Import3d builds from our SWC file (the same
    sections, numbered alike; ``f"{names[i]}[{indices[i]}]"`` is NEURON's name). ``x`` is the
    fraction of the section's 3-D length at the node's point; a single-point soma's centre is
    ``soma[0](0.5)``, and so are NeuroMorpho's two other soma points. Import3d keeps no
    section of one point: a node in such a section (rare: a one-node branch on the first
    point of a soma of several points) is placed where that section attached. The skeleton
    is taken as a writer takes it (validated, in micrometres, numbers rounded as written).
    """
    return section_of_points(skeleton, np.arange(len(skeleton)), np.zeros(len(skeleton)))


def section_of_points(skeleton, nodes, fractions):
    """Where NEURON puts points on the skeleton's edges: ``(names, indices, x)`` for each
    ``(nodes[k], fractions[k])``, the point ``fractions[k]`` of the way from node ``nodes[k]``
    towards its parent (BMTK's ``swc_id``/``swc_pos``; 0: the node itself, see
    :func:`section_of_nodes`). The edge lies in the node's section, from x of the node to x of
    the parent's point there; an edge NEURON does not draw (from a soma point to a neurite
    joined by a wire, or the soma's own centre for a root) puts every point at the node.
    Numbers as :func:`section_of_nodes`; the arrays are in the order given.
    """
    places = places_of_points(skeleton, nodes, fractions)
    names = np.array([places.sections[k].name for k in places.section], dtype=object)
    indices = np.array([places.sections[k].index for k in places.section], dtype=np.int64)
    return names, indices, places.x


def _procs(handle, name: str, chunks: list[tuple[list, int]]) -> None:
    """Write ``proc name_k()`` bodies of at most _LINES_PER_PROC rows, and ``proc name()``."""
    count = 0
    for segments, rows in chunks:
        for lo in range(0, rows, _LINES_PER_PROC):
            hi = min(rows, lo + _LINES_PER_PROC)
            handle.write(f"proc {name}_{count}() {{\n".encode())
            sliced = [seg if isinstance(seg, bytes) else
                      (_text.Fixed(seg.values[lo:hi], seg.decimals) if isinstance(seg, _text.Fixed)
                       else _text.Int(seg.values[lo:hi])) for seg in segments]
            _text.write_text(handle, sliced, hi - lo)
            handle.write(b"}\n")
            count += 1
    calls = " ".join(f"{name}_{k}()" for k in range(count))
    handle.write(f"proc {name}() {{\n  {calls}\n}}\n".encode())


def write_hoc(skeleton, path, units: str | None = None, allow_units: bool = False,
              template: str | None = None, ascii: bool = True) -> None:
    name = template or template_name(skeleton, path)
    check_template_name(name)
    written = written_form(skeleton, units, allow_units, "hoc")
    sk, decimals = written.skeleton, written.decimals
    sections = sections_of(written).sections
    counts: dict[int, int] = {}
    for sec in sections:
        counts[sec.type] = counts.get(sec.type, 0) + 1
    kinds = sorted(counts)
    arrays = [type_name(t) for t in kinds]
    lists = list(_STANDARD_LISTS) + [list_name(t) for t in kinds if list_name(t) not in _STANDARD_LISTS]

    # Rows grouped by section type (hoc cannot index a section array by a variable name).
    connect_rows = {t: ([], [], [], [], []) for t in kinds}  # child index, parent type, parent index, x
    point_rows = {t: ([], [], [], [], [], []) for t in kinds}  # index, x, y, z, diam
    style_rows = {t: ([], [], [], []) for t in kinds}
    for sec in sections:
        if sec.parent >= 0:
            parent = sections[sec.parent]
            rows = connect_rows[sec.type]
            rows[0].append(sec.index), rows[1].append(parent.type), rows[2].append(parent.index)
            rows[3].append(sec.parentx)
        if sec.wire >= 0:
            rows = style_rows[sec.type]
            rows[0].append(sec.index)
            for k in range(3):
                rows[k + 1].append(sk.nodes[sec.wire, k])
        pts = sk.nodes[sec.points]
        diams = list(sec.diams)
        if len(pts) == 1:  # Import3d's sphere_rep: three points along x, as long as wide
            d = diams[0]
            pts = pts[[0, 0, 0]].copy()
            pts[0, 0] -= d / 2
            pts[2, 0] += d / 2
            diams = [d, d, d]
        rows = point_rows[sec.type]
        rows[0].extend([sec.index] * len(pts))
        for k in range(3):
            rows[k + 1].extend(pts[:, k].tolist())
        rows[4].extend(diams)

    with open(path, "xb") as handle:
        head = header_lines(sk, "NEURON hoc")
        head.append("sections as NEURON's Import3d makes them of this cell's SWC: " + ", ".join(
            f"{type_name(t)}[{counts[t]}]" for t in kinds))
        head.append(f'load: h.load_file("<this file>"); cell = h.{name}()  (keep a reference to cell)')
        handle.write("".join(f"// {line}\n" for line in head).encode())
        handle.write(f"begintemplate {name}\n".encode())
        handle.write(f"public {', '.join(arrays)}, all, {', '.join(lists)}, nsections\n".encode())
        handle.write(f"objref all, {', '.join(lists)}\n".encode())
        handle.write(("create " + ", ".join(f"{type_name(t)}[{counts[t]}]" for t in kinds) + "\n").encode())
        handle.write(b"nsections = 0\n")
        handle.write(b"proc init() {\n  nsections = %d\n  topol()\n  basic_shape()\n  subsets()\n  geom_nseg()\n}\n"
                     % len(sections))
        topo_chunks = []
        for t in kinds:
            child, parent_type, parent_index, parent_x = connect_rows[t][:4]
            parent_type = np.asarray(parent_type, dtype=np.int64)
            for pt in sorted(set(parent_type.tolist())):
                pick = np.flatnonzero(parent_type == pt)
                topo_chunks.append(([f"  connect {type_name(t)}[".encode(), _text.Int(np.asarray(child)[pick]),
                                     f"](0), {type_name(pt)}[".encode(), _text.Int(np.asarray(parent_index)[pick]),
                                     b"](", _text.Fixed(np.asarray(parent_x)[pick], 2), b")\n"], len(pick)))
        _procs(handle, "topol", topo_chunks or [([b"  \n"], 0)])
        shape_chunks = []
        for t in kinds:
            index, xs, ys, zs = (np.asarray(v) for v in style_rows[t])
            if len(index):
                shape_chunks.append(([f"  {type_name(t)}[".encode(), _text.Int(index), b"] pt3dstyle(1, ",
                                      _text.Fixed(xs, decimals), b", ", _text.Fixed(ys, decimals), b", ",
                                      _text.Fixed(zs, decimals), b")\n"], len(index)))
            index, xs, ys, zs, ds = (np.asarray(v) for v in point_rows[t][:5])
            shape_chunks.append(([f"  {type_name(t)}[".encode(), _text.Int(index), b"] pt3dadd(",
                                  _text.Fixed(xs, decimals), b", ", _text.Fixed(ys, decimals), b", ",
                                  _text.Fixed(zs, decimals), b", ", _text.Fixed(ds, decimals), b")\n"], len(index)))
        _procs(handle, "shape", shape_chunks)
        handle.write(b"proc basic_shape() {\n  shape()\n}\n")
        subset_lines = [f"  {name_} = new SectionList()\n" for name_ in ("all", *lists)]
        subset_lines += [f"  for i = 0, {counts[t] - 1} {type_name(t)}[i] {list_name(t)}.append()\n" for t in kinds]
        subset_lines += [f"  forsec {list_name(t)} all.append()\n" for t in kinds]
        handle.write(("proc subsets() { local i\n" + "".join(subset_lines) + "}\n").encode())
        # Odd nseg, about one segment per 40 um (an explicit d_lambda rule needs Ra and cm
        # the user has not chosen yet).
        handle.write(b"proc geom_nseg() {\n  forsec all { nseg = 1 + 2 * int(L / 40) }\n}\n")
        handle.write(f"endtemplate {name}\n".encode())


register_builtin(
    Writer(
        name="hoc",
        extensions=(".hoc",),
        write=write_hoc,
        accepts=(SKELETON,),
        modes=("ascii",),
        options=_OPTIONS,
        description="NEURON hoc template (soma, axon[], dend[], apic[] as Import3d names them); micrometres",
    )
)
