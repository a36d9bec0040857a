"""What NEURON's Import3d makes of an SWC file: its sections, their names, 3-D points and
connections, so that our hoc file is that same cell, a node's (section, x) holds on both and a
skeleton's membrane area is NEURON's. Pure numbers in, sections out (no Skeleton, no files):
here, below the model, so that ``Skeleton.membrane_area`` and the writers share it.

A line-by-line port of ``Import3d_SWC_read`` (``sectionify``, ``mark_branch``, ``mksection``)
and of ``Import3d_GUI.instantiate`` (``chk_valid``, ``set_nameindex``, ``sphere_rep``) from
NEURON 9's ``share/nrn/lib/hoc/import3d``: the rules are order-dependent (a child listed
out of its parent's run starts a new section, NeuroMorpho's 3-point soma is recognised only
as the file's first three points, one-point and zero-length sections are dropped), so they
are followed as written rather than re-derived. It works on the numbers as the SWC file
stores them (rounded to the written decimals), as Import3d reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

_NAMES = {1: "soma", 2: "axon", 3: "dend", 4: "apic"}
_LISTS = {1: "somatic", 2: "axonal", 3: "basal", 4: "apical"}


def type_name(swc_type: int) -> str:
    """Import3d's section name for an SWC type (``dend_5`` for a custom type 5)."""
    return _NAMES.get(int(swc_type), f"dend_{int(swc_type)}")


def list_name(swc_type: int) -> str:
    """Import3d's SectionList for an SWC type (``dendritic_5`` for a custom type 5)."""
    return _LISTS.get(int(swc_type), f"dendritic_{int(swc_type)}")


class Places(NamedTuple):
    """Import3d's sections, and for each node: its section's position in ``sections``, its
    ``x`` there and ``x_toward_parent``, the x of the point before it in that section (its
    parent's point; the node's own x where the section starts at the node, as one joined to
    the soma by a wire does)."""

    sections: list
    section: np.ndarray
    x: np.ndarray
    x_toward_parent: np.ndarray


@dataclass
class Section:
    """One NEURON section: ``points`` node indices of its 3-D points in order (one point:
    a sphere, drawn as three), ``diams`` their diameters, ``parent`` the parent section's
    position in the list (-1: the root), ``parentx`` where on it, ``wire`` the node whose point
    NEURON keeps as the logical start (``pt3dstyle``) when the section joins by a wire, else -1.
    ``name`` and ``index`` as Import3d names it (``dend``, 12)."""

    type: int
    points: list
    diams: list
    parent: int
    parentx: float
    wire: int
    name: str = ""
    index: int = 0


def three_point_soma(types, parents, xyz, diam) -> bool:
    """Whether Import3d reads a sorted tree's soma as NeuroMorpho's 3-point soma: nodes 1 and 2
    soma points on the root, of its diameter, together as long as it is wide; Import3d then
    makes the soma one sphere at the root of that diameter (nodes 1 and 2 are only its drawing).
    (Import3d also asks that these be the only soma points and have no children.)"""
    if len(types) < 3 or not (int(types[0]) == int(types[1]) == int(types[2]) == 1):
        return False
    if int(parents[1]) != 0 or int(parents[2]) != 0:
        return False
    d = [float(diam[k]) for k in range(3)]
    if d[1] != d[0] or d[2] != d[0] or d[0] <= 0:
        return False
    p = [[float(v) for v in xyz[k]] for k in range(3)]
    length = sum(sum((p[i][k] - p[0][k]) ** 2 for k in range(3)) ** 0.5 for i in (1, 2))
    return abs(length / d[0] - 1) < .01


