"""SWC morphologies (NEURON, MorphIO, NeuroM, neuromorpho.org).

What NEURON's Import3d and MorphIO need, every time: ids 1..N, every parent listed before
its child, one root (the soma, type 1; its other points, if any, first), positions and radii
in micrometres, no NaN. Custom types (5 and above) and zero radii are written as they are
(the header says so). Header comments state units, source, root id, tool version and what
reading the input repaired.
"""

from __future__ import annotations

import json

import numpy as np

from mesh_export.writers import _text
from mesh_export.writers.registry import SKELETON, Writer, register_builtin

_OPTIONS = {
    "units": "length units of the file; micrometres (NEURON's convention) unless allow_units",
    "allow_units": "allow units other than micrometres (with a warning)",
}


def _area_text(value, units: str) -> str:
    return f"{value:,.1f} {units}^2"


def morphology_lines(skeleton) -> list[str]:
    """What the skeletonizer found and decided: soma, spines, compartments (header lines)."""
    from mesh_export.core.units import conversion_factor

    meta = skeleton.metadata or {}
    units = skeleton.units
    step = next((s for s in reversed(meta.get("steps", [])) if s.get("step") == "skeletonize"), None) or {}
    to = conversion_factor(step.get("units") or units, units) if units else 1.0
    radius = float(skeleton.radii[0])
    soma_points = int(np.count_nonzero(skeleton.types == 1))
    if soma_points > 1:
        soma = (f"soma: node 1 and {soma_points - 1} more type-1 points ({soma_points} in all, "
                "as NEURON's Import3d builds them from SWC"
                + (": NeuroMorpho's 3-point soma, a sphere" if _neuromorpho_three_points(skeleton) else "")
                + ")")
    else:
        soma = f"soma: node 1 (type 1, single-point soma, radius {radius:.4f} {units}"
        if step.get("soma_area"):
            soma += (f", the sphere with the soma region's surface area, "
                     f"{_area_text(step['soma_area'] * to * to, units)}")
        soma += ")"
    lines = [soma]
    custom = sorted(set(np.unique(skeleton.types).tolist()) - {1, 2, 3, 4})
    if custom:
        lines.append("custom types: " + ", ".join(f"{t} (NEURON's Import3d names them dend_{t}[])" for t in custom))
    zero = int(np.count_nonzero(skeleton.radii == 0))
    if zero:
        lines.append(f"zero radii: {zero} nodes, kept (NEURON reads a zero-diameter point; MorphIO warns)")
    for repair in meta.get("repairs", []):
        lines.append(f"repaired on reading: {repair}")
    if step.get("method") == "wavefront":
        where = step.get("soma_source") or "mesh"
        lines.append("soma from: " + ("the mesh (the thickest part and the region around it)" if where == "mesh"
                                      else "the point given (--soma)" if where == "given" else where))
    aside = step.get("set_aside")
    if aside is not None:
        inner, sheets = aside.get("inner_surfaces") or {}, aside.get("sheets") or {}
        if inner.get("count") or sheets.get("count"):
            lines.append(f"set aside (not membrane: nothing outside the cell sees them): {inner.get('count', 0)} inner "
                         f"closed surfaces (a nucleus envelope, pockets), {_area_text(inner.get('area', 0.0) * to * to, units)}; "
                         f"{sheets.get('count', 0)} sheets (walls, self-contacts), "
                         f"{_area_text(sheets.get('area', 0.0) * to * to, units)}")
        else:
            lines.append("set aside: nothing (no nucleus envelope, pocket or sheet hidden inside the cell)")
    spines = step.get("spines")
    if spines:
        text = f"spines: {spines['found']} found; {spines['drawn']} drawn as short branches with their own area"
        if spines.get("folded"):
            text += (f"; {spines['folded']} too small to draw on their thick shafts, their area "
                     f"({_area_text(spines['folded_area'] * to * to, units)}) added to their shaft's radius")
        lines.append(text)
    surface = step.get("surface")
    if surface:
        lines.append(f"surface: skeletonized on the mesh's {surface['vertices'][0]:,} vertices clustered into "
                     f"{surface['vertices'][1]:,} on a {surface['cell'] * to:g} {units} grid (pieces and open "
                     f"boundaries kept apart), each carrying its vertices' area, so the model's area is the whole "
                     f"surface's; the {surface['faces'][1]:,} clustered faces' own area differs by "
                     f"{surface['faces_area_change']:+.2%}")
    compartments = meta.get("compartments") or step.get("compartments")
    if compartments:
        if compartments.get("axon"):
            text = f"compartments: axon (type 2) by {compartments.get('method')}"
            if compartments.get("source"):
                text += f" ({compartments['source']}"
                if compartments.get("synapses"):
                    text += f": {compartments['synapses']['pre']} output, {compartments['synapses']['post']} input synapses"
                text += ")"
            if compartments.get("quality") is not None:
                text += f", segregation index {compartments['quality']:.2f}"
            apical_typed = bool((compartments.get("apical") or {}).get("typed"))
            lines.append(text + ("; the dendrites type 3, the apical 4 (below)" if apical_typed else "; the rest type 3"))
        else:
            lines.append("compartments: none typed, every neurite type 3 ("
                         + str(compartments.get("reason") or "no axon found") + ")")
        apical = compartments.get("apical")
        if apical:
            if apical.get("typed"):
                lines.append(f"apical dendrite: type 4 (its trunk {apical['ratio']:.2f} x thicker than any other "
                             f"dendrite's, at least {apical['min_ratio']} x needed)")
            else:
                lines.append(f"apical dendrite: none typed ({apical.get('reason')})")
    if step.get("method") == "CAVE skeleton service":
        lines.append(f"skeleton: {step.get('note') or 'CAVE skeleton service'}")
    if step.get("skeleton_source_note"):
        lines.append(f"skeleton: {step['skeleton_source_note']}")
    return lines


