"""The skeletonizer's clustering pre-stage (mesh_export.process.skeleton_surface): a mesh far finer
than the wavefront's bands is skeletonized on its vertices clustered on a 0.1 um grid, each cluster
carrying its vertices' area; separate pieces and open boundaries kept apart; a coarser mesh left
exactly as it is."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import trimesh

import mesh_export
from consumers import load_swc_in_neuron, membrane_area
from mesh_export.process.skeleton import read_swc, skeletonize
from mesh_export.process.skeleton_surface import skeleton_surface
from mesh_export.process.surface_graph import sorted_edge_keys, surface_measures, unique_edges

os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")

NM_TO_UM = 1e-3


def _edge_counts(faces):
    pairs = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    _, counts = np.unique(pairs, axis=0, return_counts=True)
    return counts


def _pieces(n, eu, ev):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    return connected_components(coo_matrix((np.ones(len(eu)), (eu, ev)), shape=(n, n)), directed=False)


def _fine(mesh, size):
    return trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, size), process=False)


def test_sorted_edge_keys_count_every_face_edge_once():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 50, size=(400, 3))
    faces[:20, 1] = faces[:20, 0]  # degenerate faces: their self-loop is no edge
    keys = sorted_edge_keys(faces, 50)
    pairs = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    assert np.array_equal(keys, np.sort(pairs[:, 0] * 50 + pairs[:, 1]))
    eu, ev = unique_edges(faces, 50)
    assert np.array_equal(np.column_stack([eu, ev]), np.unique(pairs, axis=0))


def test_a_mesh_coarser_than_the_cell_is_skeletonized_as_it_is(neuron_mesh):
    """navis's meshes (0.86 um median edge) are not clustered: the surface is the mesh's own,
    array for array, and the skeleton is the one ``coarsen=False`` gives, bit for bit."""
    vertices, faces = np.asarray(neuron_mesh.vertices), np.asarray(neuron_mesh.faces)
    surface = skeleton_surface(vertices, faces, NM_TO_UM)
    assert surface.record == {}
    face_area, vertex_area, normals = surface_measures(vertices.astype(np.float64), faces.astype(np.int64))
    eu, ev = unique_edges(faces.astype(np.int64), len(vertices))
    for mine, theirs in ((surface.vertices, vertices), (surface.face_area, face_area),
                         (surface.vertex_area, vertex_area), (surface.normals, normals), (surface.eu, eu),
                         (surface.ev, ev)):
        assert np.array_equal(mine, theirs)
    a, b = skeletonize(neuron_mesh), skeletonize(neuron_mesh, coarsen=False)
    assert "surface" not in a.metadata["steps"][-1]
    for name in ("nodes", "parents", "radii", "types"):
        assert np.array_equal(getattr(a, name), getattr(b, name))


def test_clustering_keeps_area_pieces_closed_surfaces_and_boundaries():
    """A cell body (closed, 3 um), a nucleus-like envelope 0.15 um inside it (closed, its own
    piece), a flat cut sheet (open, 2 x 2 um) and a tube thinner than the cell (r 0.03 um): all at
    ~0.02-0.03 um edges. Clustered: far fewer faces; the area carried exactly; four pieces still;
    the closed ones still closed (every edge of an even count of faces); the sheet's outline kept;
    the thin tube one piece with its area."""
    outer = trimesh.creation.icosphere(subdivisions=7, radius=3000.0)
    inner = trimesh.creation.icosphere(subdivisions=7, radius=2850.0)
    sheet = _fine(trimesh.Trimesh([[-1000, -1000, 0], [1000, -1000, 0], [1000, 1000, 0], [-1000, 1000, 0]],
                                  [[0, 1, 2], [0, 2, 3]], process=False), 30.0)
    sheet.apply_translation([8000, 0, 0])
    tube = _fine(trimesh.creation.cylinder(radius=30.0, height=3000.0, sections=8), 20.0)
    tube.apply_translation([0, 8000, 0])
    parts = [outer, inner, sheet, tube]
    mesh = trimesh.util.concatenate(parts)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    fine_pieces, _ = _pieces(len(vertices), *unique_edges(faces, len(vertices)))
    assert fine_pieces == 4

    surface = skeleton_surface(vertices, faces, NM_TO_UM)
    record = surface.record
    assert record["method"] == "vertex clustering" and record["cell"] == pytest.approx(100.0)
    assert record["faces"] == [len(faces), len(surface.faces)] and len(surface.faces) < 0.2 * len(faces)
    assert surface.total_area == pytest.approx(mesh.area, rel=1e-9)
    assert surface.vertex_area.sum() == pytest.approx(mesh.area, rel=1e-9)  # carried, not re-measured
    count, piece = _pieces(len(surface.vertices), surface.eu, surface.ev)
    assert count == 4

    # Which coarse piece is which: by where its vertices lie.
    centre_distance = np.linalg.norm(surface.vertices, axis=1)
    of = {name: np.unique(piece[mask]) for name, mask in {
        "outer": centre_distance > 2950, "inner": centre_distance < 2900,
        "sheet": surface.vertices[:, 0] > 6000, "tube": surface.vertices[:, 1] > 6000}.items()}
    of["outer"] = np.setdiff1d(of["outer"], np.concatenate([of["sheet"], of["tube"]]))
    assert all(len(v) == 1 for v in of.values()), of
    piece_of_face = piece[surface.faces[:, 0]]
    for name in ("outer", "inner"):
        counts = _edge_counts(surface.faces[piece_of_face == of[name][0]])
        assert len(counts) and (counts % 2 == 0).all(), name
    area = {name: surface.vertex_area[piece == p[0]].sum() for name, p in of.items()}
    for name, part in zip(("outer", "inner", "sheet", "tube"), parts):
        assert area[name] == pytest.approx(part.area, rel=1e-6), name
    # The sheet's outline: boundary edges (of one face) around its 8 um perimeter.
    sheet_faces = surface.faces[piece_of_face == of["sheet"][0]]
    pairs = np.sort(np.concatenate([sheet_faces[:, [0, 1]], sheet_faces[:, [1, 2]], sheet_faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    border = uniq[counts == 1]
    outline = np.linalg.norm(surface.vertices[border[:, 0]] - surface.vertices[border[:, 1]], axis=1).sum()
    assert outline == pytest.approx(8000.0, rel=0.1)


def _small_cell(request):
    from support.cells import cache_dir, cached_cell

    # As built (not decimated: face_area_um2 below the builder's own): spine necks on 8-sided
    # tubes with ~0.04 um edges, thin axon, 0.15 um median edge; then subdivided twice.
    return cached_cell(cache_dir(request), seed=11, name="small-built", dendrites=5, dendrite_length=(40.0, 60.0),
                       axon_length=300.0, soma_diameter=10.0, face_area_um2=1e-4, debris=2, glia=False)


@pytest.mark.slow
def test_a_dense_cell_gives_the_figures_of_its_detailed_surface(request, tmp_path):
    """A MICrONS-like cell as built (real detail below the 0.1 um cell: spine necks, a thin axon)
    and the same surface subdivided twice (a dense mesh, median edge ~0.04 um), through the CLI:
    the dense one is clustered (the header and the steps record say so, with the clustered faces' own
    area change), and NEURON reads the same figures as from the detailed surface: membrane area
    within 2%, soma radius within 5% at the same place, the same spines within 10%, and the axon
    typed by the cell's synapses."""
    from mesh_export.process.compartments import split_axon
    from support.cells import AXON

    cell = _small_cell(request)
    reference = skeletonize(cell.mesh)
    assert "surface" not in reference.metadata["steps"][-1]  # 0.15 um edges: not clustered
    vertices, faces = np.asarray(cell.mesh.vertices), np.asarray(cell.mesh.faces)
    for _ in range(2):
        vertices, faces = trimesh.remesh.subdivide(vertices, faces)
    ply = tmp_path / "dense.ply"
    trimesh.Trimesh(vertices, faces, process=False).export(ply)
    swc = tmp_path / "dense.swc"
    from typer.testing import CliRunner

    from mesh_export.cli.root import app

    result = CliRunner().invoke(app, ["convert", str(ply), str(swc), "--units-in", "nm", "--json"])
    assert result.exit_code == 0, result.output
    text = swc.read_text()
    header = [line for line in text.splitlines() if line.startswith("# surface:")]
    assert len(header) == 1 and "clustered" in header[0] and "area" in header[0], header
    step = _skeletonize_step(json.loads(result.stdout))  # as the export's sidecar records it
    recorded = step["surface"]
    assert recorded["method"] == "vertex clustering" and recorded["faces"][0] == len(faces)
    assert recorded["faces"][1] < 0.3 * len(faces) and abs(recorded["faces_area_change"]) < 0.05
    dense = read_swc(swc)
    reference_swc = mesh_export.write(reference, tmp_path / "reference.swc")
    _, sections = load_swc_in_neuron(swc)
    _, reference_sections = load_swc_in_neuron(reference_swc)
    mesh_area = cell.mesh.area * 1e-6
    assert membrane_area(sections) / mesh_area == pytest.approx(membrane_area(reference_sections) / mesh_area,
                                                                abs=0.02)
    assert dense.radii[0] == pytest.approx(reference.radii[0] * 1e-3, rel=0.05)
    assert np.linalg.norm(dense.nodes[0] - reference.nodes[0] * 1e-3) < 0.3
    assert step["spines"]["found"] == pytest.approx(reference.metadata["steps"][-1]["spines"]["found"], rel=0.10)
    # The morphology NEURON read (um, as written) splits like the detailed one: the dense mesh is
    # skeletonized once, by the CLI.
    typed = split_axon(dense.to_units("nm"), cell.pre, cell.post, source="the cell's synapses")
    truth = cell.node_labels(typed.nodes)
    length = typed.edge_lengths()
    assert length[(truth == AXON) & (typed.types == 2)].sum() >= 0.9 * length[truth == AXON].sum()


