"""The synapse table's ``section``/``section_x``/``section_id`` read by NEURON itself (issue 23).

Each table written beside a morphology names, per placed row, a NEURON section and an x. Here
NEURON builds the cell twice, from our hoc file (``h.load_file`` + its template) and with its
own Import3d from our SWC file, and every row's ``section(x)`` is turned into a 3-D point the
way NEURON does it (the section's 3-D points at ``x`` of their arc length): on both cells the
same point, ``list(cell.all)[section_id]`` that same section, and the point within the local
radius + 2 um of the synapse for >= 98% of the rows, + 4 um for all (a synapse on a spine the
morphology does not draw sits at the spine's base).

Cells: the MICrONS-like pyramidal cell (tests/support/cells.py) with its synapses and debris
(tests/support/synapse_tables.py), converted from its mesh; the bundled sample exported by
root id (``--source sample``) with synapses on its mesh's surface.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from consumers import hoc_template_of, load_hoc_in_neuron, neuron_h
from support.cells import CELLS, cache_dir, cached_cell
from support.neuron_sections import NeuronPlaces, check_sections
from support.synapse_tables import synapses_of, write_file

UM = 1000.0


@pytest.fixture(scope="module")
def pyramidal(request, tmp_path_factory):
    """The pyramidal cell's mesh converted to hoc and to SWC with its synapse file."""
    from support.neurons import make_root_ids

    cell = cached_cell(cache_dir(request), **CELLS["pyramidal"])
    root_id = make_root_ids(1, 2323)[0]
    truth = synapses_of(cell, root_id)
    tmp = tmp_path_factory.mktemp("sections")
    mesh_path = tmp / "cell.ply"
    cell.mesh.export(mesh_path)
    path = write_file(truth, tmp / "syn.csv")
    out = {}
    for ext in ("hoc", "swc"):
        done = run_cli("convert", mesh_path, tmp / f"pyramidal.{ext}", "--units-in", "nm", "--synapses-file", path,
                       "--root-id", root_id, "--synapse-hoc", "--json")
        assert done.returncode == 0, done.stderr
        out[ext] = tmp / f"pyramidal.{ext}"
        out[ext + "_record"] = json.loads(done.stdout)["synapses"]
    return truth, out


