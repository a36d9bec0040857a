"""Circuits in SONATA: five MICrONS-like cells served by a fake CAVE (a graphene layer and a
synapse table in which some of each cell's inputs come from the other four cells, the rest
from outside partners), exported by ``mesh-export ID ... --format sonata`` and through the
API, read by libsonata (nodes, edges, indices, counts against the synapse tables written)
and run by BMTK's bionet for 100 ms in a subprocess (it compiles nothing itself: the circuit
carries VecStim compiled), where each cell driven by its inputs depolarises and every edge's
section and x land on the synapse.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from mesh_export.api import Biophysics, CircuitOptions, SynapseOptions, export_circuit
from support.cells import cache_dir, cached_cell
from support.fake_cave import cells_server, nucleus_frame
from support.synapse_tables import among_cells, cave_frame, concatenated, synapses_of

TOKEN = "0123456789abcdef0123456789abcdef"
TABLES = {"soma_table": "nucleus_detection_v0", "synapse_table": "synapses_pni_2"}
# Small cells (a few seconds to build, half a second to skeletonize), 150 um apart.
SMALL = dict(dendrites=4, dendrite_length=(60.0, 110.0), axon_length=150.0, axon_branches=1, spines_per_um=1.0,
             soma_diameter=10.0, face_area_um2=0.2, debris=2)
SHORT = CircuitOptions(biophysics=Biophysics(tstop=100.0), rate_hz=40.0)


@pytest.fixture(scope="module")
def root_ids():
    from support.neurons import make_root_ids

    return make_root_ids(5, 4242)


@pytest.fixture(scope="module")
def cells(request):
    return [cached_cell(cache_dir(request), seed=20 + k, name=f"c{k}", offset_um=(600.0 + 150.0 * k, 480.0, 820.0),
                        **SMALL) for k in range(5)]


@pytest.fixture(scope="module")
def truths(cells, root_ids):
    return among_cells([synapses_of(cell, rid, seed=k) for k, (cell, rid) in enumerate(zip(cells, root_ids))])


@pytest.fixture(scope="module")
def served(cells, root_ids, truths, tmp_path_factory):
    meshes = dict(zip(root_ids, (c.mesh for c in cells)))
    with cells_server(tmp_path_factory.mktemp("sonata-cells"), meshes, TOKEN, {"syn": TABLES}) as server:
        fake = server.fakes["syn"]
        fake.add_table("nucleus_detection_v0", nucleus_frame([(r, c.nucleus, 280.0) for r, c in zip(root_ids, cells)]),
                       schema="nucleus_detection")
        fake.add_table("synapses_pni_2", cave_frame(concatenated(truths)))
        yield server


@pytest.fixture()
def srv(served):
    with served.fresh():
        yield served


def _cli_args(srv, tmp_path):
    return ["--datastack", "syn", "--server", srv.url, "--token", TOKEN, "--cache-dir", str(tmp_path / "cache")]


@pytest.fixture(scope="module")
def circuit(served, root_ids, tmp_path_factory):
    """The five cells' circuit, exported through the CLI (100 ms, 40 Hz partners)."""
    base = tmp_path_factory.mktemp("circuit")
    out = base / "circuit"
    with served.fresh():
        result = export_circuit(root_ids, out_dir=out, datastack="syn", server=served.url, token=TOKEN,
                                cache_dir=base / "cache", circuit=SHORT, timeout=20.0)
    assert result.exit_code == 0, result.batch.summary_table()
    return result


def _tables(cells_dir: Path, root_ids) -> dict[int, pd.DataFrame]:
    from mesh_export.writers.synapse_table import read_synapse_table

    return {r: read_synapse_table(next(cells_dir.glob(f"{r}_lod*.swc.synapses.csv"))) for r in root_ids}