def import3d_sections(types, parents, xyz, diam):
    """Sections of a sorted tree (node 0 the root, every parent before its child) as Import3d
    builds them from the same SWC, and for each node the section it lies in (-1: in a section
    Import3d dropped; such a node's place is its section's parent at ``parentx``).

    ``types``, ``parents`` (indices), ``xyz`` (n, 3) and ``diam`` (n,) as the file stores them.
    Returns :class:`Places`.
    """
    types = [int(t) for t in types]
    pid = [int(p) for p in parents]
    x, y, z = (xyz[:, k].tolist() for k in range(3))
    d = [float(v) for v in diam]
    n = len(types)

    # mark_branch: a point ends a section unless it has exactly one contiguous child of its type.
    nchild = [0.0] * n
    connect2prox = [False] * n
    for i in range(n):
        p = pid[i]
        if p < 0:
            continue
        nchild[p] += 1
        if p != i - 1:
            nchild[p] += .01
            if p > 1:
                if types[p] != 1 and types[pid[p]] == 1:
                    connect2prox[i] = True
                    nchild[p] = 1
            elif p == 0 and types[p] != 1:
                connect2prox[i] = True
                nchild[p] = 1
        if types[p] != types[i]:
            nchild[p] += .01

    # sectionify
    nchild_soma = [0] * n
    nsoma_pts = 1 if types[0] == 1 else 0
    for i in range(1, n):
        if types[i] == 1:
            nsoma_pts += 1
            p = pid[i]
            if p >= 0 and types[p] == 1:
                nchild_soma[p] += 1
    soma3geom = nsoma_pts == 3 and nchild[1] == 0 and nchild[2] == 0 and three_point_soma(types, pid, xyz, d)
    if soma3geom:
        pid[2] = 1
    for i in range(n - 1):
        if types[i] == 1 and types[i + 1] == 1 and pid[i + 1] == i:
            if not (i != 0 and nchild_soma[i] > 1):
                nchild[i] = 1
    ends = [i for i in range(n) if nchild[i] != 1]
    point2sec = [0] * n
    si = 0
    for i in range(1, n):
        if i > ends[si]:
            si += 1
        point2sec[i] = si

    # mksections
    starts = [0] + [i for i in range(1, n) if point2sec[i] != point2sec[i - 1]]
    bounds = list(zip(starts, starts[1:] + [n]))
    raw = []  # per section: type, raw point nodes, diams, parent section, parentx, first
    for isec, (first, stop) in enumerate(bounds):
        if isec == 0:
            own = [0] if soma3geom else list(range(first, stop))
            sec = {"type": types[first], "pts": own, "d": [d[k] for k in own], "parent": -1, "parentx": 1.0,
                   "first": 0}
        else:
            p = pid[first]
            psec = point2sec[p]
            pts = [p] + list(range(first, stop))
            sec = {"type": types[first], "pts": pts, "d": [d[k] for k in pts], "parent": psec, "parentx": 1.0,
                   "first": 0}
            parent_sec = raw[psec]
            psec_type = parent_sec["type"]
            psec_id, psec_size = bounds[psec][0], len(parent_sec["pts"])
            den_con_soma = psec_type == 1 and types[first] != 1
            con_soma = psec_type == 1
            handled = False
            if psec == 0:
                handled = True
                if den_con_soma and psec_size == 1:
                    sec["parentx"] = 0.5
                    if stop - first > 1:
                        sec["first"] = 1
                elif p == psec_id:
                    sec["parentx"] = 0.0
                    if types[first] != 1 and nchild_soma[p] > 1:
                        sec["first"] = 1
                else:
                    handled = False
            if not handled and con_soma:
                offset = -1 if psec_id == 0 else -2
                if p < psec_id + psec_size + offset:
                    sec["parentx"] = 0.5
                    if den_con_soma and stop - first > 1:
                        sec["first"] = 1
                elif stop - first > 1 and nchild_soma[p] > 1 and types[first] != 1:
                    sec["first"] = 1
            if psec_type == 1 and sec["type"] != 1:
                sec["d"][0] = sec["d"][1]
            if connect2prox[first]:
                sec["parentx"] = 0.0
        raw.append(sec)

    # chk_valid: drop one-point and zero-length two-point sections, children reattached (a
    # child always follows its parent in the list, so Import3d's scan of the later sections
    # finds exactly the children).
    children: list[list[int]] = [[] for _ in raw]
    for r, sec in enumerate(raw):
        if sec["parent"] >= 0:
            children[sec["parent"]].append(r)
    for i in range(len(raw) - 1, -1, -1):
        sec = raw[i]
        if sec["parent"] < 0:
            continue
        count = len(sec["pts"]) - sec["first"]
        drop = count <= 1
        if not drop and count <= 2:
            a, b = sec["pts"][sec["first"]], sec["pts"][sec["first"] + 1]
            drop = x[a] == x[b] and y[a] == y[b] and z[a] == z[b]
        if drop:
            for j in children[i]:
                raw[j]["parent"] = sec["parent"]
                raw[j]["parentx"] = sec["parentx"]
            children[sec["parent"]].extend(children[i])
            sec["dropped"] = True
    alive = [r for r, sec in enumerate(raw) if not sec.get("dropped")]

    final_of_raw = {r: k for k, r in enumerate(alive)}
    counts: dict[int, int] = {}
    sections = []
    for r in alive:
        sec = raw[r]
        index = counts.get(sec["type"], 0)
        counts[sec["type"]] = index + 1
        first = sec["first"]
        sections.append(Section(
            type=sec["type"], points=sec["pts"][first:], diams=sec["d"][first:],
            parent=final_of_raw[sec["parent"]] if sec["parent"] >= 0 else -1, parentx=sec["parentx"],
            wire=sec["pts"][0] if first == 1 else -1, name=type_name(sec["type"]), index=index))
    # Each node's place: its own 3-D point in its section; a node of a dropped section sits
    # where that section's children were reattached (its parent, at its parentx).
    place = np.empty(n, dtype=np.int64)
    where = np.full(n, 0.5)
    for i in range(n):
        r = point2sec[i]
        x_at = None
        while raw[r].get("dropped"):
            x_at = raw[r]["parentx"] if x_at is None else x_at
            r = raw[r]["parent"]
        place[i] = final_of_raw[r]
        if x_at is not None:
            where[i] = x_at
    xyz = np.asarray(xyz, dtype=np.float64)
    toward_parent = where.copy()
    for k, sec in enumerate(sections):
        pts = np.asarray(sec.points)
        if len(pts) == 1:
            continue  # a sphere: its centre at 0.5
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xyz[pts], axis=0), axis=1))])
        frac = arc / arc[-1] if arc[-1] > 0 else np.linspace(0.0, 1.0, len(pts))
        own = (place[pts] == k) & np.array([point2sec[int(q)] == alive[k] for q in pts])
        where[pts[own]] = frac[own]
        previous = np.concatenate([frac[:1], frac[:-1]])  # a section's first point has none before it
        toward_parent[pts[own]] = previous[own]
    return Places(sections, place, where, toward_parent)


def section_area(sec: Section, xyz) -> float:
    """NEURON's membrane area of a section: the frustums between its 3-D points (a sphere's
    three points along x: a cylinder as long as wide, 4 pi r^2)."""
    d = np.asarray(sec.diams, dtype=np.float64)
    if len(sec.points) == 1:
        return float(np.pi * d[0] * d[0])
    pts = np.asarray(xyz, dtype=np.float64)[np.asarray(sec.points)]
    length = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    r = d / 2
    return float(np.sum(np.pi * (r[1:] + r[:-1]) * np.sqrt(length**2 + (r[1:] - r[:-1]) ** 2)))
