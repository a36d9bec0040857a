"""Any SWC in, every morphology out: the real-world quirks of published SWC files
(tests/support/swc_quirks.py), converted to SWC, hoc and NeuroML through the CLI and the API,
read back by NEURON (Import3d for SWC, ``h.load_file`` for hoc), MorphIO, NeuroM and
libNeuroML, against NEURON's Import3d of the original file; the files no tool reads alike
refused with one line naming the line. And the node -> (section, x) mapping, checked on
NEURON's own cells from our hoc and from Import3d of our SWC.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import mesh_export
from conftest import run_cli
from consumers import hoc_template_of, load_hoc_in_neuron, load_swc_in_neuron, membrane_area
from mesh_export import errors
from mesh_export.look.info import skeleton_info
from mesh_export.writers.hoc import section_of_nodes
from support import swc_quirks

# Files NEURON's Import3d cannot read (it refuses a parent id above its child's, and its sort of
# out-of-order ids fails): their reference is Import3d of the same tree written in order.
NEURON_CANNOT = {"ids_with_gaps_out_of_order", "parents_after_children"}
# Files MorphIO (and so NeuroM) refuses: an uncommented header line; a soma that branches
# (NEURON reads it, and so do we: our output keeps it, so MorphIO refuses that too).
MORPHIO_CANNOT = {"column_header", "soma_tangle"}
# What reading each file must say it repaired (a word of the sentence); None: nothing.
REPAIRED = {"plain": None, "column_header": "column header", "ids_from_zero": "renumbered",
            "ids_with_gaps_out_of_order": "out of order", "parents_after_children": "parents listed after",
            "three_point_soma": None, "soma_chain": None, "soma_contour": None, "soma_tangle": None,
            "custom_types": None,
            "several_trees": "joined to the soma", "several_trees_on_an_outline": "joined to the soma",
            "zero_radius": "radius 0"}


def neuron_figures(sections) -> tuple[float, float]:
    return membrane_area(sections), float(sum(sec.L for sec in sections))


def short(sec) -> str:
    return sec.name().rsplit(".", 1)[-1]


@pytest.fixture(scope="module")
def quirk_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("swc-quirks")


@pytest.fixture(scope="module")
def originals(quirk_dir):
    return {name: make(quirk_dir) for name, make in swc_quirks.READ.items()}


def test_the_quirk_table_is_complete():
    assert set(REPAIRED) == set(swc_quirks.READ)


@pytest.mark.parametrize("name", list(swc_quirks.READ))
def test_a_quirky_swc_converts_to_every_morphology_format(name, originals, tmp_path):
    original = originals[name]
    reference = originals["plain"] if name in NEURON_CANNOT else original
    reference_cell, reference_sections = load_swc_in_neuron(reference)
    area, length = neuron_figures(reference_sections)

    # CLI: swc -> hoc, with what was repaired in --json and in the file's header.
    hoc = tmp_path / f"{name}.hoc"
    result = run_cli("convert", original, hoc, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    header = hoc.read_text().split("begintemplate")[0]
    if REPAIRED[name] is None:
        assert "repairs" not in record and "repaired" not in header
    else:
        assert any(REPAIRED[name] in line for line in record["repairs"]), record.get("repairs")
        assert "repaired on reading: " + record["repairs"][0] in header
    assert hoc_template_of(hoc) == f"Cell_{name}"
    cell, hoc_sections = load_hoc_in_neuron(hoc)
    hoc_area, hoc_length = neuron_figures(hoc_sections)
    assert hoc_area == pytest.approx(area, rel=0.01) and hoc_length == pytest.approx(length, rel=0.01)

    # API: swc -> swc, loaded by NEURON's Import3d: the same cell as our hoc, section by section.
    skeleton = mesh_export.load(original)
    swc = mesh_export.write(skeleton, tmp_path / f"{name}.out.swc")
    swc_cell, swc_sections = load_swc_in_neuron(swc)
    swc_area, swc_length = neuron_figures(swc_sections)
    assert swc_area == pytest.approx(area, rel=0.01) and swc_length == pytest.approx(length, rel=0.01)
    assert_same_cell(hoc_sections, swc_sections)
    assert swc_area == pytest.approx(hoc_area, rel=1e-4)  # the same cell; only nseg may differ
    if REPAIRED[name]:
        assert "# repaired on reading: " in swc.read_text()

    # MorphIO (strict but for the zero radii it warns about, as the header says) and NeuroM.
    import morphio
    import neurom

    ours = skeleton_info(skeleton)
    if name == "soma_tangle":
        for path in (original, swc):
            with pytest.raises(morphio.SomaError, match="soma bifurcation"):
                morphio.Morphology(str(path))
        assert ours["neurites"] == 6 and ours["soma_nodes"] == 7  # the one-point dendrite is a neurite too
    else:
        check_with_morphio_and_neurom(name, original, swc, ours)

    # NeuroML2: schema-valid, its segments' area NEURON's, the groups NeuroML tools expect.
    nml_area, groups = neuroml_area_and_groups(mesh_export.write(skeleton, tmp_path / f"{name}.cell.nml"))
    assert nml_area == pytest.approx(area, rel=0.01)
    assert {"soma_group", "axon_group", "basal_dendrite", "dendrite_group", "all"} <= set(groups)
    if name != "custom_types":
        assert groups["apical_dendrite"].neuro_lex_id == "sao273773228"
        assert {i.segment_groups for i in groups["dendrite_group"].includes} == {"basal_dendrite", "apical_dendrite"}
    else:
        assert "dend_7_group" in groups and "dend_5_group" in groups and "apical_dendrite" not in groups


def check_with_morphio_and_neurom(name, original, swc, ours):
    """MorphIO reads our SWC strictly (but for the zero radii it warns about, as the header
    says); NeuroM's figures of it, and of the original where MorphIO reads that, are ours."""
    import morphio
    import neurom

    morphio.set_raise_warnings(name != "zero_radius")
    try:
        morphio.Morphology(str(swc))
    finally:
        morphio.set_raise_warnings(False)
    morphio.set_maximum_warnings(0)
    counted = neurom.load_morphology(swc)
    assert ours["neurites"] == neurom.get("number_of_neurites", counted)
    assert ours["sections"] == neurom.get("number_of_sections", counted)
    assert ours["branch_points"] == neurom.get("number_of_forking_points", counted)
    assert ours["tips"] == neurom.get("number_of_leaves", counted)
    assert ours["total_length"] == pytest.approx(neurom.get("total_length", counted), rel=1e-5)
    assert ours["soma_radius"] == pytest.approx(neurom.get("soma_radius", counted), rel=1e-5)
    if name not in MORPHIO_CANNOT:  # the original too, where MorphIO reads it
        first = neurom.load_morphology(original)
        assert ours["sections"] == neurom.get("number_of_sections", first)
        assert ours["total_length"] == pytest.approx(neurom.get("total_length", first), rel=1e-5)
        assert ours["soma_radius"] == pytest.approx(neurom.get("soma_radius", first), rel=1e-5)


