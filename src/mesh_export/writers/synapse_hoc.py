"""``<file>.synapses.hoc``: an ``Exp2Syn`` at each placed input synapse of a morphology, and a
``NetStim`` per presynaptic partner to drive them (opt-in: ``SynapseOptions(hoc=True)``,
``--synapse-hoc``).

A companion file rather than a ``synapses()`` proc in the cell's template, because the
synapses sit on sections named as NEURON's Import3d names them, which our hoc template and an
Import3d load of our SWC share: one file serves a cell built either way (any hoc object with
those sections: our template, BMTK's ``Biophys1``, a template of the user's that instantiates
Import3d into itself), the morphology file stays byte for byte what it is without synapses,
and a cell can be loaded with no synapses at all. (A cell Import3d instantiates into a
*Python* object is out of hoc's reach: place synapses on it from the table's
``section``/``section_x`` columns.)

The file holds one template, named after the cell's (``Cell_<root id>_synapses``), taking the
cell object::

    h.load_file("cell.hoc"); h.load_file("cell.hoc.synapses.hoc")
    cell = h.Cell_<root id>()
    inputs = h.Cell_<root id>_synapses(cell)
    inputs.drive(10, 5, 20, 0)   # each partner: 5 spikes from 10 ms, every 20 ms, regular

``syn`` (List of Exp2Syn, the table's placed input rows in table order), ``synapse_id``,
``syn_partner`` (Vectors: the row's id and its partner's index per synapse), ``stim`` (List of
NetStim, one per partner, silent until ``drive``), ``partner`` (List of String: the partner
root ids, as text: 64-bit ids do not fit a hoc number), ``netcon`` (List of NetCon, one per
synapse); ``tau1``, ``tau2`` (ms), ``e`` (mV) as set by ``init``, ``set_weight(uS)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mesh_export.core.atomic import atomic_output, check_target
from mesh_export.core.synapses import INPUT

__all__ = ["synapse_hoc_path", "write_synapse_hoc", "TAU1_MS", "TAU2_MS", "E_MV", "WEIGHT_US", "DELAY_MS"]

#: Exp2Syn defaults: an AMPA-like conductance (rise 0.5 ms, decay 3 ms, reversal 0 mV)
#: and 0.5 nS per synapse, 1 ms from a partner's spike to the conductance.
TAU1_MS, TAU2_MS, E_MV = 0.5, 3.0, 0.0
WEIGHT_US, DELAY_MS = 0.0005, 1.0
#: Statements per hoc procedure (one procedure per chunk keeps NEURON's parse flat).
_LINES_PER_PROC = 2000


def synapse_hoc_path(morphology: str | os.PathLike) -> Path:
    """``<file>.synapses.hoc`` beside the morphology ``<file>``."""
    morphology = Path(morphology)
    return morphology.with_name(morphology.name + ".synapses.hoc")


def write_synapse_hoc(skeleton, morphology: str | os.PathLike, *, template: str | None = None,
                      overwrite: bool = False) -> tuple[Path, int]:
    """Write the companion of ``morphology`` for ``skeleton.synapses`` (atomically): its path
    and the number of Exp2Syn it makes (the placed input rows). ``template``: the cell's
    template name (default as the hoc writer names it); the file's is that + ``_synapses``."""
    from mesh_export.writers.hoc import template_name
    from mesh_export.writers.synapse_table import synapse_sections

    target = check_target(synapse_hoc_path(morphology), overwrite)
    name = (template or template_name(skeleton, morphology)) + "_synapses"
    table = skeleton.synapses
    places = synapse_sections(skeleton)
    inputs = np.flatnonzero(table.placed & (table.direction == INPUT))
    partners, partner_of = np.unique(table.partner[inputs], return_inverse=True)
    ids = table.rows.ids[inputs]

    lines = [f"  cell_.{places.section[row]} add({places.x[row]:.6f}, {int(k)}, {int(i)})\n"
             for row, k, i in zip(inputs, partner_of, ids)]
    chunks = [lines[lo:lo + _LINES_PER_PROC] for lo in range(0, len(lines), _LINES_PER_PROC)]
    partner_lines = [f'  partner.append(new String("{int(p)}"))\n' for p in partners]

    with atomic_output(target, overwrite=overwrite, checked=True) as tmp, open(tmp, "w") as out:
        out.write(f"// Exp2Syn at the {len(inputs)} placed input synapses of {Path(morphology).name} "
                  f"(from {Path(morphology).name}.synapses.*), one NetStim per partner ({len(partners)})\n")
        out.write("// sections as NEURON names them on our hoc template and on Import3d of our SWC\n")
        out.write(f"// load: h.load_file(\"<this file>\"); inputs = h.{name}(cell); inputs.drive(start, number, "
                  "interval, noise)\n")
        out.write(f"begintemplate {name}\n")
        out.write("public syn, netcon, stim, partner, synapse_id, syn_partner, tau1, tau2, e, drive, set_weight\n")
        out.write("objref cell_, syn, netcon, stim, partner, synapse_id, syn_partner\n")
        out.write(f"proc init() {{ local i  localobj s\n  cell_ = $o1\n  tau1 = {TAU1_MS:g}  tau2 = {TAU2_MS:g}  "
                  f"e = {E_MV:g}\n  syn = new List()  netcon = new List()  stim = new List()  partner = new List()\n"
                  "  synapse_id = new Vector()  syn_partner = new Vector()\n  partners()\n"
                  f"  for i = 0, partner.count - 1 {{\n    s = new NetStim()\n    s.number = 0\n    stim.append(s)\n"
                  "  }\n" + "".join(f"  place_{k}()\n" for k in range(len(chunks))) + "}\n")
        out.write("proc partners() {\n" + "".join(partner_lines) + "}\n")
        out.write("// $1: x on the accessed section, $2: the partner's index, $3: the synapse id\n")
        out.write("proc add() { localobj s, nc\n  s = new Exp2Syn($1)\n  s.tau1 = tau1  s.tau2 = tau2  s.e = e\n"
                  "  syn.append(s)\n  nc = new NetCon(stim.o($2), s)\n"
                  f"  nc.weight = {WEIGHT_US:g}  nc.delay = {DELAY_MS:g}\n"
                  "  netcon.append(nc)\n  syn_partner.append($2)\n  synapse_id.append($3)\n}\n")
        for k, chunk in enumerate(chunks):
            out.write(f"proc place_{k}() {{\n" + "".join(chunk) + "}\n")
        out.write("// every partner: $2 spikes from $1 ms, every $3 ms, noise $4 (0: regular, 1: Poisson)\n")
        out.write("proc drive() { local i\n  for i = 0, stim.count - 1 {\n    stim.o(i).start = $1  "
                  "stim.o(i).number = $2\n    stim.o(i).interval = $3  stim.o(i).noise = $4\n  }\n}\n")
        out.write("// $1: the weight of every synapse (uS)\n")
        out.write("proc set_weight() { local i\n  for i = 0, netcon.count - 1 { netcon.o(i).weight = $1 }\n}\n")
        out.write(f"endtemplate {name}\n")
    return target, len(inputs)