def test_libsonata_reads_the_circuit_and_its_counts_are_the_tables(circuit, root_ids, truths):
    import h5py
    import libsonata

    out = circuit.output
    config = libsonata.CircuitConfig.from_file(out / "circuit_config.json")
    assert set(config.node_populations) == {"cells", "inputs"}
    assert set(config.edge_populations) == {"cells__cells", "inputs__cells"}
    nodes = config.node_population("cells")
    assert nodes.size == 5
    assert nodes.get_attribute("root_id", nodes.select_all()).tolist() == list(root_ids)
    # each node's morphology: named by its node type (where BMTK looks it up in morphologies_dir)
    types = pd.read_csv(out / "network" / "cells_node_types.csv", sep=" ").set_index("node_type_id")
    with h5py.File(out / "network" / "cells_nodes.h5") as f:  # libsonata does not show node_type_id
        type_ids = f["nodes/cells/node_type_id"][()]
    morphologies = types.loc[type_ids, "morphology"].tolist()
    assert morphologies == [f"{r}.swc" for r in root_ids]
    for name in morphologies:
        assert (out / "components" / "morphologies" / name).is_file()

    tables = _tables(out.parent / "circuit.cells", root_ids)
    index = {r: k for k, r in enumerate(root_ids)}
    among = outside = 0
    per_target = {}
    partners = set()
    for root, table in tables.items():
        use = (table.direction == "input") & table.swc_id.notna() & table.partner_root_id.notna()
        partner = table.partner_root_id[use].astype(np.int64)
        inside = partner.isin(root_ids)
        among += int(inside.sum())
        outside += int((~inside).sum())
        partners |= set(partner[~inside].tolist())
        per_target[index[root]] = (int(inside.sum()), int((~inside).sum()))
        # the inputs of each cell from the other cells are those the circuit's tables made so
        truth = truths[index[root]]
        made = set(truth.ids[(truth.direction == "input") & np.isin(truth.pre, root_ids)].tolist())
        assert set(table.synapse_id[use][inside].tolist()) <= made
    assert among > 20 and outside > 50, (among, outside)

    virtual = config.node_population("inputs")
    assert virtual.size == len(partners)
    assert set(virtual.get_attribute("root_id", virtual.select_all()).tolist()) == partners
    for name, expected, source_size in (("cells__cells", among, 5), ("inputs__cells", outside, virtual.size)):
        edges = config.edge_population(name)
        assert edges.size == expected
        assert edges.target == "cells"
        for target, counts in per_target.items():  # target_to_source index
            got = edges.afferent_edges([target]).flat_size
            assert got == counts[0 if name == "cells__cells" else 1]
        # source_to_target index: every edge found from its source
        assert sum(edges.efferent_edges([s]).flat_size for s in range(source_size)) == expected
        sel = edges.select_all()
        sec = edges.get_attribute("afferent_section_id", sel)
        pos = edges.get_attribute("afferent_section_pos", sel)
        assert (sec >= 0).all() and ((pos > 0) & (pos < 1)).all()
        for column in ("afferent_swc_id", "afferent_swc_pos", "syn_weight", "delay", "size"):
            assert len(edges.get_attribute(column, sel)) == expected
    if among:  # sources of edges among cells are cells
        edges = config.edge_population("cells__cells")
        assert edges.source == "cells"
    spikes = libsonata.SpikeReader(str(out / "inputs" / "spikes.h5"))
    node_ids, times = zip(*spikes["inputs"].get()) if spikes["inputs"].get() else ((), ())
    assert len(times) > 0 and max(times) < 100.0 and set(node_ids) <= set(range(virtual.size))
    record = json.loads((out / "mesh_export_circuit.json").read_text())
    assert record["counts"]["edges_among_cells"] == among and record["mechanisms"] == "compiled"


_BIONET = textwrap.dedent("""
    import json, sys
    import numpy as np
    import h5py
    from bmtk.simulator import bionet
    from neuron import h

    conf = bionet.Config.from_json("simulation_config.json", validate=True)
    conf.build_env()
    net = bionet.BioNetwork.from_config(conf)
    sim = bionet.BioSimulator.from_config(conf, network=net)
    # where bionet put every synapse: its section (all[afferent_section_id]) at the edge's x, as
    # a 3-D point of the section's path
    placed = []
    for gid, cell in net.get_local_cells().items():
        for con in cell.connections():
            syn = con._syn
            seg = syn.get_segment()
            sec = seg.sec
            n = int(sec.n3d())
            arc = np.array([sec.arc3d(i) for i in range(n)])
            xyz = np.array([[sec.x3d(i), sec.y3d(i), sec.z3d(i)] for i in range(n)])
            h.pop_section()
            # the x asked for (NEURON then puts the synapse at its segment's centre, dL apart)
            s = float(con._edge_prop["afferent_section_pos"]) * sec.L
            point = [float(np.interp(s, arc, xyz[:, k])) for k in range(3)]
            placed.append({"gid": int(gid), "swc_id": int(con._edge_prop["afferent_swc_id"]),
                           "point": point, "section": sec.name()})
    sim.run()
    with h5py.File("output/soma_v.h5") as f:
        report = f["report/cells"]
        v = report["data"][()]
        order = report["mapping/node_ids"][()].tolist()
    json.dump({"placed": placed, "order": order, "v": v.T.tolist()}, open("bionet.json", "w"))
""")


