"""A SONATA circuit directory that BMTK's bionet runs as it is (:func:`write_circuit`).

Many cells into one output, so the data is a :class:`Circuit` (the cells' morphologies, the
synapses onto them as edges, the outside partners as a virtual population, their spikes),
assembled by :mod:`mesh_export.jobs.circuit`; the registry lists it as accepting
``circuit``. The directory::

    circuit_config.json      networks (every population named: libsonata lists only those),
                             components
    simulation_config.json   run, conditions, the input spikes, a soma voltage report
    network/cells_nodes.h5, cells_node_types.csv            one biophysical population (a node
                             type per cell naming its morphology, as BMTK finds it)
    network/inputs_nodes.h5, inputs_node_types.csv          the outside partners (virtual)
    network/cells_cells_edges.h5, ..._edge_types.csv        synapses among the cells
    network/inputs_cells_edges.h5, ..._edge_types.csv       synapses from outside
    inputs/spikes.h5         spike trains that drive the virtual partners
    components/morphologies/<root id>.swc                   our SWC files
    components/templates/mesh_export_cell.hoc                Import3d + passive + Hodgkin-Huxley
    components/synaptic_models/exp2syn.json                  BMTK's exp2syn model
    components/mechanisms/modfiles/vecevent.mod              VecStim (NEURON's wheels lack it)

Edges carry ``afferent_swc_id``/``afferent_swc_pos`` (the node of our SWC file and the fraction
towards its parent: no simulator renumbers them) and ``afferent_section_id``/
``afferent_section_pos``: the index into the cell's ``all`` SectionList as Import3d builds it
from that SWC (types in ascending order, then index: ``soma[0]``, ``axon[..]``, ``dend[..]``,
``apic[..]``) and the place on that section, 0 < x < 1. Every dataset is written uncompressed
(libsonata's PyPI wheels read no gzip). Indices ``source_to_target`` and ``target_to_source``
as the SONATA spec describes them (``node_id_to_ranges``), also linked under the name BMTK
1.2 reads (``node_id_to_range``); the spike file's ``sorting`` is the spec's enum.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mesh_export.model import CIRCUIT
from mesh_export.writers.registry import Writer, register_builtin

__all__ = ["Circuit", "CircuitCell", "Edges", "Biophysics", "afferent_sections", "write_circuit",
           "CELLS", "INPUTS", "TEMPLATE", "VECSTIM_MOD"]

CELLS, INPUTS = "cells", "inputs"  # population names
TEMPLATE = "MeshExportCell"
_FIRST_TYPE = 100  # node type ids of the cells: 100 + their position


@dataclass
class Biophysics:
    """The default cell model, written into the hoc template: passive everywhere (``g_pas``
    S/cm2, ``e_pas`` mV), Hodgkin-Huxley on the soma and axon (NEURON's ``hh`` at its default
    densities), ``Ra`` ohm cm, ``cm`` uF/cm2; Exp2Syn synapses (``tau1``, ``tau2`` ms, ``erev``
    mV); the run: ``tstop``, ``dt`` ms, ``dL`` um per segment at most, ``celsius`` (``hh``'s own
    6.3 degrees: its rates are fitted there), ``v_init`` mV."""

    g_pas: float = 5e-5
    e_pas: float = -65.0
    ra: float = 100.0
    cm: float = 1.0
    tau1: float = 0.5
    tau2: float = 3.0
    erev: float = 0.0
    tstop: float = 1000.0
    dt: float = 0.025
    dl: float = 20.0
    celsius: float = 6.3
    v_init: float = -65.0


@dataclass
class CircuitCell:
    """One cell: its root id, its SWC file (copied into components/morphologies) and its
    soma's position (um)."""

    root_id: int
    morphology: Path
    position: np.ndarray


@dataclass
class Edges:
    """Synapses onto the cells: per edge the source node id (in the source population), the
    target node id, the placement and the synapse's properties (``size`` as the table gives it,
    ``synapse_id`` CAVE's id)."""

    source: np.ndarray
    target: np.ndarray
    section_id: np.ndarray
    section_pos: np.ndarray
    swc_id: np.ndarray
    swc_pos: np.ndarray
    size: np.ndarray
    synapse_id: np.ndarray
    weight: np.ndarray
    delay: np.ndarray

    def __len__(self) -> int:
        return len(self.target)