def assert_same_cell(ours, theirs):
    """The same sections by name, each with the same 3-D points and the same parent and x."""
    def described(sections):
        cell = {}
        for sec in sections:
            points = np.array([[sec.x3d(k), sec.y3d(k), sec.z3d(k), sec.diam3d(k)] for k in range(sec.n3d())])
            parent = sec.parentseg()
            cell[short(sec)] = (points, None if parent is None else (short(parent.sec), round(parent.x, 9)))
        return cell

    a, b = described(ours), described(theirs)
    assert sorted(a) == sorted(b)
    for name, (points, parent) in a.items():
        assert parent == b[name][1], name
        np.testing.assert_allclose(points, b[name][0], atol=1e-5, err_msg=name)


def neuroml_area_and_groups(path):
    import neuroml.loaders
    from neuroml.utils import validate_neuroml2

    validate_neuroml2(str(path))
    cell = neuroml.loaders.read_neuroml2_file(str(path)).cells[0]
    by_id = {s.id: s for s in cell.morphology.segments}
    total = 0.0
    for segment in cell.morphology.segments:
        p = segment.proximal if segment.proximal is not None else by_id[segment.parent.segments].distal
        d = segment.distal
        r1, r2 = float(p.diameter) / 2, float(d.diameter) / 2
        length = float(np.linalg.norm([d.x - p.x, d.y - p.y, d.z - p.z]))
        total += 4 * np.pi * r2**2 if length == 0 else np.pi * (r1 + r2) * np.hypot(length, r1 - r2)
    ids = [g.id for g in cell.morphology.segment_groups]
    assert len(ids) == len(set(ids)), "segment group ids repeat (libNeuroML's validation does not check)"
    return total, {g.id: g for g in cell.morphology.segment_groups}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_random_tree_is_the_same_cell_in_our_hoc_and_in_import3d(seed, tmp_path):
    """NEURON's rules (sections split at type changes and out-of-run children, wires, dropped
    one-point and zero-length sections, a branched soma) on 2,000 random nodes: our hoc is the
    cell Import3d makes of our SWC, and its area and length are Import3d's of the original."""
    original = swc_quirks.random_tree(tmp_path, seed)
    reference_cell, reference = load_swc_in_neuron(original)
    skeleton = mesh_export.load(original)
    hoc_cell, hoc_sections = load_hoc_in_neuron(mesh_export.write(skeleton, tmp_path / f"random_tree_{seed}.hoc"))
    swc_cell, swc_sections = load_swc_in_neuron(mesh_export.write(skeleton, tmp_path / f"random_{seed}.out.swc"))
    assert_same_cell(hoc_sections, swc_sections)
    area, length = neuron_figures(reference)
    # Import3d's own result depends on the file's order (a neurite's first section of one point
    # gets a cable from the soma, of several a wire), and we write parents' runs together: the
    # original and ours differ by ~1e-4; ours and our hoc not at all (nseg apart).
    for sections in (hoc_sections, swc_sections):
        assert neuron_figures(sections)[0] == pytest.approx(area, rel=1e-3)
        assert neuron_figures(sections)[1] == pytest.approx(length, rel=1e-3)
    assert neuron_figures(hoc_sections)[1] == pytest.approx(neuron_figures(swc_sections)[1], rel=1e-12)
    assert skeleton.membrane_area() == pytest.approx(neuron_figures(swc_sections)[0], rel=1e-6)  # rounded as written
    assert len(swc_sections) > 500