def test_bionet_runs_the_circuit_and_driven_cells_depolarise(circuit, root_ids, truths):
    out = circuit.output
    done = subprocess.run([sys.executable, "-c", _BIONET], cwd=out, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "bionet.json").read_text())
    v = np.array(result["v"])  # (cells, time)
    assert v.shape[0] == 5
    rest = v[:, :40].mean(axis=1)  # the first ms, before most input spikes arrive
    assert np.allclose(rest, -65.0, atol=3.0), rest
    depolarised = v.max(axis=1) - rest
    # every cell has inputs and each is driven by them (here to spiking: ~+29 mV peaks), and
    # not before the first partner spike reaches it
    assert (depolarised > 20.0).all(), depolarised
    import h5py

    with h5py.File(out / "inputs" / "spikes.h5") as f:
        first_input = f["spikes/inputs/timestamps"][()].min()
    dt = 100.0 / v.shape[1]
    first_rise = np.argmax(v > (rest + 2.0)[:, None], axis=1) * dt
    assert (first_rise >= first_input).all(), (first_rise, first_input)

    # every edge's section and x put its synapse where the table's synapse is
    tables = _tables(out.parent / "circuit.cells", root_ids)
    placed = result["placed"]
    assert len(placed) == circuit.counts["edges_among_cells"] + circuit.counts["edges_from_partners"]
    gaps = []
    for item in placed:
        table = tables[root_ids[item["gid"]]]
        row = table[(table.swc_id == item["swc_id"]) & (table.direction == "input")]
        assert len(row), item
        points = row[["x", "y", "z"]].to_numpy(dtype=float)
        allowed = row.distance_to_axis.to_numpy(dtype=float)
        gap = np.linalg.norm(points - np.array(item["point"]), axis=1) - allowed
        gaps.append(np.abs(gap).min())
    gaps = np.array(gaps)
    # bionet's section and x are the very point of the axis the table mapped the synapse to (up
    # to the decimals written): the section ids of the edges are those Import3d gives our SWC
    assert (np.abs(gaps) < 0.05).all(), np.sort(gaps)[-10:]


def test_cli_exports_a_circuit_resumes_and_reports_a_failed_id(srv, root_ids, tmp_path):
    out = tmp_path / "net"
    missing = "864691135999999999"
    ids = [str(r) for r in root_ids[:2]]
    done = run_cli(*ids, missing, "--format", "sonata", "--out", out, *_cli_args(srv, tmp_path))
    assert done.returncode == 20, done.stderr
    assert f"error: {missing}" in done.stderr
    assert "2 cells" in done.stdout
    record = json.loads((out / "mesh_export_circuit.json").read_text())
    assert record["cells"] == ids and record["failed"] == [missing]
    manifest = [json.loads(line) for line in (tmp_path / "net.cells" / "manifest.jsonl").read_text().splitlines()]
    assert {m["root_id"]: m["status"] for m in manifest} == {**{i: "ok" for i in ids}, missing: "failed"}

    # a re-run resumes: the two cells skipped, the missing one tried again, the circuit rebuilt
    done = run_cli(*ids, missing, "--format", "sonata", "--out", out, "--json", *_cli_args(srv, tmp_path))
    assert done.returncode == 20, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["root_id"] for r in lines[:-1] if r.get("skipped")) == sorted(ids)
    assert lines[-1]["cells"] == 2 and lines[-1]["status"] == "ok"

    # without the missing id, the same ids as before need no --overwrite? a different request does
    other = run_cli(*ids, "--format", "sonata", "--out", out, *_cli_args(srv, tmp_path))
    assert other.returncode != 0 and "--overwrite" in other.stderr and len(other.stderr.strip().splitlines()) == 1
    assert "Traceback" not in other.stderr
    again = run_cli(*ids, "--format", "sonata", "--out", out, "--overwrite", *_cli_args(srv, tmp_path))
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "mesh_export_circuit.json").read_text())["failed"] == []


def test_a_fault_while_writing_leaves_no_partial_circuit(srv, root_ids, tmp_path, monkeypatch):
    import mesh_export.writers.sonata as sonata
    from mesh_export.errors import OutputError

    out = tmp_path / "circuit"
    kwargs = dict(out_dir=out, datastack="syn", server=srv.url, token=TOKEN, cache_dir=tmp_path / "cache",
                  circuit=CircuitOptions(biophysics=Biophysics(tstop=50.0), compile_mechanisms="no"))
    first = export_circuit(root_ids[:2], **kwargs)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def broken(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sonata, "_spikes", broken)  # after the nodes and edges, before the configs
    with pytest.raises(OutputError, match="No space left on device"):
        export_circuit(root_ids[:2], overwrite=True, **kwargs)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # the old circuit intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert first.output == out

    with pytest.raises(OutputError):
        export_circuit(root_ids[:2], **{**kwargs, "out_dir": tmp_path / "fresh"})
    assert not (tmp_path / "fresh").exists()


