"""NEURON hoc template: ``soma`` and ``dend[]`` sections, ``connect`` and ``pt3dadd``.

Sections follow what NEURON's Import3d makes of the same tree in SWC (so both give the
same membrane area): a single-point soma becomes a cylinder 2r long and 2r wide; each
unbranched stretch of the tree is one ``dend`` section whose first 3-D point repeats its
parent's branch point, except for sections starting on the soma. Load it with
``h.load_file("cell.hoc")`` and instantiate ``h.MeshExportCell()`` (name via ``template``).
"""

from __future__ import annotations

import re

import numpy as np

from mesh_export.writers import _text
from mesh_export.writers.registry import SKELETON, Writer, register
from mesh_export.writers.swc import header_lines

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Statements per hoc procedure: NEURON's parser handles big procedures, but splitting keeps
# memory and parse time flat (NEURON's own exported cells do the same).
_LINES_PER_PROC = 2000
_LIST_FOR_TYPE = {2: "axonal", 3: "basal", 4: "apical"}

_OPTIONS = {
    "units": "length units of the file; micrometres (NEURON's convention) unless allow_units",
    "allow_units": "allow units other than micrometres (with a warning)",
    "template": "name of the hoc template (default MeshExportCell)",
}


def sections(sk):
    """Split a sorted skeleton (root = soma = node 0) into unbranched sections.

    Returns (section index per node, -1 for the soma; start node of each section;
    parent section of each section, -1 for the soma).
    """
    n = len(sk)
    kids = np.bincount(sk.parents[1:], minlength=n)
    parent = np.maximum(sk.parents, 0)
    start = np.zeros(n, dtype=bool)
    start[1:] = (sk.parents[1:] == 0) | (kids[parent[1:]] > 1)
    section = np.cumsum(start) - 1
    section[0] = -1
    starts = np.flatnonzero(start)
    parent_section = section[sk.parents[starts]]
    return section, starts, parent_section


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
    from mesh_export.errors import InvalidArgumentError
    from mesh_export.model import as_skeleton_for_writing

    name = template or "MeshExportCell"
    if not _IDENTIFIER.match(name):
        raise InvalidArgumentError(f"hoc template name {name!r} is not a hoc identifier")
    sk = as_skeleton_for_writing(skeleton, units, allow_units, "hoc")
    section, starts, parent_section = sections(sk)
    nsec = len(starts)
    diam = 2.0 * sk.radii
    decimals = _text.morphology_decimals(np.concatenate([sk.nodes.reshape(-1), sk.radii]), float(sk.radii.min()))

    # 3-D points: every neurite node, preceded at a branch by its parent's point.
    nodes = np.arange(1, len(sk))
    repeat = starts[sk.parents[starts] != 0]
    keys = np.concatenate([2 * nodes + 1, 2 * repeat])
    point_node = np.concatenate([nodes, sk.parents[repeat]])
    point_section = np.concatenate([section[nodes], section[repeat]])
    order = np.argsort(keys, kind="stable")
    point_node, point_section = point_node[order], point_section[order]
    xyz = sk.nodes[point_node]

    soma_x, soma_y, soma_z = sk.nodes[0]
    r = float(sk.radii[0])
    fmt = f"{{:.{decimals}f}}"
    soma_points = "".join(
        f"  soma pt3dadd({fmt.format(x)}, {fmt.format(soma_y)}, {fmt.format(soma_z)}, {fmt.format(2 * r)})\n"
        for x in (soma_x - r, soma_x, soma_x + r)
    )
    types = sk.types[starts] if nsec else np.zeros(0, dtype=np.int64)
    lists = sorted({_LIST_FOR_TYPE[int(t)] for t in np.unique(types)})

    with open(path, "xb") as handle:
        head = header_lines(sk, "NEURON hoc")
        head.append(f'load: h.load_file("<this file>"); cell = h.{name}()  (keep a reference to cell)')
        handle.write("".join(f"// {line}\n" for line in head).encode())
        handle.write(f"begintemplate {name}\n".encode())
        # hoc cannot create an empty array: a soma-only cell has no dend.
        dend = ", dend" if nsec else ""
        handle.write(f"public soma{dend}, all, somatic, axonal, basal, apical, nsections\n".encode())
        handle.write(b"objref all, somatic, axonal, basal, apical\n")
        handle.write((f"create soma, dend[{nsec}]\n" if nsec else "create soma\n").encode())
        handle.write(b"nsections = 0\n")
        handle.write(b"proc init() {\n  nsections = %d\n  topol()\n  basic_shape()\n  subsets()\n  geom_nseg()\n}\n" % nsec)
        # connect child(0), parent(1); sections on the soma attach at its middle.
        on_soma = parent_section < 0
        topo_chunks = []
        if on_soma.any():
            idx = np.flatnonzero(on_soma)
            topo_chunks.append(([b"  connect dend[", _text.Int(idx), b"](0), soma(0.5)\n"], len(idx)))
        if (~on_soma).any():
            idx = np.flatnonzero(~on_soma)
            topo_chunks.append(([b"  connect dend[", _text.Int(idx), b"](0), dend[",
                                 _text.Int(parent_section[idx]), b"](1)\n"], len(idx)))
        _procs(handle, "topol", topo_chunks or [([b"  \n"], 0)])
        handle.write(b"proc shape_soma() {\n  soma pt3dclear()\n" + soma_points.encode() + b"}\n")
        point_segments = [
            b"  dend[", _text.Int(point_section), b"] pt3dadd(",
            _text.Fixed(xyz[:, 0], decimals), b", ", _text.Fixed(xyz[:, 1], decimals), b", ",
            _text.Fixed(xyz[:, 2], decimals), b", ", _text.Fixed(diam[point_node], decimals), b")\n",
        ]
        _procs(handle, "shape_dend", [(point_segments, len(point_node))])
        handle.write(b"proc basic_shape() {\n  shape_soma()\n  shape_dend()\n}\n")
        list_chunks = []
        for list_name in lists:
            t = next(k for k, v in _LIST_FOR_TYPE.items() if v == list_name)
            idx = np.flatnonzero(types == t)
            list_chunks.append(([b"  dend[", _text.Int(idx), f"] {list_name}.append()\n".encode()], len(idx)))
        _procs(handle, "subsets_dend", list_chunks)
        handle.write(
            b"proc subsets() {\n"
            b"  all = new SectionList()\n  somatic = new SectionList()\n  axonal = new SectionList()\n"
            b"  basal = new SectionList()\n  apical = new SectionList()\n"
            b"  soma somatic.append()\n"
            b"  subsets_dend()\n"
            b"  forsec somatic all.append()\n  forsec axonal all.append()\n"
            b"  forsec basal all.append()\n  forsec apical all.append()\n"
            b"}\n"
        )
        # Odd nseg, about one segment per 40 um (an explicit d_lambda rule needs Ra and cm
        # the user has not chosen yet).
        handle.write(b"proc geom_nseg() {\n  forsec all { nseg = 1 + 2 * int(L / 40) }\n}\n")
        handle.write(f"endtemplate {name}\n".encode())


register(
    Writer(
        name="hoc",
        extensions=(".hoc",),
        write=write_hoc,
        accepts=(SKELETON,),
        modes=("ascii",),
        options=_OPTIONS,
        description="NEURON hoc template (soma, dend[], connect, pt3dadd); micrometres",
    )
)