def test_apical_and_custom_types_keep_their_names(originals, tmp_path):
    """Import3d's names: apic[] in ``apical``, dend_N[] in ``dendritic_N``, in our hoc too."""
    skeleton = mesh_export.load(originals["custom_types"])
    cell, sections = load_hoc_in_neuron(mesh_export.write(skeleton, tmp_path / "typed_names.hoc"))
    names = {short(sec).split("[")[0] for sec in sections}
    assert names == {"soma", "axon", "dend", "dend_5", "dend_7"}
    assert [short(s) for s in cell.dendritic_7] == [short(s) for s in sections if short(s).startswith("dend_7[")]
    plain = mesh_export.load(originals["plain"])
    cell, sections = load_hoc_in_neuron(mesh_export.write(plain, tmp_path / "plain_names.hoc"))
    assert {short(s) for s in cell.apical} == {short(s) for s in sections if short(s).startswith("apic[")}
    assert len(list(cell.apical)) == 3 and len(list(cell.basal)) == 8 and len(list(cell.axonal)) == 1
    assert len(list(cell.all)) == len(sections)


@pytest.mark.parametrize("name", list(swc_quirks.REFUSED))
def test_a_broken_swc_is_refused_naming_the_line(name, quirk_dir, tmp_path):
    make, line, word = swc_quirks.REFUSED[name]
    path = make(quirk_dir)
    target = tmp_path / "out.hoc"
    result = run_cli("convert", path, target)
    # A cycle is a file that reads but is no tree: the skeleton's own error (exit 15).
    error = errors.InvalidSkeletonError if name == "cycle" else errors.InputError
    assert result.returncode == error.exit_code, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert f"{path}:{line}:" in message and word in message, message
    if name == "cycle":  # the nodes named: 11 -> 12 -> 11
        assert "nodes 11, 12 form a cycle" in message, message
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(error, match=f":{line}:"):
        mesh_export.load(path)


