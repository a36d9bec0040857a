"""A root id's morphology from a CAVE datastack: the real caveclient against the fake CAVE.

A MICrONS-like cell (tests/support/cells.py) is served as a graphene segmentation; the fake
CAVE (tests/support/fake_cave.py) has its nucleus in a soma table, its synapses in a synapse
table, and a skeleton in the skeleton service. Datastacks:

- ``cells``: all of them;
- ``bare``: no soma or synapse table;
- ``odd``: a soma table without the cell's row, a synapse table that is not there (404);
- ``far``: a nucleus 200 um from the mesh.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from consumers import load_swc_in_neuron, membrane_area
from mesh_export.jobs.export import export
from mesh_export.process.skeleton import read_swc
from mesh_export.process.steps import StepOptions
from support.cells import AXON, CELLS, cache_dir, cached_cell
from support.fake_cave import FakeCave, nucleus_frame, skeleton_dict, synapse_frame
from support.server import FixtureServer

TOKEN = "0123456789abcdef0123456789abcdef"
TABLES = {"soma_table": "nucleus_detection_v0", "synapse_table": "synapses_pni_2"}


@pytest.fixture(scope="module")
def cell(request):
    return cached_cell(cache_dir(request), **CELLS["coarse"])  # small: fast


@pytest.fixture(scope="module")
def root_id():
    from support.neurons import make_root_ids

    return make_root_ids(1, 1212)[0]


@pytest.fixture(scope="module")
def cave(cell, root_id, tmp_path_factory):
    """The server and the fake CAVE of every datastack."""
    from support.precomputed import LayerGeometry, write_graphene_layer
    from mesh_export.process.skeleton import skeletonize

    root = tmp_path_factory.mktemp("cave-cell")
    meshes = {root_id: cell.mesh}
    geometry = LayerGeometry.covering(meshes, resolution=(8.0, 8.0, 40.0), chunk_size=(4096, 4096, 512))
    write_graphene_layer(root / "graphene", meshes, geometry=geometry, table="cells")
    with FixtureServer(root, token=TOKEN) as srv:
        srv.add_graphene("cells", root / "graphene")
        fakes = {}
        for name, extra in (("cells", TABLES), ("bare", {}), ("odd", {"soma_table": "nucleus_detection_v0",
                                                                       "synapse_table": "missing_synapses"}),
                            ("far", TABLES)):
            srv.add_datastack(name, graphene_table="cells", extra=extra)
            fakes[name] = FakeCave(srv, name, graphene_table="cells")
        nucleus = [(root_id, cell.nucleus, 280.0), (864691135111111111, cell.nucleus + 5e5, 250.0)]
        fakes["cells"].add_table("nucleus_detection_v0", nucleus_frame(nucleus), schema="nucleus_detection")
        fakes["cells"].add_table("synapses_pni_2", synapse_frame(root_id, cell.pre, cell.post))
        fakes["odd"].add_table("nucleus_detection_v0", nucleus_frame(nucleus[1:]), schema="nucleus_detection")
        fakes["far"].add_table("nucleus_detection_v0", nucleus_frame([(root_id, cell.nucleus + [2e5, 0, 0], 280.0)]),
                               schema="nucleus_detection")
        fakes["far"].add_table("synapses_pni_2", synapse_frame(root_id, cell.pre, cell.post))
        service = skeletonize(cell.mesh)
        service.types[1:] = 3
        service.types[cell.node_labels(service.nodes) == AXON] = 2  # the service's compartment labels
        service.types[0] = 1
        fakes["cells"].add_skeleton(root_id, skeleton_dict(service))
        srv.service_nodes = len(service)
        srv.service_axon_nodes = int((service.types == 2).sum())
        srv.fakes = fakes
        yield srv


@pytest.fixture()
def srv(cave):
    with cave.fresh():
        yield cave


def _export(srv, root_id, tmp_path, datastack="cells", cache=None, **kwargs):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    result = export(root_id, format="swc", out_dir=out, datastack=datastack, server=srv.url, token=TOKEN,
                    cache_dir=cache or tmp_path / "cache", overwrite=True, timeout=kwargs.pop("timeout", 20.0),
                    **kwargs)
    text = result.output.read_text()
    header = "\n".join(line[2:] for line in text.splitlines() if line.startswith("#"))
    return result, header, json.loads(result.sidecar.read_text())


def _morphio_and_neurom_accept(path, axon: bool) -> None:
    """MorphIO with warnings raised as errors, and NeuroM's checks, on an exported SWC."""
    morphio = pytest.importorskip("morphio")
    neurom = pytest.importorskip("neurom")
    from neurom.check import morphology_checks as checks

    morphio.set_raise_warnings(True)
    try:
        morphology = morphio.Morphology(str(path))
    finally:
        morphio.set_raise_warnings(False)
    kinds = {section.type for section in morphology.root_sections}
    assert morphio.SectionType.basal_dendrite in kinds
    assert (morphio.SectionType.axon in kinds) == axon
    loaded = neurom.load_morphology(str(path))
    for check in ("has_all_nonzero_neurite_radii", "has_all_nonzero_segment_lengths",
                  "has_all_nonzero_section_lengths", "has_nonzero_soma_radius"):
        assert getattr(checks, check)(loaded).status, check