def _neuromorpho_three_points(skeleton) -> bool:
    soma = np.flatnonzero(skeleton.types == 1)
    if len(soma) != 3:
        return False
    root = soma[skeleton.parents[soma] < 0]
    others = soma[skeleton.parents[soma] >= 0]
    return len(root) == 1 and bool((skeleton.parents[others] == root[0]).all()) and \
        bool((skeleton.radii[soma] == skeleton.radii[root[0]]).all())


def header_lines(skeleton, format_name: str) -> list[str]:
    """Comment lines shared by the morphology writers (without comment markers)."""
    from mesh_export._version import __version__

    meta = skeleton.metadata or {}
    source = meta.get("source")
    if isinstance(source, (dict, list)):
        source = json.dumps(source, sort_keys=True, default=str)
    root_id = meta.get("root_id")
    if root_id is None and isinstance(meta.get("source"), dict):
        root_id = meta["source"].get("root_id")
    names = {"um": "micrometres", "nm": "nanometres", "mm": "millimetres", "cm": "centimetres", "m": "metres"}
    lines = [
        f"{format_name} morphology written by mesh-export {__version__}",
        f"units: {skeleton.units} ({names.get(skeleton.units, skeleton.units)}; x, y, z and radius)",
        f"source: {source if source is not None else 'unknown'}",
        f"root id: {root_id if root_id is not None else 'unknown'}",
        *morphology_lines(skeleton),
        f"nodes: {len(skeleton)}; cable length: {skeleton.total_length():.3f} {skeleton.units}",
    ]
    step = next((s for s in reversed(meta.get("steps", [])) if s.get("step") == "skeletonize"), None)
    if step:
        lines.append("skeletonize: " + json.dumps(
            {k: step[k] for k in ("method", "step_length", "units", "heal", "healed_gaps", "dropped_pieces", "soma_given")
             if k in step}, sort_keys=True))
    return [line.replace("\n", " ").replace("\r", " ") for line in lines]


def write_swc(skeleton, path, units: str | None = None, allow_units: bool = False, ascii: bool = True) -> None:
    from mesh_export.writers._neuron_sections import written_form

    written = written_form(skeleton, units, allow_units, "SWC")
    sk, decimals = written.skeleton, written.decimals
    n = len(sk)
    ids = np.arange(1, n + 1, dtype=np.int64)
    parents = np.where(sk.parents >= 0, sk.parents + 1, -1)
    header = header_lines(sk, "SWC") + ["columns: id type x y z radius parent"]
    segments = [
        _text.Int(ids), b" ", _text.Int(sk.types), b" ",
        _text.Fixed(sk.nodes[:, 0], decimals), b" ", _text.Fixed(sk.nodes[:, 1], decimals), b" ",
        _text.Fixed(sk.nodes[:, 2], decimals), b" ", _text.Fixed(sk.radii, decimals), b" ",
        _text.Int(parents), b"\n",
    ]
    with open(path, "xb") as handle:
        handle.write("".join(f"# {line}\n" for line in header).encode())
        _text.write_text(handle, segments, n)


register_builtin(
    Writer(
        name="swc",
        extensions=(".swc",),
        write=write_swc,
        accepts=(SKELETON,),
        modes=("ascii",),
        options=_OPTIONS,
        description="SWC morphology (NEURON Import3d, MorphIO, NeuroM); micrometres",
    )
)