def test_an_swc_cannot_become_a_surface_mesh_or_take_mesh_steps(originals, tmp_path):
    result = run_cli("convert", originals["plain"], tmp_path / "cell.stl")
    assert result.returncode == errors.InvalidArgumentError.exit_code and "swc, hoc or neuroml" in result.stderr
    result = run_cli("convert", originals["plain"], tmp_path / "cell.hoc", "--template", "not a name")
    assert result.returncode == errors.InvalidArgumentError.exit_code and "identifier" in result.stderr
    assert not list(tmp_path.iterdir())


def test_template_option_names_the_hoc_template(originals, tmp_path):
    target = tmp_path / "named.hoc"
    result = run_cli("convert", originals["plain"], target, "--template", "SwcInNamedCell")
    assert result.returncode == 0, result.stderr
    assert hoc_template_of(target) == "SwcInNamedCell"
    cell, sections = load_hoc_in_neuron(target)
    assert len(sections) == 13


# ----------------------------------------------------------------------- node -> section, x


def place_of(cell, name, index, x):
    """The 3-D point at ``x`` along ``cell.name[index]``, from NEURON's own 3-D points."""
    sec = getattr(cell, name)[index]
    arc = np.array([sec.arc3d(k) for k in range(sec.n3d())])
    xyz = np.array([[sec.x3d(k), sec.y3d(k), sec.z3d(k)] for k in range(sec.n3d())])
    return np.array([np.interp(x * sec.L, arc, xyz[:, k]) for k in range(3)])


def check_mapping(skeleton, cells, dropped=None, tolerance=2e-3):
    """Every node's (section, index, x) gives back the node's position on every cell, but for
    the nodes NEURON draws elsewhere: NeuroMorpho's 3-point soma's end points (a sphere drawn
    along x: placed at its centre) and ``dropped``, a node of a one-point section Import3d
    drops (placed where that section attached: the soma's start)."""
    names, indices, x = section_of_nodes(skeleton)
    assert len(names) == len(skeleton) and ((x >= 0) & (x <= 1)).all()
    nodes = skeleton.to_units("um").nodes
    exempt = set()
    soma = np.flatnonzero(skeleton.types == 1)
    if len(soma) == 3 and "3-point soma" in "".join(swc_quirks_header(skeleton)):
        exempt = {int(k) for k in soma if skeleton.parents[k] >= 0}
    for i in range(len(skeleton)):
        if i in exempt:
            assert names[i] == "soma" and x[i] == 0.5
            continue
        if i == dropped:
            assert (names[i], indices[i], x[i]) == ("soma", 0, 0.0)
            continue
        for cell in cells:
            where = place_of(cell, names[i], indices[i], x[i])
            assert np.linalg.norm(where - nodes[i]) < tolerance, (i, names[i], indices[i], x[i], where, nodes[i])
    return names, indices, x


def swc_quirks_header(skeleton):
    from mesh_export.writers.swc import morphology_lines

    return morphology_lines(skeleton)


@pytest.mark.parametrize("name", ["plain", "three_point_soma", "soma_chain", "soma_contour", "soma_tangle",
                                  "custom_types", "several_trees", "several_trees_on_an_outline",
                                  "parents_after_children"])
def test_node_places_hold_on_our_hoc_and_on_import3d_of_our_swc(name, originals, tmp_path):
    skeleton = mesh_export.load(originals[name])
    hoc_cell, _ = load_hoc_in_neuron(mesh_export.write(skeleton, tmp_path / f"places_{name}.hoc"))
    swc_cell, _ = load_swc_in_neuron(mesh_export.write(skeleton, tmp_path / f"places_{name}.swc"))
    dropped = swc_quirks.ONE_POINT_NODE.get(name)
    names, indices, x = check_mapping(skeleton, [hoc_cell, swc_cell], dropped)
    kept = np.ones(len(skeleton), dtype=bool)
    if dropped is not None:
        kept[dropped] = False
    assert set(names[skeleton.types == 2]) == {"axon"} and set(names[(skeleton.types == 3) & kept]) == {"dend"}