def _skeletonize_step(sidecar):
    """The skeletonize step's record, wherever the sidecar keeps its steps."""
    if isinstance(sidecar, dict):
        if sidecar.get("step") == "skeletonize":
            return sidecar
        values = sidecar.values()
    elif isinstance(sidecar, list):
        values = sidecar
    else:
        return None
    for value in values:
        found = _skeletonize_step(value)
        if found is not None:
            return found
    return None


def test_a_vast_extent_still_clusters_exactly():
    """Two dense patches 2 m apart (a key of piece x grid cell too wide for one int64): rows are
    clustered instead, and nothing of one patch joins the other."""
    patch = _fine(trimesh.creation.box(extents=(1000.0, 1000.0, 1000.0)), 30.0)
    far = patch.copy()
    far.apply_translation([2.0e9, 2.0e9, 2.0e9])
    mesh = trimesh.util.concatenate([patch, far])
    surface = skeleton_surface(np.asarray(mesh.vertices), np.asarray(mesh.faces), NM_TO_UM)
    assert surface.record and len(surface.faces) < len(mesh.faces)
    count, piece = _pieces(len(surface.vertices), surface.eu, surface.ev)
    assert count == 2
    near = surface.vertices[:, 0] < 1.0e9
    assert len(np.unique(piece[near])) == 1 and len(np.unique(piece[~near])) == 1
    assert surface.vertex_area[near].sum() == pytest.approx(patch.area, rel=1e-9)