def test_bad_circuit_requests_are_one_line_errors(srv, root_ids, tmp_path):
    from mesh_export.api import export

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    for extra, words in ((["--no-synapses"], "synapse"),
                         (["--synapses-format", "xml"], "synapses-format"),
                         (["--out", str(tmp_path / "taken")], "choose another --out"),
                         (["--out", str(tmp_path / "taken"), "--overwrite"], "choose another --out"),
                         (["--units", "nm", "--allow-units"], "micrometres"),
                         (["--scale", "2"], "micrometres")):
        args = [str(root_ids[0]), "--format", "sonata", "--out", str(tmp_path / "c"), *_cli_args(srv, tmp_path), *extra]
        done = run_cli(*args)
        assert done.returncode not in (0, 20) and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr, done.stderr
        assert not (tmp_path / "c").exists()
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    with pytest.raises(Exception, match="export_circuit"):
        export(root_ids[0], format="sonata", out_dir=tmp_path, datastack="syn", server=srv.url, token=TOKEN)
    synapse_file = tmp_path / "s.csv"
    synapse_file.write_text("id,pre_pt_root_id,post_pt_root_id,ctr_pt_position\n")
    with pytest.raises(Exception, match="synapses-file"):
        export_circuit(root_ids[:1], out_dir=tmp_path / "c2", source="precomputed://http://127.0.0.1:1/x",
                       synapses=SynapseOptions())


def test_a_circuit_from_one_synapse_file_of_all_cells(srv, root_ids, truths, tmp_path):
    """--synapses-file: one table of every cell's rows (in voxels), as a user exports it from CAVE."""
    from support.synapse_tables import write_file

    synapses = write_file(concatenated(truths), tmp_path / "synapses.parquet", voxel=True)
    out = tmp_path / "from-file"
    ids = [str(r) for r in root_ids[:3]]
    done = run_cli(*ids, "--format", "sonata", "--out", out, "--synapses-file", synapses,
                   "--synapse-resolution", "4,4,40", "--json", *_cli_args(srv, tmp_path))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    record = json.loads((out / "mesh_export_circuit.json").read_text())
    assert record["request"]["synapses"]["file"] == str(synapses)
    tables = _tables(tmp_path / "from-file.cells", root_ids[:3])
    among = outside = 0
    for table in tables.values():
        use = (table.direction == "input") & table.swc_id.notna()
        inside = table.partner_root_id[use].astype(np.int64).isin(root_ids[:3])
        among, outside = among + int(inside.sum()), outside + int((~inside).sum())
    assert summary["edges_among_cells"] == among > 0 and summary["edges_from_partners"] == outside > 0
    # inputs from the two cells left out of this circuit come from virtual partners
    import libsonata

    virtual = libsonata.NodeStorage(str(out / "network" / "inputs_nodes.h5")).open_population("inputs")
    assert set(root_ids[3:]) <= set(virtual.get_attribute("root_id", virtual.select_all()).tolist())


def test_build_circuit_from_files_refuses_a_table_of_another_morphology(circuit, root_ids, tmp_path):
    from mesh_export.api import CellFiles, build_circuit
    from mesh_export.errors import InputError

    cells_dir = circuit.output.parent / "circuit.cells"
    files = [CellFiles(r, next(cells_dir.glob(f"{r}_lod*.swc")), next(cells_dir.glob(f"{r}_lod*.swc.synapses.csv")))
             for r in root_ids[:2]]
    built = build_circuit(files, tmp_path / "ok", CircuitOptions(compile_mechanisms="no"))
    assert built.counts["cells"] == 2 and "nrnivmodl" in built.mechanisms
    # the second cell's table beside the first cell's (smaller) morphology
    small, large = sorted(files, key=lambda f: f.morphology.stat().st_size)
    wrong = CellFiles(small.root_id, small.morphology, large.synapses)
    with pytest.raises(InputError, match="another morphology"):
        build_circuit([wrong], tmp_path / "bad", CircuitOptions(compile_mechanisms="no"))
    # a table whose swc ids all exist on the morphology, but whose synapses are elsewhere
    from mesh_export.writers.synapse_table import read_synapse_table

    table = read_synapse_table(large.synapses)
    table = table[table.swc_id.isna() | (table.swc_id <= 100)]
    shifted = tmp_path / "shifted.swc.synapses.csv"
    table.to_csv(shifted, index=False)
    with pytest.raises(InputError, match="another morphology"):
        build_circuit([CellFiles(small.root_id, small.morphology, shifted)], tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad*"))