def test_soma_from_the_nucleus_and_axon_from_the_synapses(srv, cell, root_id, tmp_path):
    result, header, sidecar = _export(srv, root_id, tmp_path)
    assert "soma from: nucleus from nucleus_detection_v0" in header
    assert "compartments: axon (type 2) by synapse flow centrality (synapses from synapses_pni_2" in header
    assert srv.unknown_paths == []
    step = sidecar["steps"][-1]
    assert step["cave"]["nucleus"]["table"] == "nucleus_detection_v0"
    assert step["cave"]["synapses"]["pre"] == len(cell.pre) and step["cave"]["synapses"]["post"] == len(cell.post)
    assert step["compartments"]["axon"] and step["compartments"]["quality"] > 0.8
    # the queries caveclient made: one per lookup, filtered on the root id, in nm
    queries = srv.fakes["cells"].queries
    assert [q[1]["filter_equal_dict"] for q in queries[-3:]] == [
        {"nucleus_detection_v0": {"pt_root_id": root_id}},
        {"synapses_pni_2": {"pre_pt_root_id": root_id}},
        {"synapses_pni_2": {"post_pt_root_id": root_id}}]
    assert all(q[1]["desired_resolution"] == [1, 1, 1] for q in queries[-3:])
    # what the file holds
    sk = read_swc(result.output)
    truth = cell.node_labels(sk.nodes * 1000.0)
    length = sk.edge_lengths()
    assert length[(truth == AXON) & (sk.types == 2)].sum() >= 0.9 * length[truth == AXON].sum()
    assert abs(sk.radii[0] * 1000.0 / cell.soma_equivalent_radius - 1) < 0.2
    _, sections = load_swc_in_neuron(result.output)
    assert membrane_area(sections) == pytest.approx(cell.mesh.area * 1e-6, rel=0.10)
    _morphio_and_neurom_accept(result.output, axon=True)


def test_lookups_are_cached_by_datastack_and_version(srv, root_id, tmp_path):
    _export(srv, root_id, tmp_path)
    before = srv.count(r"/materialize/.*/query$")
    _, header, sidecar = _export(srv, root_id, tmp_path)
    assert srv.count(r"/materialize/.*/query$") == before  # nucleus and synapses from the cache
    assert sidecar["steps"][-1]["cave"]["nucleus"]["cache"] == "hit"
    assert sidecar["steps"][-1]["cave"]["synapses"]["cache"] == "hit"
    assert "soma from: nucleus from nucleus_detection_v0" in header
    # another version is another question
    _export(srv, root_id, tmp_path, version=943)
    assert srv.count(r"/materialize/.*/query$") > before


def test_a_datastack_without_tables_falls_back_to_the_mesh(srv, root_id, tmp_path):
    _, header, sidecar = _export(srv, root_id, tmp_path, datastack="bare")
    assert "soma from: datastack bare names no soma table: soma found on the mesh" in header
    assert "every neurite type 3 (datastack bare names no synapse table" in header
    assert srv.count(r"/materialize/.*/query$") == 0
    assert not sidecar["steps"][-1]["compartments"]["axon"]


def test_no_nucleus_row_and_a_missing_synapse_table(srv, root_id, tmp_path):
    _, header, sidecar = _export(srv, root_id, tmp_path, datastack="odd")
    assert f"no row for root id {root_id} in nucleus_detection_v0: soma found on the mesh" in header
    step = sidecar["steps"][-1]
    assert f"no row for root id {root_id}" in step["soma_source"] and not step["soma_given"]
    assert not step["compartments"]["axon"] and "missing_synapses" in step["compartments"]["reason"]
    assert "synapse table missing_synapses not found" in header and "every neurite type 3" in header


def test_a_nucleus_far_from_the_mesh_is_not_its_soma(srv, root_id, tmp_path):
    _, header, _ = _export(srv, root_id, tmp_path, datastack="far")
    assert "um from the mesh: soma found on the mesh" in header