@dataclass
class Circuit:
    cells: list[CircuitCell]
    partners: np.ndarray  # root ids of the virtual population, node id = position
    recurrent: Edges  # cells -> cells
    external: Edges  # partners -> cells
    spike_nodes: np.ndarray  # virtual node ids
    spike_times: np.ndarray  # ms
    biophysics: Biophysics = field(default_factory=Biophysics)
    info: dict[str, Any] = field(default_factory=dict)


def afferent_sections(skeleton, node: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(section_id, section_pos)`` of points at ``pos`` (0-1) from ``node`` (indices into
    ``skeleton``) towards its parent, as bionet finds them: the index into ``all`` of the
    cell Import3d builds from our SWC of ``skeleton``, and x on that section, 0 < x < 1 (the
    synapse table's one naming: :func:`mesh_export.writers.synapse_table.sections_at`)."""
    from mesh_export.writers.synapse_table import sections_at

    places = sections_at(skeleton, np.asarray(node, dtype=np.int64), np.asarray(pos, dtype=np.float64))
    return places.section_id, places.x


# ------------------------------------------------------------------------------ files

_TEMPLATE_HOC = """\
// mesh-export's default cell for BMTK (model_template "hoc:{name}"): the SWC file loaded by
// NEURON's Import3d (as BMTK's Biophys1 does, so section ids match afferent_section_id),
// passive membrane everywhere and Hodgkin-Huxley channels on the soma and axon.
begintemplate {name}
public init, biophys
public soma, dend, apic, axon
public all, somatic, basal, apical, axonal
objref all, somatic, basal, apical, axonal, nl, i3d, this
create soma[1], dend[1], apic[1], axon[1]

proc init() {{
  all = new SectionList()
  somatic = new SectionList()
  basal = new SectionList()
  apical = new SectionList()
  axonal = new SectionList()
  forall delete_section()
  nl = new Import3d_SWC_read()
  nl.quiet = 1
  nl.input($s1)
  i3d = new Import3d_GUI(nl, 0)
  i3d.instantiate(this)
  biophys()
}}

proc biophys() {{
  forsec all {{
    Ra = {ra}
    cm = {cm}
    insert pas
    g_pas = {g_pas}
    e_pas = {e_pas}
  }}
  forsec somatic {{ insert hh }}
  forsec axonal {{ insert hh }}
}}
endtemplate {name}
"""

#: NEURON's VecStim (nrn's src/nrnoc/vecevent.mod, BSD-3-Clause, as BMTK ships it): bionet's
#: virtual cells play their spikes through it, and NEURON's wheels do not include it.
VECSTIM_MOD = """\
:  Vector stream of events

NEURON {
\tARTIFICIAL_CELL VecStim
}

ASSIGNED {
\tindex
\tetime (ms)
\tspace
}

INITIAL {
\tindex = 0
\telement()
\tif (index > 0) {
\t\tnet_send(etime - t, 1)
\t}
}

NET_RECEIVE (w) {
\tif (flag == 1) {
\t\tnet_event(t)
\t\telement()
\t\tif (index > 0) {
\t\t\tnet_send(etime - t, 1)
\t\t}
\t}
}

VERBATIM
extern double* vector_vec();
extern int vector_capacity();
extern void* vector_arg();
ENDVERBATIM

PROCEDURE element() {
VERBATIM
  { void* vv; int i, size; double* px;
\ti = (int)index;
\tif (i >= 0) {
\t\tvv = *((void**)(&space));
\t\tif (vv) {
\t\t\tsize = vector_capacity(vv);
\t\t\tpx = vector_vec(vv);
\t\t\tif (i < size) {
\t\t\t\tetime = px[i];
\t\t\t\tindex += 1.;
\t\t\t}else{
\t\t\t\tindex = -1.;
\t\t\t}
\t\t}else{
\t\t\tindex = -1.;
\t\t}
\t}
  }
ENDVERBATIM
}

PROCEDURE play() {
VERBATIM
\tvoid** vv;
\tvv = (void**)(&space);
\t*vv = (void*)0;
\tif (ifarg(1)) {
\t\t*vv = vector_arg(1);
\t}
ENDVERBATIM
}
"""


def _dataset(group, name: str, values, dtype=None):
    # No compression, no chunking filters: libsonata's PyPI wheels read no gzip.
    return group.create_dataset(name, data=np.asarray(values, dtype=dtype))


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    # SONATA's type files are space-separated CSV.
    with open(path, "x") as handle:
        handle.write(" ".join(header) + "\n")
        for row in rows:
            handle.write(" ".join(str(v) for v in row) + "\n")


def _nodes(path: Path, population: str, count: int, columns: dict[str, Any], type_ids=None) -> None:
    import h5py

    with h5py.File(path, "w-") as f:
        f.attrs["version"] = np.array([0, 1], dtype=np.uint32)
        f.attrs["magic"] = np.uint32(0x0A7A)
        pop = f.create_group(f"nodes/{population}")
        _dataset(pop, "node_id", np.arange(count), np.uint64)
        _dataset(pop, "node_type_id", np.full(count, 100) if type_ids is None else type_ids, np.uint64)
        _dataset(pop, "node_group_id", np.zeros(count), np.uint32)
        _dataset(pop, "node_group_index", np.arange(count), np.uint64)
        group = pop.create_group("0")
        group.create_group("dynamics_params")
        for name, values in columns.items():
            _dataset(group, name, values)


def _ranges(node_ids: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The index of ``node_ids`` (one per edge): edges sorted by node, each node's run of
    ranges (``node_id_to_ranges``, [start, end) rows of ``range_to_edge_id``) and the ranges
    of edge ids ([start, end))."""
    order = np.argsort(node_ids, kind="stable")
    sorted_ids = node_ids[order]
    # A range is a run of consecutive edge ids of one node.
    breaks = np.flatnonzero((np.diff(sorted_ids) != 0) | (np.diff(order) != 1)) + 1
    starts = np.concatenate([[0], breaks]) if len(order) else np.zeros(0, np.int64)
    ends = np.concatenate([breaks, [len(order)]]) if len(order) else np.zeros(0, np.int64)
    range_to_edge = np.stack([order[starts], order[ends - 1] + 1], axis=1) if len(order) else np.zeros((0, 2))
    range_node = sorted_ids[starts] if len(order) else np.zeros(0, np.int64)
    first = np.searchsorted(range_node, np.arange(count), side="left")
    last = np.searchsorted(range_node, np.arange(count), side="right")
    node_to_ranges = np.stack([first, last], axis=1)
    node_to_ranges[first == last] = 0  # no edges: an empty range, as the spec writes it
    return order, node_to_ranges, range_to_edge


def _edges(path: Path, population: str, source_pop: str, target_pop: str, edges: Edges,
           n_source: int, n_target: int) -> None:
    import h5py

    # Sorted by target (then source), as BMTK's builder writes them: each cell's synapses together.
    order = np.lexsort((edges.source, edges.target))
    source, target = edges.source[order], edges.target[order]
    with h5py.File(path, "w-") as f:
        f.attrs["version"] = np.array([0, 1], dtype=np.uint32)
        f.attrs["magic"] = np.uint32(0x0A7A)
        pop = f.create_group(f"edges/{population}")
        _dataset(pop, "source_node_id", source, np.uint64).attrs["node_population"] = source_pop
        _dataset(pop, "target_node_id", target, np.uint64).attrs["node_population"] = target_pop
        _dataset(pop, "edge_type_id", np.full(len(order), 100), np.uint64)
        _dataset(pop, "edge_group_id", np.zeros(len(order)), np.uint32)
        _dataset(pop, "edge_group_index", np.arange(len(order)), np.uint64)
        group = pop.create_group("0")
        group.create_group("dynamics_params")
        _dataset(group, "afferent_section_id", edges.section_id[order], np.int64)
        _dataset(group, "afferent_section_pos", edges.section_pos[order], np.float64)
        _dataset(group, "afferent_swc_id", edges.swc_id[order], np.int64)
        _dataset(group, "afferent_swc_pos", edges.swc_pos[order], np.float64)
        _dataset(group, "syn_weight", edges.weight[order], np.float64)
        _dataset(group, "delay", edges.delay[order], np.float64)
        _dataset(group, "size", edges.size[order], np.float64)
        _dataset(group, "synapse_id", edges.synapse_id[order], np.int64)
        for name, ids, count in (("source_to_target", source, n_source), ("target_to_source", target, n_target)):
            _, node_to_ranges, range_to_edge = _ranges(ids, count)
            index = pop.create_group(f"indices/{name}")
            _dataset(index, "node_id_to_ranges", node_to_ranges, np.uint64)
            # BMTK (1.2) reads the index under the singular name: a hard link, not a copy
            index["node_id_to_range"] = index["node_id_to_ranges"]
            _dataset(index, "range_to_edge_id", range_to_edge, np.uint64)


def _spikes(path: Path, population: str, nodes: np.ndarray, times: np.ndarray) -> None:
    import h5py

    order = np.lexsort((nodes, times))
    with h5py.File(path, "w-") as f:
        group = f.create_group(f"spikes/{population}")
        # SONATA's enum (libsonata reads no string here; BMTK reads the enum as "unknown" and sorts)
        sorting = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype="u1")
        group.attrs.create("sorting", 2, dtype=sorting)
        _dataset(group, "timestamps", times[order], np.float64).attrs["units"] = "ms"
        _dataset(group, "node_ids", nodes[order], np.uint64)


def _configs(directory: Path, circuit: Circuit) -> None:
    bio = circuit.biophysics
    network = {
        "manifest": {"$BASE_DIR": ".", "$NETWORK_DIR": "$BASE_DIR/network", "$COMPONENTS_DIR": "$BASE_DIR/components"},
        "components": {
            "morphologies_dir": "$COMPONENTS_DIR/morphologies",
            "synaptic_models_dir": "$COMPONENTS_DIR/synaptic_models",
            "templates_dir": "$COMPONENTS_DIR/templates",
            # SONATA asks it of a biophysical population; our model is the hoc template
            "biophysical_neuron_models_dir": "$COMPONENTS_DIR/templates",
            "mechanisms_dir": "$COMPONENTS_DIR/mechanisms",
        },
        "networks": {
            "nodes": [
                {"nodes_file": f"$NETWORK_DIR/{CELLS}_nodes.h5", "node_types_file": f"$NETWORK_DIR/{CELLS}_node_types.csv",
                 "populations": {CELLS: {"type": "biophysical"}}},
                {"nodes_file": f"$NETWORK_DIR/{INPUTS}_nodes.h5", "node_types_file": f"$NETWORK_DIR/{INPUTS}_node_types.csv",
                 "populations": {INPUTS: {"type": "virtual"}}},
            ],
            "edges": [
                {"edges_file": f"$NETWORK_DIR/{src}_{CELLS}_edges.h5",
                 "edge_types_file": f"$NETWORK_DIR/{src}_{CELLS}_edge_types.csv",
                 "populations": {f"{src}__{CELLS}": {"type": "chemical"}}}
                for src in (CELLS, INPUTS)
            ],
        },
    }
    simulation = {
        "manifest": {"$BASE_DIR": ".", "$OUTPUT_DIR": "$BASE_DIR/output", "$INPUT_DIR": "$BASE_DIR/inputs"},
        "target_simulator": "NEURON",
        "network": "$BASE_DIR/circuit_config.json",
        "run": {"tstart": 0.0, "tstop": bio.tstop, "dt": bio.dt, "dL": bio.dl, "spike_threshold": -15.0,
                "nsteps_block": 5000},
        "conditions": {"celsius": bio.celsius, "v_init": bio.v_init},
        "inputs": {"partner_spikes": {"input_type": "spikes", "module": "sonata",
                                      "input_file": "$INPUT_DIR/spikes.h5", "node_set": INPUTS}},
        "output": {"log_file": "log.txt", "output_dir": "$OUTPUT_DIR", "spikes_file": "spikes.h5",
                   "overwrite_output_dir": True},
        "reports": {"soma_v": {"cells": CELLS, "variable_name": "v", "module": "membrane_report",
                               "sections": "soma"}},
    }
    (directory / "circuit_config.json").write_text(json.dumps(network, indent=2) + "\n")
    (directory / "simulation_config.json").write_text(json.dumps(simulation, indent=2) + "\n")


def write_circuit(circuit: Circuit, path: str | os.PathLike) -> None:
    """Write ``circuit`` as a new directory ``path`` (which must not exist: the caller writes
    to a temporary name and renames it)."""
    root = Path(path)
    root.mkdir()
    network, inputs, components = root / "network", root / "inputs", root / "components"
    for folder in (network, inputs, components / "morphologies", components / "templates",
                   components / "synaptic_models", components / "mechanisms" / "modfiles"):
        folder.mkdir(parents=True)
    bio = circuit.biophysics

    # A node type per cell, which names its morphology: BMTK finds a morphology in
    # morphologies_dir only when the node types table names it (a node's own ``morphology``
    # column is opened as it is, relative to wherever the simulation runs).
    types = []
    for k, cell in enumerate(circuit.cells):
        name = f"{cell.root_id}.swc"
        shutil.copyfile(cell.morphology, components / "morphologies" / name)
        types.append([_FIRST_TYPE + k, "biophysical", f"hoc:{TEMPLATE}", f"cell_{cell.root_id}", name])
    positions = np.array([c.position for c in circuit.cells], dtype=np.float64).reshape(-1, 3)
    _nodes(network / f"{CELLS}_nodes.h5", CELLS, len(circuit.cells),
           {"x": positions[:, 0], "y": positions[:, 1], "z": positions[:, 2],
            "root_id": np.array([c.root_id for c in circuit.cells], dtype=np.int64)},
           type_ids=np.arange(len(circuit.cells)) + _FIRST_TYPE)
    _csv(network / f"{CELLS}_node_types.csv",
         ["node_type_id", "model_type", "model_template", "model_name", "morphology"], types)
    _nodes(network / f"{INPUTS}_nodes.h5", INPUTS, len(circuit.partners),
           {"root_id": np.asarray(circuit.partners, dtype=np.int64)})
    _csv(network / f"{INPUTS}_node_types.csv", ["node_type_id", "model_type", "model_name"],
         [[100, "virtual", "connectome_partner"]])
    for src, edges, n_source in ((CELLS, circuit.recurrent, len(circuit.cells)),
                                 (INPUTS, circuit.external, len(circuit.partners))):
        _edges(network / f"{src}_{CELLS}_edges.h5", f"{src}__{CELLS}", src, CELLS, edges, n_source,
               len(circuit.cells))
        _csv(network / f"{src}_{CELLS}_edge_types.csv", ["edge_type_id", "model_template", "dynamics_params"],
             [[100, "exp2syn", "exp2syn.json"]])
    _spikes(inputs / "spikes.h5", INPUTS, np.asarray(circuit.spike_nodes), np.asarray(circuit.spike_times))

    (components / "templates" / "mesh_export_cell.hoc").write_text(_TEMPLATE_HOC.format(
        name=TEMPLATE, ra=bio.ra, cm=bio.cm, g_pas=bio.g_pas, e_pas=bio.e_pas))
    (components / "synaptic_models" / "exp2syn.json").write_text(json.dumps(
        {"level_of_detail": "exp2syn", "tau1": bio.tau1, "tau2": bio.tau2, "erev": bio.erev}, indent=2) + "\n")
    (components / "mechanisms" / "modfiles" / "vecevent.mod").write_text(VECSTIM_MOD)
    _configs(root, circuit)


register_builtin(
    Writer(
        name="sonata",
        extensions=(),
        write=write_circuit,
        accepts=(CIRCUIT,),
        description="SONATA circuit directory for BMTK's bionet: many cells, their synapses as edges, "
                    "outside partners as virtual spike sources",
    )
)