def test_node_places_of_a_cell_from_a_mesh(request, tmp_path):
    """A MICrONS-like cell skeletonized from its mesh: thousands of nodes, spines, an apical
    dendrite; every node's place right on both NEURON cells."""
    from support.cells import CELLS, cache_dir, cached_cell
    from mesh_export.process.compartments import split_axon, type_apical
    from mesh_export.process.skeleton import skeletonize

    cell = cached_cell(cache_dir(request), **CELLS["pyramidal"])
    skeleton = type_apical(split_axon(skeletonize(cell.mesh), cell.pre, cell.post, source="the cell's synapses"))
    assert (skeleton.types == 4).any() and (skeleton.types == 2).any()
    hoc_cell, hoc_sections = load_hoc_in_neuron(mesh_export.write(skeleton, tmp_path / "places_mesh_cell.hoc"))
    swc_cell, swc_sections = load_swc_in_neuron(mesh_export.write(skeleton, tmp_path / "places_mesh_cell.swc"))
    assert_same_cell(hoc_sections, swc_sections)
    names, _, _ = check_mapping(skeleton, [hoc_cell, swc_cell])
    assert set(names[skeleton.types == 4]) == {"apic"}
    wires, edges = check_edges(skeleton, hoc_cell, swc_cell)
    assert 1 <= wires < edges / 10  # the trunks leaving the soma