def test_synapse_table_failing_after_retries_falls_back(srv, root_id, tmp_path):
    srv.inject(r"/materialize/.*/synapses_pni_2/query$", "503", times=None)
    _, header, _ = _export(srv, root_id, tmp_path, timeout=2.0)
    assert "synapse table synapses_pni_2 could not be read" in header and "503" in header
    assert srv.count(r"synapses_pni_2/query$") >= 2  # retried within the budget


def test_skeleton_source_cave(srv, root_id, tmp_path):
    result, header, sidecar = _export(srv, root_id, tmp_path, steps=StepOptions(skeleton_source="cave"))
    assert "skeleton: CAVE skeleton service, skeleton version 4" in header
    sk = read_swc(result.output)
    assert len(sk) == srv.service_nodes and sk.units == "um"
    assert int((sk.types == 2).sum()) == srv.service_axon_nodes > 0  # its compartments kept
    assert sidecar["steps"][-1]["method"] == "CAVE skeleton service"
    # the cell's synapses mapped onto the service's skeleton, every one of them placed
    table = result.output.with_name(result.output.name + ".synapses.csv").read_text().splitlines()
    assert len(table) - 1 == sidecar["synapses"]["rows"] == sidecar["synapses"]["placed"] > 0
    _, sections = load_swc_in_neuron(result.output)
    assert membrane_area(sections) > 0
    _morphio_and_neurom_accept(result.output, axon=True)
    assert srv.count(r"/skeletoncache/api/v1/cells/async/get_skeleton/4/") == 1


def test_skeleton_service_503_burst_is_retried(srv, root_id, tmp_path):
    srv.inject(r"/get_skeleton/", "503", times=2)
    _, header, _ = _export(srv, root_id, tmp_path, steps=StepOptions(skeleton_source="cave"))
    assert "skeleton: CAVE skeleton service" in header
    assert srv.count(r"/get_skeleton/") == 3


@pytest.mark.parametrize("fault,words", [("404", "has no skeleton of"), ("503", "failed")])
def test_skeleton_service_without_a_skeleton_falls_back_to_the_mesh(srv, root_id, tmp_path, fault, words):
    srv.inject(r"/get_skeleton/", fault, times=None)
    _, header, _ = _export(srv, root_id, tmp_path, timeout=2.0, steps=StepOptions(skeleton_source="cave"))
    assert words in header and "skeletonized from the mesh instead" in header
    assert "soma from: nucleus from nucleus_detection_v0" in header  # the rest as usual


def test_cli_fallbacks_are_messages_not_tracebacks(srv, root_id, tmp_path):
    from conftest import run_cli

    srv.inject(r"/get_skeleton/", "503", times=None)
    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    result = run_cli(root_id, "--format", "swc", "--datastack", "odd", "--server", srv.url, "--token", TOKEN,
                     "--skeleton-source", "cave", "--soma", "auto", "--timeout", "2", "--out", tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    text = (tmp_path / f"{root_id}_lod0.swc").read_text()
    assert "skeletonized from the mesh instead" in text and "no row for root id" in text
    refused = run_cli(root_id, "--format", "swc", "--source", "sample", "--skeleton-source", "cave",
                      "--out", tmp_path, "--overwrite", env=env)
    assert refused.returncode == 2 and "--skeleton-source cave needs a root id from a CAVE datastack" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_soma_given_wins_over_the_nucleus(srv, cell, root_id, tmp_path):
    """--soma X,Y,Z on a datastack with a soma table: the point given is the soma node, the
    soma table is not asked (the synapse table still is)."""
    from conftest import run_cli

    point = cell.soma_center + [1500.0, -800.0, 400.0]  # inside the cell body, not the nucleus
    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    before = srv.count(r"nucleus_detection_v0/query$"), srv.count(r"synapses_pni_2/query$")
    result = run_cli(root_id, "--format", "swc", "--datastack", "cells", "--server", srv.url, "--token", TOKEN,
                     "--soma", ",".join(f"{x:.1f}" for x in point), "--out", tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert srv.count(r"nucleus_detection_v0/query$") == before[0]
    assert srv.count(r"synapses_pni_2/query$") > before[1]
    text = (tmp_path / f"{root_id}_lod0.swc").read_text()
    assert "soma from: the point given (--soma)" in text
    assert "compartments: axon (type 2) by synapse flow centrality" in text
    sk = read_swc(tmp_path / f"{root_id}_lod0.swc")
    np.testing.assert_allclose(sk.nodes[0] * 1000.0, point, atol=1.0)
