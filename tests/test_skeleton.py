"""Skeletons: mesh -> one tree rooted at the soma, written as SWC / hoc / NeuroML, and checked
by the programs that consume them: NEURON (load, membrane area, a spike), MorphIO (warnings
raised as errors), NeuroM (non-zero checks) and libNeuroML's schema validation."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh

import mesh_export
from consumers import load_hoc_in_neuron, load_swc_in_neuron, membrane_area, neuron_h, spike_trace
from mesh_export.errors import InvalidMeshError, UnitsError
from mesh_export.process.skeleton import (
    InvalidSkeletonError,
    Skeleton,
    SkeletonizeError,
    SkeletonUnitsWarning,
    skeletonize,
)

os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")

AREA_TOLERANCE = 0.10  # issue 12: NEURON area of the model within 10% of the mesh's


# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def skeletons(neuron_meshes) -> dict[str, Skeleton]:
    return {name: skeletonize(mesh) for name, mesh in neuron_meshes.items()}


@pytest.fixture(scope="module")
def swc_files(skeletons, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("swc")
    return {name: mesh_export.write(sk, out / f"{name}.swc") for name, sk in skeletons.items()}


def ball_and_sticks() -> trimesh.Trimesh:
    """A 5 um soma with three 1 um neurites (one branching), as overlapping closed pieces (nm)."""
    parts = [trimesh.creation.icosphere(subdivisions=3, radius=5000.0)]

    def stick(a, b, r):
        a, b = np.asarray(a, float), np.asarray(b, float)
        cyl = trimesh.creation.cylinder(radius=r, segment=[a, b], sections=16)
        return trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(cyl.vertices, cyl.faces, 600.0), process=False)

    parts.append(stick([4000, 0, 0], [60000, 0, 0], 1000))
    parts.append(stick([-4000, 0, 0], [-40000, 5000, 0], 800))
    parts.append(stick([0, 4000, 0], [0, 30000, 0], 900))
    parts.append(stick([0, 29000, 0], [20000, 50000, 0], 600))
    parts.append(stick([0, 29000, 0], [-20000, 50000, 0], 600))
    mesh = trimesh.util.concatenate(parts)
    mesh = trimesh.Trimesh(mesh.vertices + [2.0e5, 1.0e5, 5.0e4], mesh.faces, process=False)
    mesh.units = "nm"
    return mesh


# ------------------------------------------------------------------- real neurons


def test_one_tree_rooted_at_the_soma(skeletons):
    for name, sk in skeletons.items():
        sk.validate()
        assert sk.parents[0] == -1 and (sk.parents[1:] >= 0).all(), name
        assert (sk.parents[1:] < np.arange(1, len(sk))).all(), f"{name}: parents before children"
        assert sk.types[0] == 1 and set(np.unique(sk.types[1:])) <= {2, 3, 4}, name
        assert np.isfinite(sk.radii).all() and (sk.radii > 0).all(), name
        assert sk.units == "nm"
        assert len(sk) > 100


def test_soma_is_found_where_the_cell_body_is(neuron_meshes, skeletons):
    navis = pytest.importorskip("navis")
    for skel in navis.example_neurons(kind="skeleton"):
        name = str(skel.id)
        if name not in skeletons or skel.soma is None:
            continue
        soma_id = np.atleast_1d(skel.soma)[0]
        nodes = skel.nodes.set_index("node_id")
        expected = np.asarray(nodes.loc[soma_id, ["x", "y", "z"]], dtype=np.float64) * 8.0
        found = skeletons[name].nodes[0]
        assert np.linalg.norm(found - expected) < 3000.0, f"{name}: soma {found} vs navis {expected} (nm)"


def test_swc_loads_in_neuron_with_area_close_to_the_mesh(neuron_meshes, swc_files):
    ratios = {}
    for name, path in swc_files.items():
        cell, sections = load_swc_in_neuron(path)
        ratios[name] = membrane_area(sections) / (neuron_meshes[name].area * 1e-6)
        del cell
    print("NEURON area / mesh area:", {k: round(v, 3) for k, v in ratios.items()})
    for name, ratio in ratios.items():
        assert abs(ratio - 1) <= AREA_TOLERANCE, f"{name}: NEURON area / mesh area = {ratio:.3f}"


def test_neuron_simulates_a_spike(swc_files):
    h = neuron_h()
    path = next(iter(swc_files.values()))
    cell, sections = load_swc_in_neuron(path)
    soma = cell.soma[0] if hasattr(cell, "soma") else sections[0]
    v, _stim = spike_trace(h, sections, soma)
    assert np.isfinite(v).all()
    assert v.max() > 0, f"no spike: peak {v.max():.1f} mV"
    assert v[-1] < -40, "the membrane repolarises after the spike"


def test_hoc_area_matches_swc_import(skeletons, swc_files, tmp_path):
    h = neuron_h()
    for name, sk in list(skeletons.items())[:3]:
        template = f"Cell_{name}"
        hoc = mesh_export.write(sk, tmp_path / f"{name}.hoc", template=template)
        cell, hoc_sections = load_hoc_in_neuron(hoc, template)
        swc_cell, swc_sections = load_swc_in_neuron(swc_files[name])
        hoc_area, swc_area = membrane_area(hoc_sections), membrane_area(swc_sections)
        # The same sections and 3-D points; only nseg differs (the hoc's ~1 per 40 um, Import3d's 1),
        # which moves NEURON's summed segment areas by ~1e-5 where 3-D points repeat.
        assert abs(hoc_area / swc_area - 1) < 1e-4, f"{name}: hoc {hoc_area:.0f} vs SWC {swc_area:.0f} um2"
        assert len(hoc_sections) == len(swc_sections)
    # and the hoc cell simulates too
    v, _stim = spike_trace(h, hoc_sections, cell.soma[0])
    assert np.isfinite(v).all() and v.max() > 0


def test_morphio_loads_without_warnings(swc_files):
    morphio = pytest.importorskip("morphio")
    morphio.set_raise_warnings(True)
    try:
        for name, path in swc_files.items():
            morphology = morphio.Morphology(str(path))
            assert len(morphology.root_sections) >= 1, name
            assert morphology.soma.type == morphio.SomaType.SOMA_SINGLE_POINT
    finally:
        morphio.set_raise_warnings(False)


def test_neurom_non_zero_checks_pass(swc_files):
    neurom = pytest.importorskip("neurom")
    from neurom.check import morphology_checks as checks

    for name, path in swc_files.items():
        morphology = neurom.load_morphology(str(path))
        for check in ("has_all_nonzero_neurite_radii", "has_all_nonzero_segment_lengths",
                      "has_all_nonzero_section_lengths", "has_nonzero_soma_radius"):
            assert getattr(checks, check)(morphology).status, f"{name}: {check}"


def test_swc_text(swc_files):
    path = next(iter(swc_files.values()))
    text = path.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    joined = "\n".join(header)
    for word in ("units: um", "mesh-export", "root id:", "source:", "soma: node 1"):
        assert word in joined
    rows = np.loadtxt(path, comments="#")
    ids, types, radii, parents = rows[:, 0], rows[:, 1], rows[:, 5], rows[:, 6]
    assert np.array_equal(ids, np.arange(1, len(rows) + 1))
    assert parents[0] == -1 and (parents[1:] >= 1).all() and (parents[1:] < ids[1:]).all()
    assert types[0] == 1 and set(np.unique(types[1:])) <= {2, 3, 4}
    assert (radii > 0).all()
    # micrometres: a fly neuron spans ~100-300 um, not 1e5 nm
    assert np.ptp(rows[:, 2:5], axis=0).max() < 1000


def test_neuroml_is_schema_valid(skeletons, tmp_path):
    pytest.importorskip("neuroml")
    from neuroml.utils import validate_neuroml2

    sk = next(iter(skeletons.values()))
    path = mesh_export.write(sk, tmp_path / "cell.cell.nml")
    validate_neuroml2(str(path))  # raises on an invalid document
    import neuroml.loaders

    doc = neuroml.loaders.read_neuroml2_file(str(path))
    assert len(doc.cells[0].morphology.segments) == len(sk)


# ------------------------------------------------------------------ options, synthetic


def test_ball_and_sticks_heal_and_largest_component():
    mesh = ball_and_sticks()
    healed = skeletonize(mesh)
    largest = skeletonize(mesh, largest_component=True)
    assert healed.total_length() > 2 * largest.total_length()
    assert healed.metadata["steps"][-1]["healed_gaps"] >= 3
    # soma found in the ball, radius about the ball's
    centre = np.array([2.0e5, 1.0e5, 5.0e4])
    assert np.linalg.norm(healed.nodes[0] - centre) < 1500
    assert 3500 < healed.radii[0] < 8000
    # neurite radii come from the surface: ~0.6-1 um
    neurite = np.median(healed.radii[1:])
    assert 450 < neurite < 1300, neurite
    # total length ~ the sticks' length outside the ball
    assert 1.3e5 < healed.total_length() < 2.3e5


def test_a_dense_piece_heals_to_its_nearest_piece_not_to_the_far_cell():
    """Two dense blobs (every vertex's 128 nearest are its own) 35 um past a neurite's tip and 4 um
    from each other: the far blob joins the near one, not the cell 35 um away (a decimated axon
    broken into dense fragments otherwise hangs off whatever dendrite is nearest)."""
    base = ball_and_sticks()
    shift = np.array([2.0e5, 1.0e5, 5.0e4])
    blobs = [trimesh.creation.icosphere(subdivisions=4, radius=1000.0) for _ in range(2)]
    blobs[0].apply_translation(shift + [95000.0, 0, 0])
    blobs[1].apply_translation(shift + [95000.0, 6000.0, 0])
    mesh = trimesh.util.concatenate([base, *blobs])
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    mesh.units = "nm"
    step = skeletonize(mesh).metadata["steps"][-1]
    # one wire from the stick's tip to the near blob (~34 um); the far blob's gap (4 um) is short
    assert step["wires"]["count"] >= 1
    assert 30000 < step["wires"]["length"] < 40000, step["wires"]


def test_a_soma_region_that_breaks_up_keeps_the_stretch_around_the_ball(neuron_meshes, monkeypatch):
    """navis 754538881's cell body is irregular: at 0.8 of the inscribed radius its thick
    surface breaks up, and the vertex nearest the ball's centre lies in a patch of a few
    vertices (the soma was 0.05 x the true one when that patch was taken). The stretch with the
    most area near the ball is the region; where even that collapses, the next fraction is tried
    (MIN_REGION_RADIUS), as a 0.8-only run shows against the looser fractions."""
    from mesh_export.process import soma

    mesh = neuron_meshes["754538881"]
    monkeypatch.setattr(soma, "THICK_FRACTIONS", (0.6,))
    reference = skeletonize(mesh).radii[0]
    monkeypatch.setattr(soma, "THICK_FRACTIONS", (0.8,))
    assert skeletonize(mesh).radii[0] == pytest.approx(reference, rel=0.1)
    monkeypatch.setattr(soma, "THICK_FRACTIONS", (0.8, 0.6))
    assert skeletonize(mesh).radii[0] == pytest.approx(reference, rel=0.1)
    # the guard itself: a region under MIN_REGION_RADIUS of the ball is grown again, looser
    monkeypatch.setattr(soma, "MIN_REGION_RADIUS", 1e6)  # every region "collapsed": the last fraction's is kept
    monkeypatch.setattr(soma, "THICK_FRACTIONS", (0.8, 0.6))
    assert skeletonize(mesh).radii[0] == pytest.approx(reference, rel=1e-6)


@pytest.mark.slow
def test_subdividing_a_mesh_keeps_its_morphology(neuron_meshes):
    """The same surface at 1M faces (navis's first neuron, each face split into many flat ones)
    gives the soma and cable the 13k-face original gives: at 1M faces the strict thickness test
    broke the soma region up into a 1.3 um patch (3.3 um at 13k faces) until the collapse guard
    compared the region with the largest inscribed ball and a dense surface got a slack of its own."""
    from support.large import subdivided_neuron

    original = skeletonize(next(iter(neuron_meshes.values())))
    vertices, faces = subdivided_neuron(1_000_000)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.units = "nm"
    fine = skeletonize(mesh)
    assert fine.radii[0] == pytest.approx(original.radii[0], rel=0.2)
    assert fine.total_length() == pytest.approx(original.total_length(), rel=0.2)


@pytest.mark.slow
def test_dendrites_that_touch_make_one_tree_with_the_membrane(tmp_path):
    """Two dendrites that curve towards each other and touch 40 um out, their surfaces fused into
    one (a voxel remesh of the overlapping sticks, as a segmentation meshes touching neurites):
    the loop is cut, the cable is the sticks' length and NEURON has the mesh's membrane."""
    from mesh_export.process.remesh import watertight

    def stick(a, b, r):
        return trimesh.creation.cylinder(radius=r, segment=[np.asarray(a, float), np.asarray(b, float)], sections=24)

    parts = [trimesh.creation.icosphere(subdivisions=4, radius=5000.0),
             stick([4000, 0, 0], [40000, 0, 0], 800), stick([40000, 0, 0], [40000, 40000, 0], 800),
             stick([0, 4000, 0], [0, 40000, 0], 800), stick([0, 40000, 0], [40500, 40000, 0], 800),
             stick([40000, 40000, 0], [80000, 60000, 0], 600)]
    joined = trimesh.util.concatenate(parts)
    mesh = trimesh.Trimesh(joined.vertices, joined.faces, process=False)
    mesh.units = "nm"
    fused = watertight(mesh, pitch=200.0)
    fused.units = "nm"
    assert len(trimesh.graph.connected_components(fused.edges)) == 1
    sk = skeletonize(fused)
    _, sections = load_swc_in_neuron(mesh_export.write(sk, tmp_path / "touching.swc"))
    assert membrane_area(sections) / (fused.area * 1e-6) == pytest.approx(1.0, abs=0.10)
    sticks_um = 36 + 40 + 36 + 40.5 + float(np.hypot(40, 20))  # outside the 5 um soma
    assert sk.total_length() / 1000 == pytest.approx(sticks_um, rel=0.15)


def test_soma_given(neuron_mesh, skeletons):
    auto = skeletonize(neuron_mesh)
    point_um = auto.nodes[0] / 1000.0
    given = skeletonize(neuron_mesh, soma=point_um, soma_units="um")
    assert np.allclose(given.nodes[0], auto.nodes[0])
    assert given.metadata["steps"][-1]["soma_given"] is True


def test_api_write_skeletonizes_a_mesh_for_swc(neuron_mesh, tmp_path):
    path = mesh_export.write(neuron_mesh, tmp_path / "auto.swc")
    rows = np.loadtxt(path, comments="#")
    assert rows[0, 1] == 1 and rows[0, 6] == -1


def test_the_writer_layer_leaves_skeletonizing_to_the_api(neuron_mesh, tmp_path):
    """writers sit below process: their write() refuses a surface for a morphology format
    (no file appears) and mesh_export.write, above both, skeletonizes it first."""
    from mesh_export.errors import InvalidArgumentError
    from mesh_export.writers.output import write

    with pytest.raises(InvalidArgumentError, match="takes a skeleton"):
        write(neuron_mesh, tmp_path / "direct.swc")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidArgumentError, match="takes no option"):  # options checked before skeletonizing
        mesh_export.write(neuron_mesh, tmp_path / "auto.swc", colour="red")


def test_skeleton_to_surface_format_is_refused(skeletons, tmp_path):
    from mesh_export.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        mesh_export.write(next(iter(skeletons.values())), tmp_path / "x.stl")


def test_units_other_than_um_need_a_flag(skeletons, tmp_path):
    sk = next(iter(skeletons.values()))
    with pytest.raises(UnitsError):
        mesh_export.write(sk, tmp_path / "nm.swc", units="nm")
    assert not (tmp_path / "nm.swc").exists()
    with pytest.warns(SkeletonUnitsWarning):
        path = mesh_export.write(sk, tmp_path / "nm.swc", units="nm", allow_units=True)
    rows = np.loadtxt(path, comments="#")
    assert np.allclose(rows[0, 2:5], sk.nodes[0], atol=1e-3)
    assert "units: nm" in path.read_text()


def test_writer_sorts_and_renumbers_any_tree(tmp_path):
    # children listed before parents, root last, 0-based: the writer fixes the order
    nodes = np.array([[30.0, 0, 0], [20.0, 0, 0], [10.0, 0, 0], [0.0, 0, 0], [10.0, 10, 0]])
    parents = np.array([1, 2, 3, -1, 2])
    types = np.array([3, 3, 3, 1, 3])
    sk = Skeleton(nodes, parents, np.array([1.0, 1, 1, 5, 0.5]), types, "um")
    path = mesh_export.write(sk, tmp_path / "tree.swc")
    rows = np.loadtxt(path, comments="#")
    assert rows[0, 1] == 1 and rows[0, 6] == -1
    assert (rows[1:, 6] < rows[1:, 0]).all()
    assert sorted(map(tuple, rows[:, 2:5])) == sorted(map(tuple, nodes))


# ----------------------------------------------------------------------- bad input


def test_empty_mesh_is_refused():
    mesh = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    mesh.units = "nm"
    with pytest.raises(InvalidMeshError, match="empty"):
        skeletonize(mesh)


def test_flat_mesh_is_refused():
    xs, ys = np.meshgrid(np.arange(20.0), np.arange(20.0))
    vertices = np.column_stack([xs.ravel() * 100, ys.ravel() * 100, np.zeros(400)])
    idx = np.arange(400).reshape(20, 20)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.units = "nm"
    with pytest.raises(SkeletonizeError, match="no volume"):
        skeletonize(mesh)
    assert SkeletonizeError.exit_code not in set(range(1, 14)) | {70}


def test_degenerate_mesh_is_refused():
    mesh = trimesh.Trimesh(np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]]), np.array([[0, 1, 2]]), process=False)
    mesh.units = "nm"
    with pytest.raises(SkeletonizeError):
        skeletonize(mesh)


def test_unknown_units_are_refused(sphere):
    mesh = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False)
    assert mesh.units is None
    with pytest.raises(UnitsError, match="units"):
        skeletonize(mesh)


def test_validate_catches_bad_skeletons():
    nodes = np.zeros((3, 3)) + np.arange(3)[:, None]
    good = Skeleton(nodes, [-1, 0, 1], [1.0, 1, 1], [1, 3, 3], "um")
    good.validate()
    with pytest.raises(InvalidSkeletonError, match="root"):
        Skeleton(nodes, [-1, -1, 1], [1.0, 1, 1], [1, 3, 3], "um").validate()
    with pytest.raises(InvalidSkeletonError, match="radius"):
        Skeleton(nodes, [-1, 0, 1], [1.0, np.nan, 1], [1, 3, 3], "um").validate()
    with pytest.raises(InvalidSkeletonError, match="radius"):
        Skeleton(nodes, [-1, 0, 1], [1.0, -1, 1], [1, 3, 3], "um").validate()
    # A zero radius is NEURON-loadable (a zero-diameter point; MorphIO warns): kept and stated.
    Skeleton(nodes, [-1, 0, 1], [1.0, 0, 1], [1, 3, 3], "um").validate()
    # Custom neurite types (5 and above) are kept (Import3d's dend_5); 0 is "undefined".
    Skeleton(nodes, [-1, 0, 1], [1.0, 1, 1], [1, 5, 5], "um").validate()
    with pytest.raises(InvalidSkeletonError, match="custom neurite type"):
        Skeleton(nodes, [-1, 0, 1], [1.0, 1, 1], [1, 5, 0], "um").validate()
    with pytest.raises(InvalidSkeletonError, match="hang from a neurite"):
        Skeleton(nodes, [-1, 0, 1], [1.0, 1, 1], [1, 3, 1], "um").validate()
    with pytest.raises(InvalidSkeletonError):
        Skeleton(nodes, [-1, 2, 1], [1.0, 1, 1], [1, 3, 3], "um").validate()  # a cycle
    with pytest.raises(UnitsError):
        Skeleton(nodes, [-1, 0, 1], [1.0, 1, 1], [1, 3, 3], None).validate()
    assert InvalidSkeletonError.exit_code not in set(range(1, 14)) | {70}


def test_to_units_and_length():
    sk = Skeleton([[0.0, 0, 0], [3000.0, 4000, 0]], [-1, 0], [500.0, 100.0], [1, 3], "nm")
    um = sk.to_units("um")
    assert um.total_length() == pytest.approx(5.0)
    assert um.radii[0] == pytest.approx(0.5)
    assert sk.units == "nm"


# ------------------------------------------------------------------------- the CLI


def test_cli_convert_mesh_to_swc_loads_in_neuron_and_morphio(neuron_mesh, tmp_path):
    import json

    import morphio

    from conftest import run_cli

    source = tmp_path / "neuron.ply"
    mesh_export.write(neuron_mesh, source)
    out = tmp_path / "neuron.swc"
    result = run_cli("convert", source, out, "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["units"] == "um" and payload["nodes"] > 50
    assert [s["step"] for s in payload["steps"]] == ["skeletonize"]
    _, sections = load_swc_in_neuron(out)
    assert membrane_area(sections) == pytest.approx(neuron_mesh.area / 1e6, rel=0.30)
    morphio.set_raise_warnings(True)
    try:
        assert len(morphio.Morphology(str(out)).sections) > 5
    finally:
        morphio.set_raise_warnings(False)


@pytest.mark.slow
def test_cli_export_root_id_to_swc_and_hoc(tmp_path):
    """`mesh-export <root id> --format swc|hoc` from a real precomputed layer (the bundled sample)."""
    import json

    from conftest import run_cli
    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache")}
    for fmt in ("swc", "hoc"):
        result = run_cli(root_id, "--source", "sample", "--format", fmt, "--out", tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        sidecar = json.loads((tmp_path / f"{root_id}_lod0.{fmt}.json").read_text())
        assert sidecar["units"] == "um" and sidecar["nodes"] >= 2 and sidecar["membrane_area"] > 0
        assert sidecar["steps"][-1]["step"] == "skeletonize"
    text = (tmp_path / f"{root_id}_lod0.swc").read_text()
    assert f"# root id: {root_id}" in text and "# units: um" in text
    _, sections = load_swc_in_neuron(tmp_path / f"{root_id}_lod0.swc")
    assert membrane_area(sections) > 0
    refused = run_cli(root_id, "--source", "sample", "--format", "swc", "--units", "nm", "--out", tmp_path,
                      "--overwrite", env=env)
    assert refused.returncode == mesh_export.errors.UnitsError.exit_code
    assert "--allow-units" in refused.stderr
    allowed = run_cli(root_id, "--source", "sample", "--format", "swc", "--units", "nm", "--allow-units",
                      "--out", tmp_path, "--overwrite", env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert "# units: nm" in (tmp_path / f"{root_id}_lod0.swc").read_text()