def test_info_counts_as_neurom_on_an_exported_cell_and_on_quirky_files(originals, tmp_path):
    """`mesh-export info --json` on SWC files we wrote from a mesh (the bundled sample) and on
    published-style files: NeuroM's neurites, sections, forking points, leaves, total length
    and soma radius."""
    import morphio
    import neurom

    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    result = run_cli(root_id, "--source", "sample", "--format", "swc", "--lod", "2", "--out", tmp_path,
                     env={"MESH_EXPORT_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    files = [tmp_path / f"{root_id}_lod2.swc"] + [originals[name] for name in
                                                   ("plain", "three_point_soma", "soma_chain", "soma_contour",
                                                    "custom_types", "several_trees", "parents_after_children")]
    morphio.set_maximum_warnings(0)
    for path in files:
        result = run_cli("info", path, "--json")
        assert result.returncode == 0, result.stderr
        ours = json.loads(result.stdout)
        cell = neurom.load_morphology(path)
        for key, feature in (("neurites", "number_of_neurites"), ("sections", "number_of_sections"),
                             ("branch_points", "number_of_forking_points"), ("tips", "number_of_leaves")):
            assert ours[key] == neurom.get(feature, cell), (path.name, key)
        assert ours["total_length"] == pytest.approx(neurom.get("total_length", cell), rel=1e-5), path.name
        assert ours["soma_radius"] == pytest.approx(neurom.get("soma_radius", cell), rel=1e-5), path.name
        assert ours["cable_length"] > ours["total_length"]  # the soma-to-neurite edges, counted apart


@pytest.mark.parametrize("name", ["plain", "soma_chain", "soma_contour", "soma_tangle", "three_point_soma",
                                  "several_trees_on_an_outline"])
def test_points_between_nodes_land_where_neuron_draws_them(name, originals, tmp_path):
    """``section_of_points``: a point a fraction of the way from a node to its parent (BMTK's
    swc_id/swc_pos) is on the same spot of both NEURON cells; on an edge NEURON does not draw
    (a wire from the soma: the section's first 3-D point is the node, not the soma point)
    every fraction is placed at the node."""
    skeleton = mesh_export.load(originals[name])
    hoc_cell, _ = load_hoc_in_neuron(mesh_export.write(skeleton, tmp_path / f"edges_{name}.hoc"))
    swc_cell, _ = load_swc_in_neuron(mesh_export.write(skeleton, tmp_path / f"edges_{name}.swc"))
    wires, edges = check_edges(skeleton, hoc_cell, swc_cell, swc_quirks.ONE_POINT_NODE.get(name, -1))
    # Import3d wires neurites to a one-point soma or to a soma point with several soma children;
    # on an outline's first point (one soma child) the neurites start at the soma point, drawn.
    assert wires < edges / 4 and (wires == 0) == (name == "soma_contour")


def check_edges(skeleton, hoc_cell, swc_cell, dropped=-1):
    """Random points on every edge placed by ``section_of_points``, checked on both cells;
    returns (edges NEURON does not draw, edges checked)."""
    from mesh_export.writers.hoc import section_of_points

    rng = np.random.default_rng(7)
    nodes = np.flatnonzero(skeleton.parents >= 0)
    nodes = nodes[nodes != dropped]
    soma_ends = set()
    if "3-point soma" in "".join(swc_quirks_header(skeleton)):
        soma_ends = {int(k) for k in np.flatnonzero(skeleton.types == 1) if skeleton.parents[k] >= 0}
    nodes = np.array([k for k in nodes if k not in soma_ends])
    fractions = rng.uniform(0, 1, len(nodes))
    names, indices, x = section_of_points(skeleton, nodes, fractions)
    node_names, node_indices, node_x = section_of_nodes(skeleton)
    xyz = skeleton.to_units("um").nodes
    wires = 0
    for k, (node, f) in enumerate(zip(nodes, fractions)):
        parent = skeleton.parents[node]
        want = xyz[node] + f * (xyz[parent] - xyz[node])
        sec = getattr(hoc_cell, names[k])[indices[k]]
        first = np.array([sec.x3d(0), sec.y3d(0), sec.z3d(0)])
        drawn = not (skeleton.types[parent] == 1 and skeleton.types[node] != 1
                     and np.linalg.norm(first - xyz[node]) < 1e-4 and np.linalg.norm(xyz[parent] - xyz[node]) > 1e-4)
        assert (names[k], indices[k]) == (node_names[node], node_indices[node])
        if not drawn:
            wires += 1
            assert x[k] == node_x[node]
            continue
        for cell in (hoc_cell, swc_cell):
            where = place_of(cell, names[k], indices[k], x[k])
            assert np.linalg.norm(where - want) < 2e-3, (node, f, names[k], indices[k], x[k], where, want)
    return wires, len(nodes)


def test_an_swc_we_wrote_in_nanometres_converts_in_micrometres(originals, tmp_path):
    """``--units nm --allow-units`` writes ``# units: nm``: reading it back keeps the numbers'
    meaning, so a conversion to hoc is the same cell in micrometres."""
    import warnings

    skeleton = mesh_export.load(originals["plain"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        in_nm = mesh_export.write(skeleton, tmp_path / "in_nm.swc", units="nm", allow_units=True)
    back = mesh_export.load(in_nm)
    assert back.units == "nm"
    hoc = tmp_path / "from_nm.hoc"
    result = run_cli("convert", in_nm, hoc)
    assert result.returncode == 0, result.stderr
    cell, from_nm = load_hoc_in_neuron(hoc)
    reference_cell, reference = load_swc_in_neuron(originals["plain"])  # keep both cells alive
    assert neuron_figures(from_nm)[0] == pytest.approx(neuron_figures(reference)[0], rel=1e-6)


def test_an_swc_saved_with_a_byte_order_mark_reads_as_without(originals, tmp_path):
    """Windows editors save UTF-8 with a byte-order mark: on the first line it made the soma
    line look like a column header (skipped, then "parent id 1 names no node")."""
    plain = originals["plain"].read_bytes()
    body = b"\n".join(line for line in plain.splitlines() if not line.startswith(b"#"))
    for name, data in (("bom-first-node.swc", b"\xef\xbb\xbf" + body), ("bom-comment.swc", b"\xef\xbb\xbf" + plain)):
        path = tmp_path / name
        path.write_bytes(data)
        marked, reference = mesh_export.load(path), mesh_export.load(originals["plain"])
        np.testing.assert_array_equal(marked.nodes, reference.nodes)
        np.testing.assert_array_equal(marked.parents, reference.parents)
        assert not marked.metadata.get("repairs"), marked.metadata.get("repairs")