def test_sections_of_a_synthetic_cell_on_both_loads(pyramidal):
    truth, out = pyramidal
    table = pd.read_csv(out["hoc"].with_name("pyramidal.hoc.synapses.csv"))
    other = pd.read_csv(out["swc"].with_name("pyramidal.swc.synapses.csv"))
    pd.testing.assert_frame_equal(table, other)  # one table, whichever morphology it is beside
    figures = check_sections(table, out["hoc"], out["swc"])
    print("pyramidal", figures)  # the record (pytest -s)
    assert out["hoc_record"]["section_x_margin"] == 1e-4  # the clamp said in the sidecar
    # the cell's own synapses are all placed, and on every kind of section
    on_cell = table.set_index("synapse_id").loc[truth.ids[truth.where == "cell"]]
    assert on_cell["section"].notna().all()
    kinds = {name.split("[")[0] for name in on_cell["section"]}
    assert {"soma", "axon", "dend", "apic"} <= kinds, kinds
    assert figures["placed"] >= (truth.where == "cell").sum()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The bundled sample exported by root id as hoc and SWC, with synapses on its surface
    (mesh vertices pushed 0-0.3 um out: where CAVE's cleft points sit) and 1% far away."""
    import trimesh

    from mesh_export.retrieve.sources import sample_path

    tmp = tmp_path_factory.mktemp("sample")
    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    env = {"MESH_EXPORT_CACHE": str(tmp / "cache")}
    done = run_cli(root_id, "--source", "sample", "--lod", "2", "--format", "ply", "--out", tmp, "--name",
                   "sample.{ext}", env=env)
    assert done.returncode == 0, done.stderr
    mesh = trimesh.load(tmp / "sample.ply", process=False, force="mesh")
    rng = np.random.default_rng(5)
    count = 2000
    pick = rng.choice(len(mesh.vertices), size=count, replace=False)
    positions = mesh.vertices[pick] + mesh.vertex_normals[pick] * rng.uniform(0, 300.0, size=(count, 1))
    positions[: count // 100] += 300_000.0
    partners = 864691135000000000 + rng.integers(1, 20, size=count)
    inputs = rng.random(count) < 0.8
    frame = pd.DataFrame({"id": np.arange(count) + 1, "pre_pt_root_id": np.where(inputs, partners, int(root_id)),
                          "post_pt_root_id": np.where(inputs, int(root_id), partners),
                          "size": rng.integers(50, 3000, size=count)})
    for axis, name in enumerate("xyz"):
        frame[f"ctr_pt_position_{name}"] = positions[:, axis]
    frame.to_csv(tmp / "syn.csv", index=False)
    out = {}
    # a template name of its own: other tests load the sample's default Cell_<root id> from their file
    template = ["--template", "Cell_sample_sections"]
    for ext in ("hoc", "swc"):
        done = run_cli(root_id, "--source", "sample", "--lod", "2", "--format", ext, "--out", tmp, "--name",
                       "sample.{ext}", "--synapses-file", tmp / "syn.csv", *(template if ext == "hoc" else []), env=env)
        assert done.returncode == 0, done.stderr
        out[ext] = tmp / f"sample.{ext}"
    return count, out


def test_sections_of_the_sample_on_both_loads(sample):
    count, out = sample
    table = pd.read_csv(out["hoc"].with_name("sample.hoc.synapses.csv"))
    pd.testing.assert_frame_equal(table, pd.read_csv(out["swc"].with_name("sample.swc.synapses.csv")))
    assert len(table) == count
    figures = check_sections(table, out["hoc"], out["swc"])
    print("sample", figures)  # the record (pytest -s)
    assert figures["placed"] >= count * 0.95


# ------------------------------------------------------------------ Exp2Syn at the inputs (--synapse-hoc)

#: A hoc template that lets NEURON's Import3d build the cell from an SWC file inside itself, as
#: BMTK's Biophys1 does (its declarations, in its order; no axon stub): the other cell the
#: companion must fit, and whose ``all`` BMTK reads afferent_section_id in.
IMPORT3D_TEMPLATE = """
begintemplate SynapseTestImport3dCell
public soma, axon, dend, apic, all, somatic, axonal, basal, apical
objref all, somatic, axonal, basal, apical, this
create soma[1], dend[1], apic[1], axon[1]
proc init() { localobj reader, gui
  all = new SectionList()  somatic = new SectionList()  axonal = new SectionList()
  basal = new SectionList()  apical = new SectionList()
  forall delete_section()
  reader = new Import3d_SWC_read()
  reader.input($s1)
  gui = new Import3d_GUI(reader, 0)
  gui.instantiate(this)
}
endtemplate SynapseTestImport3dCell
"""


def _soma_response(h, cell, inputs, drive: bool) -> float:
    """Passive cell (hh-free: the synapses alone move it), the partners driven or not: the
    soma's largest depolarisation (mV) in 60 ms."""
    for sec in cell.all:
        sec.Ra, sec.cm = 100, 1
        sec.insert("pas")
        for seg in sec:
            seg.pas.g, seg.pas.e = 5e-5, -65
    inputs.drive(10, 5 if drive else 0, 8, 0)
    v = h.Vector().record(cell.soma[0](0.5)._ref_v)
    h.finitialize(-65)
    h.continuerun(60)
    return float(np.max(np.array(v)) + 65)


def test_exp2syn_at_every_input_drives_the_cell(pyramidal):
    """The companion loads beside our hoc cell and beside the cell Import3d builds of our SWC:
    one Exp2Syn per placed input row, each on its row's section and segment, a NetStim per
    partner; driven, the soma depolarises; silent, it rests."""
    truth, out = pyramidal
    h = neuron_h()
    table = pd.read_csv(out["hoc"].with_name("pyramidal.hoc.synapses.csv"))
    inputs_placed = table[(table["direction"] == "input") & table["section"].notna()]
    companion = out["hoc"].with_name("pyramidal.hoc.synapses.hoc")
    other = out["swc"].with_name("pyramidal.swc.synapses.hoc")
    assert out["hoc_record"]["hoc"] == {"file": companion.name, "exp2syn": len(inputs_placed)}
    body = lambda p: [line for line in p.read_text().splitlines() if not line.startswith("//")]  # noqa: E731
    assert body(companion) == body(other)  # one file fits both cells
    template = hoc_template_of(companion)
    assert template == hoc_template_of(out["hoc"]) + "_synapses"
    assert h.load_file(str(companion)) == 1

    hoc_cell, _ = load_hoc_in_neuron(out["hoc"])
    h(IMPORT3D_TEMPLATE)
    import3d_cell = h.SynapseTestImport3dCell(str(out["swc"]))
    for cell in (hoc_cell, import3d_cell):
        inputs = getattr(h, template)(cell)
        assert int(inputs.syn.count()) == len(inputs_placed)
        assert int(inputs.stim.count()) == inputs_placed["partner_root_id"].nunique()
        assert {inputs.partner.o(i).s for i in range(int(inputs.stim.count()))} == {
            str(p) for p in inputs_placed["partner_root_id"]}
        rows = inputs_placed.set_index("synapse_id")
        places = NeuronPlaces(cell)
        everything = list(cell.all)  # section_id on a cell Import3d filled in hoc, as BMTK's are
        for sec_id, name in set(zip(rows["section_id"].astype(int), rows["section"])):
            assert everything[sec_id] == places.section(name), (sec_id, name)
        for i in range(int(inputs.syn.count())):
            row = rows.loc[int(inputs.synapse_id.x[i])]
            seg = inputs.syn.o(i).get_segment()
            assert seg.sec == places.section(row["section"])
            assert abs(seg.x - row["section_x"]) <= 0.5 / seg.sec.nseg + 1e-9  # the segment holding x
            assert inputs.partner.o(int(inputs.syn_partner.x[i])).s == str(row["partner_root_id"])
        rest = _soma_response(h, cell, inputs, drive=False)
        driven = _soma_response(h, cell, inputs, drive=True)
        print(cell, "Exp2Syn", int(inputs.syn.count()), "soma at rest", round(rest, 4), "mV; driven +",
              round(driven, 2), "mV")  # the record (pytest -s)
        assert abs(rest) < 0.01, rest
        assert driven > 5.0, driven


def test_synapse_hoc_only_beside_swc_and_hoc(tmp_path):
    """--synapse-hoc for a NeuroML output: a one-line error, nothing written."""
    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    done = run_cli(root_id, "--source", "sample", "--lod", "2", "--format", "neuroml", "--out", tmp_path,
                   "--synapse-hoc", env={"MESH_EXPORT_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "--synapse-hoc places Exp2Syn on the sections NEURON builds of an swc or hoc output, not neuroml" \
        in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.glob("*.nml"))
    # and only where there are synapses to place: not from --source without --synapses-file,
    # not in a convert without one
    done = run_cli(root_id, "--source", "sample", "--lod", "2", "--format", "swc", "--out", tmp_path,
                   "--synapse-hoc", env={"MESH_EXPORT_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--synapse-hoc places Exp2Syn at the cell's synapses, and this output has none" in done.stderr
    from support import swc_quirks

    done = run_cli("convert", swc_quirks.READ["plain"](tmp_path), tmp_path / "cell.hoc", "--synapse-hoc")
    assert done.returncode == 2 and "give --synapses-file" in done.stderr, done.stderr
    assert not any(tmp_path.glob("*.swc.*")) and not (tmp_path / "cell.hoc").exists()


# ------------------------------------------------------------- morphologies Import3d rewrites

QUIRK_CELLS = ("plain", "three_point_soma", "soma_chain", "soma_contour", "soma_tangle", "custom_types")


@pytest.mark.parametrize("quirk", QUIRK_CELLS)
def test_sections_of_import3d_quirks(quirk, tmp_path):
    """SWC files whose soma Import3d reshapes (NeuroMorpho's 3 points, a chain, a contour, a
    branched soma with a one-point dendrite it drops) or whose types are custom (``dend_5``):
    synapses along every neurite edge (on the surface, 0-0.3 um out) and on the soma, mapped
    through convert, read back on NEURON's cells from our hoc and from Import3d of our SWC."""
    from support import swc_quirks

    source = swc_quirks.READ[quirk](tmp_path)
    rows = np.loadtxt(source, comments="#", ndmin=2)
    index = {int(r[0]): k for k, r in enumerate(rows)}
    parent = np.array([index.get(int(r[6]), -1) for r in rows])
    soma = rows[:, 1] == 1
    edges = np.flatnonzero((parent >= 0) & ~soma & ~soma[np.maximum(parent, 0)])
    rng = np.random.default_rng(11)
    pick = rng.choice(edges, size=300)
    t = rng.random(300)[:, None]
    a, b = rows[pick, 2:5], rows[parent[pick], 2:5]
    axis = a + (b - a) * t
    radius = rows[pick, 5] + (rows[parent[pick], 5] - rows[pick, 5]) * t[:, 0]
    side = np.cross(b - a, rng.normal(size=(300, 3)))
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    points = axis + side * (radius + rng.uniform(0, 0.3, size=300))[:, None]
    around = rng.normal(size=(20, 3))
    around /= np.linalg.norm(around, axis=1, keepdims=True)
    root = int(np.flatnonzero(parent < 0)[0])
    points = np.concatenate([points, rows[root, 2:5] + around * rows[root, 5]]) * UM  # um -> nm
    root_id = 864691135999999999
    n = len(points)
    frame = pd.DataFrame({"id": np.arange(n) + 1, "pre_pt_root_id": np.full(n, 864691135000000007),
                          "post_pt_root_id": np.full(n, root_id), "size": np.full(n, 100)})
    for axis_k, name in enumerate("xyz"):
        frame[f"ctr_pt_position_{name}"] = points[:, axis_k]
    frame.to_csv(tmp_path / "syn.csv", index=False)
    for ext in ("hoc", "swc"):
        done = run_cli("convert", source, tmp_path / f"quirk_{quirk}.{ext}", "--synapses-file", tmp_path / "syn.csv",
                       "--root-id", root_id)
        assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / f"quirk_{quirk}.hoc.synapses.csv")
    pd.testing.assert_frame_equal(table, pd.read_csv(tmp_path / f"quirk_{quirk}.swc.synapses.csv"))
    assert table["section"].notna().all()  # every one of them on the cell
    figures = check_sections(table, tmp_path / f"quirk_{quirk}.hoc", tmp_path / f"quirk_{quirk}.swc")
    print(quirk, figures)  # the record (pytest -s)
    if quirk == "custom_types":
        assert {"dend_5", "dend_7"} <= {name.split("[")[0] for name in table["section"]}


def test_an_existing_synapse_hoc_is_kept(tmp_path):
    """The companion obeys --overwrite like the table: refused before anything is written."""
    from support import swc_quirks

    source = swc_quirks.READ["plain"](tmp_path)
    rows = np.loadtxt(source, comments="#", ndmin=2)
    frame = pd.DataFrame({"id": [1], "pre_pt_root_id": [2], "post_pt_root_id": [1], "size": [10],
                          "ctr_pt_position_x": [rows[5, 2] * UM], "ctr_pt_position_y": [rows[5, 3] * UM],
                          "ctr_pt_position_z": [rows[5, 4] * UM]})
    frame.to_csv(tmp_path / "syn.csv", index=False)
    kept = tmp_path / "cell.hoc.synapses.hoc"
    kept.write_text("// mine\n")
    args = ["convert", source, tmp_path / "cell.hoc", "--synapses-file", tmp_path / "syn.csv", "--root-id", "1",
            "--synapse-hoc"]
    done = run_cli(*args)
    assert done.returncode != 0 and "exists; pass --overwrite" in done.stderr and "Traceback" not in done.stderr
    assert kept.read_text() == "// mine\n" and not (tmp_path / "cell.hoc").exists()
    done = run_cli(*args, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert "Exp2Syn at the 1 placed input synapses of cell.hoc" in kept.read_text()


@pytest.mark.parametrize("quirk", ["soma_tangle", "custom_types"])
def test_sections_at_nodes_are_the_hoc_writers(quirk, tmp_path):
    """sections_at (node, 0) names every node's place as the hoc writer's section_of_nodes
    does (the one naming), x clamped inside the ends; names lists ``all``'s order."""
    import mesh_export
    from mesh_export.writers.hoc import section_of_nodes
    from mesh_export.writers.synapse_table import X_MARGIN, sections_at
    from support import swc_quirks

    skeleton = mesh_export.load(swc_quirks.READ[quirk](tmp_path))
    names, indices, xs = section_of_nodes(skeleton)
    nodes = np.arange(len(skeleton))
    places = sections_at(skeleton, nodes, np.zeros(len(nodes)))
    assert places.section.tolist() == [f"{n}[{i}]" for n, i in zip(names, indices)]
    np.testing.assert_allclose(places.x, np.clip(xs, X_MARGIN, 1 - X_MARGIN), rtol=0, atol=1e-12)
    assert [places.names[k] for k in places.section_id] == places.section.tolist()
    standard = {"soma": 1, "axon": 2, "dend": 3, "apic": 4}
    types = [standard[k] if k in standard else int(k.split("_")[1]) for k in
             (name.split("[")[0] for name in places.names)]
    assert types == sorted(types)  # all: ascending types, each by index
    missing = sections_at(skeleton, np.array([-1]), np.array([0.3]))
    assert missing.section.tolist() == [""] and np.isnan(missing.x[0]) and missing.section_id.tolist() == [-1]


@pytest.mark.parametrize("quirk", ["soma_tangle", "custom_types", "three_point_soma"])
def test_the_hoc_writer_and_the_synapse_table_place_points_by_one_mapping(quirk, tmp_path):
    """Points along edges, not only nodes: hoc.section_of_points and synapse_table.sections_at
    are _neuron_sections.places_of_points, the one as it is, the other x clamped and -1 rows
    left empty; so the two can never drift apart."""
    import mesh_export
    from mesh_export.writers._neuron_sections import places_of_points
    from mesh_export.writers.hoc import section_of_points
    from mesh_export.writers.synapse_table import X_MARGIN, sections_at
    from support import swc_quirks

    skeleton = mesh_export.load(swc_quirks.READ[quirk](tmp_path))
    rng = np.random.default_rng(7)
    nodes = np.concatenate([np.arange(len(skeleton)), rng.integers(0, len(skeleton), 200)])
    fractions = np.concatenate([np.zeros(len(skeleton)), rng.random(200)])
    fractions[-10:] = 1.0
    places = places_of_points(skeleton, nodes, fractions)
    assert ((places.x >= 0) & (places.x <= 1)).all() and len(places.section) == len(nodes)
    expected = [f"{places.sections[k].name}[{places.sections[k].index}]" for k in places.section]
    names, indices, xs = section_of_points(skeleton, nodes, fractions)
    assert [f"{n}[{i}]" for n, i in zip(names, indices)] == expected
    np.testing.assert_array_equal(xs, places.x)
    some = nodes.copy()
    some[::5] = -1  # rows with no place
    table = sections_at(skeleton, some, fractions)
    kept = some >= 0
    assert table.section[kept].tolist() == [e for e, k in zip(expected, kept) if k]
    assert (table.section[~kept] == "").all() and np.isnan(table.x[~kept]).all()
    np.testing.assert_array_equal(table.x[kept], np.clip(places.x[kept], X_MARGIN, 1 - X_MARGIN))
