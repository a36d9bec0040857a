"""Issue 22: the soma is the cell body's outer membrane.

Real cell bodies' meshes hold more than their membrane: the nucleus envelope (a piece of its own,
or joined to the membrane by a few non-manifold faces), flat sheets across the body (chunk walls,
self-contacts), a top cut flat by a cutout's edge (open, or capped). The synthetic MICrONS-like
cells (tests/support/cells.py) carry each of these, with their ground truth: which vertices are
outer soma membrane, and how many trunks leave the soma.

Every cell is written as SWC through the API (``mesh_export.write(mesh, "x.swc")``, the default
skeletonization), read back by NEURON's Import3d, MorphIO (strict) and NeuroM, and judged by
tests/support/soma_truth.py:

- NEURON's membrane area within 10% of the mesh's outer surface: the mesh's area less the
  ground truth's inner surfaces (nucleus, sheets and the faces bridging them to the membrane);
- the soma's radius within 20% of the equivalent sphere of the outer soma membrane;
- neurite cable inside the outer membrane (nearer the centre than the membrane along the same
  direction, by more than 5% of its distance) at most 1% of the total, and no node there;
- primary neurites (NeuroM's neurites, the soma's children) = the trunks the cell was built with;
- the header says what was set aside and how much area it had.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import mesh_export
from consumers import load_swc_in_neuron, membrane_area
from mesh_export.process.skeleton import read_swc
from support.cells import CELLS, SOMA_CELLS, cache_dir, cached_cell
from support.soma_truth import cable_in_soma_sphere, soma_figures

#: The other cells the morphology tests build (test_morphology_cells.py).
OTHER_CELLS = {
    "debris": dict(seed=5, name="debris", debris=100, soma_diameter=9.0),
    "decimated": dict(seed=5, name="decimated", debris=100, soma_diameter=9.0, face_area_um2=0.1),
    "small-coarse-spiny": dict(seed=8, name="small-coarse-spiny", soma_diameter=8.0, face_area_um2=0.3,
                               spines_per_um=2.0),
}
ALL_CELLS = {**CELLS, **OTHER_CELLS, **SOMA_CELLS}
SLOW = {"large"}


def _written(request, tmp_path, name):
    cell = cached_cell(cache_dir(request), **ALL_CELLS[name])
    tmp_path.mkdir(parents=True, exist_ok=True)
    swc = mesh_export.write(cell.mesh, tmp_path / f"{name}.swc")  # the API's default skeletonization
    return cell, swc


def check_soma(cell, swc) -> dict:
    _, sections = load_swc_in_neuron(swc)
    figures = soma_figures(cell, read_swc(swc), membrane_area(sections))
    print(cell.name, {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})
    assert abs(figures["area_ratio"] - 1) <= 0.10, f"{cell.name}: NEURON area / outer area {figures['area_ratio']:.3f}"
    assert abs(figures["soma_radius_ratio"] - 1) <= 0.20, f"{cell.name}: soma radius {figures['soma_radius_ratio']:.2f} x"
    assert figures["cable_inside"] <= 0.01, f"{cell.name}: {figures['cable_inside']:.1%} of the cable inside the soma"
    assert figures["nodes_inside"] == 0, f"{cell.name}: {figures['nodes_inside']} nodes inside the soma"
    assert figures["primary"] == figures["trunks"], f"{cell.name}: {figures['primary']} primary neurites, " \
                                                    f"{figures['trunks']} trunks"
    return figures


def _consumers_accept(swc, trunks):
    import morphio
    import neurom
    from neurom.check import morphology_checks as checks

    morphio.set_raise_warnings(True)
    try:
        assert len(morphio.Morphology(str(swc)).root_sections) == trunks
    finally:
        morphio.set_raise_warnings(False)
    morphology = neurom.load_morphology(str(swc))
    assert len(morphology.neurites) == trunks
    for check in ("has_all_nonzero_neurite_radii", "has_all_nonzero_segment_lengths",
                  "has_all_nonzero_section_lengths", "has_nonzero_soma_radius"):
        assert getattr(checks, check)(morphology).status, check


def _set_aside_line(swc) -> str:
    return next(line for line in swc.read_text().splitlines() if line.startswith("# set aside"))


def _area_in_header(text: str, kind: str) -> float:
    match = re.search(r"\d+ " + kind + r"[^;]*? ([\d,.]+) um\^2", text)
    assert match, text
    return float(match.group(1).replace(",", ""))


@pytest.mark.parametrize("name", list(SOMA_CELLS))
def test_the_soma_is_the_outer_membrane(name, request, tmp_path):
    cell, swc = _written(request, tmp_path, name)
    check_soma(cell, swc)
    _consumers_accept(swc, cell.trunks)
    # what was set aside is stated with its area: the ground truth's inner surfaces, within 10%
    # (the skeletonizer's own pieces-inside-the-soma rule may take small debris blobs too)
    line = _set_aside_line(swc)
    truth = float(cell.mesh.area_faces[cell.inner_faces].sum()) * 1e-6
    found = _area_in_header(line, "inner closed surfaces") + _area_in_header(line, "sheets")
    assert truth <= found * 1.1 and found <= truth * 1.1 + 25.0, (line, truth)


def test_convert_a_cut_cell_with_a_wall_to_hoc(request, tmp_path):
    """The issue's cut spiny cell through the CLI: ``convert cell.ply cell.hoc``; NEURON loads
    the hoc with the outer surface's area (within 10%) and one primary neurite per trunk; the
    header says what was set aside."""
    from conftest import run_cli
    from consumers import load_hoc_in_neuron

    cell = cached_cell(cache_dir(request), **SOMA_CELLS["cut-open"])
    source = tmp_path / "cut.ply"
    cell.mesh.export(source)
    result = run_cli("convert", source, tmp_path / "cut.hoc", "--units-in", "nm")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "cut.hoc").read_text()
    assert "1 sheets (walls, self-contacts)" in text, text[:2000]
    template = re.search(r"^begintemplate (\w+)", text, re.MULTILINE).group(1)
    hoc_cell, sections = load_hoc_in_neuron(tmp_path / "cut.hoc", template)
    assert membrane_area(sections) / (cell.outer_area * 1e-6) == pytest.approx(1.0, abs=0.10)
    assert sum(1 for sec in sections if sec.parentseg() is not None and sec.parentseg().sec == hoc_cell.soma[0]) \
        == cell.trunks


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in {**CELLS, **OTHER_CELLS}])
def test_cells_without_inner_surfaces_keep_their_soma(name, request, tmp_path):
    cell, swc = _written(request, tmp_path, name)
    check_soma(cell, swc)
    _consumers_accept(swc, cell.trunks)


def test_a_root_ids_export_states_what_was_set_aside(request, tmp_path):
    """The issue's decimated pyramidal cell as a user meets it: a root id served from a graphene
    segmentation (Draco-quantized), its nucleus from a CAVE soma table. The table's point lies
    inside the nucleus envelope (joined to the membrane by non-manifold bridges), which is set
    aside: the soma is still the outer membrane, and the sidecar records what was set aside."""
    import json

    from mesh_export.api import export
    from support.fake_cave import FakeCave, nucleus_frame
    from support.neurons import make_root_ids
    from support.precomputed import LayerGeometry, write_graphene_layer
    from support.server import FixtureServer

    token = "0123456789abcdef0123456789abcdef"
    cell = cached_cell(cache_dir(request), **SOMA_CELLS["nucleus-joined"])
    root_id = make_root_ids(1, 2222)[0]
    meshes = {root_id: cell.mesh}
    geometry = LayerGeometry.covering(meshes, resolution=(8.0, 8.0, 40.0), chunk_size=(4096, 4096, 512))
    write_graphene_layer(tmp_path / "graphene", meshes, geometry=geometry, table="cells")
    with FixtureServer(tmp_path, token=token) as srv:
        srv.add_graphene("cells", tmp_path / "graphene")
        srv.add_datastack("cells", graphene_table="cells", extra={"soma_table": "nucleus_detection_v0"})
        cave = FakeCave(srv, "cells", graphene_table="cells")
        cave.add_table("nucleus_detection_v0", nucleus_frame([(root_id, cell.nucleus, 280.0)]),
                       schema="nucleus_detection")
        result = export(root_id, format="swc", out_dir=tmp_path / "out", datastack="cells", server=srv.url,
                        token=token, cache_dir=tmp_path / "cache", timeout=20.0)
    text = result.output.read_text()
    assert "soma from: nucleus from nucleus_detection_v0" in text
    figures = check_soma(cell, result.output)
    assert figures["primary"] == cell.trunks
    record = json.loads(result.sidecar.read_text())["steps"][-1]["set_aside"]
    truth = float(cell.mesh.area_faces[cell.inner_faces].sum())
    found = record["inner_surfaces"]["area"] + record["sheets"]["area"]
    assert record["inner_surfaces"]["count"] >= 1 and found == pytest.approx(truth, rel=0.1), (record, truth)
    line = _set_aside_line(result.output)
    assert _area_in_header(line, "inner closed surfaces") == pytest.approx(record["inner_surfaces"]["area"] * 1e-6,
                                                                          abs=0.1)


def test_navis_meshes(neuron_meshes, tmp_path):
    """Real fly neurons no one here built (navis's hemibrain meshes, 8 nm units): NEURON's area
    within 10% of the mesh's outer surface (its area less what was set aside, at most 2% of it:
    they hold no nucleus envelope); no neurite cable inside the soma (the sphere NEURON draws,
    of our soma's radius about its node: these meshes have no membrane truth); one primary
    neurite where navis's traced skeleton has a soma (insect neurons are unipolar: one cell
    body fibre leaves it). The soma's radius against navis's traced one is in
    benchmarks/morphology_figures.py (1.03-1.30 x), not asserted: a traced radius is no membrane."""
    navis = pytest.importorskip("navis")
    with_soma = {str(s.id) for s in navis.example_neurons(kind="skeleton") if s.soma is not None}
    for name, mesh in neuron_meshes.items():
        swc = mesh_export.write(mesh, tmp_path / f"{name}.swc")
        sk = read_swc(swc).to_units("nm")
        _, sections = load_swc_in_neuron(swc)
        text = swc.read_text()
        aside = 0.0
        if "# set aside (" in text:
            line = _set_aside_line(swc)
            aside = (_area_in_header(line, "inner closed surfaces") + _area_in_header(line, "sheets")) * 1e6
        assert aside <= 0.02 * mesh.area, (name, _set_aside_line(swc))
        ratio = membrane_area(sections) / ((mesh.area - aside) * 1e-6)
        inside, total = cable_in_soma_sphere(sk)
        cable_inside = inside / total
        print(name, f"area / outer {ratio:.3f}, cable inside the soma {cable_inside:.2%}, "
                    f"primary {(sk.parents == 0).sum()}")
        assert abs(ratio - 1) <= 0.10, (name, ratio)
        assert cable_inside <= 0.01, (name, cable_inside)
        if name in with_soma:
            assert (sk.parents == 0).sum() == 1, name
        _consumers_accept(swc, int((sk.parents == 0).sum()))


def _ball_and_sticks(extra=()):
    """A 5 um soma with three 1 um sticks (overlapping closed pieces, nm), plus ``extra`` pieces."""
    import trimesh

    parts = [trimesh.creation.icosphere(subdivisions=4, radius=5000.0)]
    for a, b in (([4000, 0, 0], [60000, 0, 0]), ([-4000, 0, 0], [-40000, 5000, 0]), ([0, 4000, 0], [0, 30000, 0])):
        cyl = trimesh.creation.cylinder(radius=1000.0, segment=[np.asarray(a, float), np.asarray(b, float)], sections=16)
        parts.append(trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(cyl.vertices, cyl.faces, 600.0), process=False))
    mesh = trimesh.util.concatenate([*parts, *extra])
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    mesh.units = "nm"
    return mesh


def test_an_enclosed_surface_is_set_aside_whichever_way_it_faces(tmp_path):
    """A nucleus envelope 3.8 um across inside a 5 um soma, facing out of itself (a body of its
    own) or into itself (a cavity, as a segmentation with the nucleus left out meshes it), and a
    flat sheet across the soma: each set aside (the visibility test needs no orientation), the
    soma drawn on the outer membrane."""
    import trimesh

    nucleus = trimesh.creation.icosphere(subdivisions=4, radius=3800.0)
    cavity = trimesh.Trimesh(nucleus.vertices, nucleus.faces[:, ::-1], process=False)
    sheet = trimesh.creation.box(extents=[6000.0, 6000.0, 1e-3])  # a flat wall (corners 4.2 um out)
    sheet = trimesh.Trimesh(sheet.vertices, sheet.faces[np.abs(sheet.face_normals[:, 2]) > 0.5][:2], process=False)
    sheet = trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(sheet.vertices, sheet.faces, 400.0), process=False)
    plain = mesh_export.write(_ball_and_sticks(), tmp_path / "plain.swc")
    radius = read_swc(plain).radii[0]
    for name, inner, kind in (("outward", nucleus, "inner closed surfaces"), ("cavity", cavity, "inner closed surfaces"),
                              ("sheet", sheet, "sheets")):
        swc = mesh_export.write(_ball_and_sticks([inner]), tmp_path / f"{name}.swc")
        line = _set_aside_line(swc)
        assert _area_in_header(line, kind) == pytest.approx(inner.area * 1e-6, rel=0.01), (name, line)
        sk = read_swc(swc)
        assert sk.radii[0] == pytest.approx(radius, rel=0.02), name
        assert (sk.parents == 0).sum() == 3, name


def test_the_membrane_is_never_set_aside_where_it_splits(tmp_path):
    """The outer membrane cut into patches by non-manifold edges (a flap of faces all along a seam
    round the soma, as a decimated mesh has thousands of non-manifold edges): each hemisphere is
    a patch of its own, seen from outside, so nothing is set aside, and NEURON keeps the area."""
    import trimesh

    mesh = _ball_and_sticks()
    faces = np.asarray(mesh.faces)
    soma = np.flatnonzero(faces.max(axis=1) < 2562)  # the icosphere's faces come first
    upper = mesh.vertices[faces[soma]].mean(axis=1)[:, 2] > 0
    directed = {}
    for f, up in zip(faces[soma], upper):
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            directed[(a, b)] = up
    seam = [(a, b) for (a, b), up in directed.items() if up and not directed.get((b, a), True)]
    assert len(seam) > 20
    vertices, flaps = list(mesh.vertices), []
    for a, b in seam:  # a small flap outward on every seam edge
        vertices.append((mesh.vertices[a] + mesh.vertices[b]) / 2 * 1.03)
        flaps.append([b, a, len(vertices) - 1])
    split = trimesh.Trimesh(np.array(vertices), np.vstack([faces, flaps]), process=False)
    split.units = "nm"
    from mesh_export.process.enclosed import _patches

    patch, _ = _patches(np.asarray(split.faces), len(split.vertices))
    assert len(np.unique(patch[soma])) == 2  # the seam splits the soma's membrane in two
    swc = mesh_export.write(split, tmp_path / "split.swc")
    assert "set aside: nothing" in swc.read_text()
    _, sections = load_swc_in_neuron(swc)
    assert membrane_area(sections) == pytest.approx(split.area * 1e-6, rel=0.10)


@pytest.mark.parametrize("name", ["nucleus-joined", "sheet"])
def test_a_clustered_surface_sets_aside_the_same(name, request, tmp_path, monkeypatch):
    """A real MICrONS mesh far finer than the wavefront's bands is skeletonized on a clustered
    surface (process/skeleton_surface.py) whose vertices carry the full mesh's area; what is set
    aside must leave the model's area too. Here the clustering grid is made coarse enough
    (0.5 um) to take the synthetic cells as they are, instead of subdividing them to ~10M faces:
    the same soma figures hold, and the header names both the clustering and what was set aside."""
    from mesh_export.process import skeleton_surface

    cell, unclustered = _written(request, tmp_path / "as-is", name)
    monkeypatch.setattr(skeleton_surface, "CELLS_PER_BAND", 2)
    _, swc = _written(request, tmp_path, name)
    text = swc.read_text()
    assert "# surface: skeletonized on the mesh's" in text and "0.5 um grid" in text
    figures = check_soma(cell, swc)
    # the carried area less what was set aside: the unclustered model's area within 3% (the
    # clustered faces' own area is 10-12% smaller; taking it instead reads 11-12% less)
    _, sections = load_swc_in_neuron(unclustered)
    assert figures["area_ratio"] == pytest.approx(membrane_area(sections) / (cell.outer_area * 1e-6), abs=0.03)
    line = _set_aside_line(swc)
    truth = float(cell.mesh.area_faces[cell.inner_faces].sum()) * 1e-6
    found = _area_in_header(line, "inner closed surfaces") + _area_in_header(line, "sheets")
    assert truth <= found * 1.1 and found <= truth * 1.1 + 25.0, (line, truth)
