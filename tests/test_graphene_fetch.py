"""Our own graphene fetch (mesh_export.retrieve.graphene) against CloudVolume's ``mesh.get`` and under faults.

Two layers: the session's small synthetic graphene layer, and a scaled-down MICrONS-like one (a
real hemibrain neuron cut on minnie65's 256 x 256 x 512-voxel level-2 chunks, Draco on a 16 nm
grid, one fragment in four dynamic) that has the fragment count of a real cell (~600).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from conftest import cli_in as cli
from mesh_export import errors
from mesh_export.retrieve.fetch import fetch_mesh, merge_duplicate_vertices
from mesh_export.retrieve.sources import Source
from support.datasets import TOKEN, fixture_data, fixture_server, srv  # noqa: F401  (pytest fixtures)
from support.server import FixtureServer


@pytest.fixture(scope="module")
def minnie_like(tmp_path_factory):
    from support.large import build_large_layers

    layers = build_large_layers(tmp_path_factory.mktemp("minnie-like") / "layers", target_faces=60_000)
    with FixtureServer(layers.root, token=TOKEN) as server:
        server.add_graphene(layers.graphene_table, layers.graphene_dir)
        yield layers, server


def _cloudvolume_mesh(url: str, root_id: int):
    from cloudvolume import CloudVolume

    volume = CloudVolume(url, secrets=TOKEN, use_https=True, progress=False, cache=False)
    mesh = volume.mesh.get(root_id, deduplicate_chunk_boundaries=False)
    mesh = mesh[root_id] if isinstance(mesh, dict) else mesh
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _area(vertices, faces) -> np.ndarray:
    v = vertices.astype(np.float64)
    return 0.5 * np.linalg.norm(np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]), axis=1)


def _triangles(vertices, faces) -> set:
    """Faces as sets of corner positions (independent of vertex numbering and winding start)."""
    corners = vertices[faces].astype(np.float32)
    return {tuple(sorted(map(tuple, tri))) for tri in corners.tolist()}


def assert_same_surface(ours, theirs):
    """Same merged vertex set, same total area; faces equal up to the zero-area faces we drop."""
    (v, f), (cv_v, cv_f) = ours, theirs
    ref_v, ref_f, _ = merge_duplicate_vertices(cv_v, cv_f)
    assert v.dtype == np.float32 and f.dtype == np.int32
    assert {tuple(p) for p in v.tolist()} == {tuple(p) for p in ref_v.tolist()}
    np.testing.assert_allclose(_area(v, f).sum(), _area(cv_v, cv_f).sum(), rtol=1e-9)
    nonzero = _area(ref_v, ref_f) > 0
    assert _triangles(v, f[_area(v, f) > 0]) == _triangles(ref_v, ref_f[nonzero])


def test_same_surface_as_cloudvolume_on_the_synthetic_layer(srv, fixture_data):
    url = srv.graphene_url(fixture_data.graphene_table)
    for root_id in fixture_data.root_ids:
        fetched = fetch_mesh(Source("graphene", url), root_id, token=TOKEN)
        assert fetched.fragments == len(fixture_data.graphene["manifests"][str(root_id)]["fragments"])
        assert_same_surface((fetched.vertices, fetched.faces), _cloudvolume_mesh(url, root_id))


@pytest.mark.slow
def test_same_surface_as_cloudvolume_on_a_minnie_like_layer(minnie_like):
    layers, server = minnie_like
    url = server.graphene_url(layers.graphene_table)
    server.reset_requests()
    fetched = fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN)
    assert fetched.fragments == layers.fragments > 300
    # One manifest, then every fragment once: dynamic files and initial shard ranges.
    assert server.count(r"/manifest/") == 1
    assert server.count(r"/mesh/(dynamic|initial)/") == layers.fragments
    manifest = server.requests(r"/manifest/")[0]
    assert "verify=True" in manifest.query and "return_seg_ids=1" in manifest.query
    assert_same_surface((fetched.vertices, fetched.faces), _cloudvolume_mesh(url, layers.root_id))


def test_graphene_fetch_pays_latency_concurrently(minnie_like):
    """~600 fragments at 50 ms each: one at a time would take 30 s; in flight together, a few."""
    layers, server = minnie_like
    url = server.graphene_url(layers.graphene_table)
    fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN)  # layer info read once
    server.latency = 0.05
    try:
        started = time.monotonic()
        fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN)
        assert time.monotonic() - started < 0.05 * layers.fragments / 4
    finally:
        server.latency = 0.0


# ------------------------------------------------------------------------------ faults


def _export(workdir, srv, fixture_data, *args):
    root_id = fixture_data.root_ids[0]
    result = cli(workdir, root_id, "--source", srv.graphene_url(fixture_data.graphene_table), "--no-cache",
                 *args, token=TOKEN)
    return root_id, result


def _sidecar(workdir, root_id):
    return json.loads((workdir / "out" / f"{root_id}_lod0.stl.json").read_text())


def _assert_error(result, error, text=""):
    assert result.returncode == error.exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and text in result.stderr, result.stderr


def test_a_503_burst_on_fragments_is_retried(srv, fixture_data, workdir):
    srv.inject(r"/mesh/initial/.*\.shard$", "503", times=4)
    srv.inject(r"/mesh/dynamic/", "503", times=2)
    root_id, result = _export(workdir, srv, fixture_data)
    assert result.returncode == 0, result.stderr
    assert _sidecar(workdir, root_id)["fetch"]["retries"] >= 6


@pytest.mark.parametrize("where", [r"/mesh/initial/.*\.shard$", r"/mesh/dynamic/"])
def test_a_truncated_fragment_is_fetched_again(where, srv, fixture_data, workdir):
    srv.inject(where, "truncate", times=2)
    root_id, result = _export(workdir, srv, fixture_data)
    assert result.returncode == 0, result.stderr
    assert _sidecar(workdir, root_id)["fetch"]["retries"] >= 2
    assert srv.count(where) >= 2 + len([r for r in srv.requests(where) if r.fault is None])


def test_missing_fragments_are_an_incomplete_mesh_unless_allowed(srv, fixture_data, workdir):
    manifest = fixture_data.graphene["manifests"][str(fixture_data.root_ids[0])]["fragments"]
    dynamic = [name for name in manifest if not name.startswith("~")]
    assert dynamic, "the fixture has dynamic fragments"
    srv.inject(r"/mesh/dynamic/", "404", times=None)
    _, result = _export(workdir, srv, fixture_data)
    _assert_error(result, errors.IncompleteMeshError, f"{len(dynamic)} of {len(manifest)} fragments")
    assert not list((workdir / "out").iterdir())
    root_id, result = _export(workdir, srv, fixture_data, "--allow-missing", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["incomplete"] is True
    meta = _sidecar(workdir, root_id)
    assert meta["incomplete"] is True and sorted(meta["fetch"]["missing_fragments"]) == sorted(dynamic)
    assert meta["fetch"]["fragments"] == len(manifest)


@pytest.mark.parametrize("fault, where", [
    ("slow", r"/manifest/"),  # a manifest that never answers (within the budget)
    ("503", r"/manifest/"),
    ("503", r"/mesh/initial/.*\.shard$"),
    ("reset", r"/mesh/dynamic/"),
])
def test_a_permanent_failure_ends_within_the_timeout(fault, where, srv, fixture_data, workdir):
    srv.inject(where, fault, times=None, delay=30.0)
    started = time.monotonic()
    _, result = _export(workdir, srv, fixture_data, "--timeout", "3")
    elapsed = time.monotonic() - started
    _assert_error(result, errors.NetworkError)
    # The budget plus start-up of a Python process (about a second here).
    assert elapsed < 3 + 2.5, elapsed
    assert not list((workdir / "out").iterdir())


def test_graphene_urls_parse_as_cloudvolume_reads_them():
    from cloudvolume.datasource.graphene.metadata import extract_graphene_path

    from mesh_export.retrieve.graphene import parse_graphene_url

    for url in ("graphene://https://minnie.microns-daf.com/segmentation/table/minnie65_public",
                "graphene://middleauth+https://cave.fanc-fly.com/segmentation/table/wclee_fly_cns_001",
                "graphene://https://h.example/segmentation/api/v1/fly_v31",
                "graphene://https://h.example/segmentation/1.0/fly_v26"):
        theirs = extract_graphene_path(url.replace("graphene://", "").replace("middleauth+", ""))
        assert parse_graphene_url(url) == tuple(theirs)
    with pytest.raises(errors.SourceError, match="cannot parse"):
        parse_graphene_url("graphene://https://h.example/nothing")


def test_manifest_endpoint_and_storage_match_cloudvolume(srv, fixture_data):
    from cloudvolume import CloudVolume

    from mesh_export.retrieve.graphene import open_layer
    from mesh_export.retrieve.politeness import Retrier
    from mesh_export.retrieve.remote import http_base

    url = srv.graphene_url(fixture_data.graphene_table)
    layer = open_layer(url, TOKEN, Retrier(10))
    meta = CloudVolume(url, secrets=TOKEN, use_https=True, progress=False).meta
    assert layer.manifest_url == meta.manifest_endpoint
    assert layer.data_url == http_base(meta.cloudpath)
    assert layer.max_meshed_layer == meta.max_meshed_layer
    root_id = fixture_data.root_ids[0]
    assert layer.start_layer(root_id) == min(int(meta.decode_layer_id(root_id)), meta.max_meshed_layer)


# ------------------------------------------------------------------------- round trips


@pytest.fixture
def new_process():
    """What a new process starts with: no layer read in memory (a cache directory may hold one)."""
    from mesh_export.retrieve import graphene

    graphene._LAYERS.clear()
    yield lambda: graphene._LAYERS.clear()
    graphene._LAYERS.clear()


def test_a_manifest_is_fetched_in_three_round_trips_then_two(minnie_like, new_process, tmp_path):
    """Cold: chunkedgraph info; mesh info with the manifest; every fragment at once. Then (a new
    process with the same cache directory, within the layer's expiry) the manifest and the
    fragments only; without a cache directory (--no-cache) a new process reads the layer again."""
    from mesh_export.retrieve import graphene

    layers, server = minnie_like
    url = server.graphene_url(layers.graphene_table)
    cache = tmp_path / "cache"
    with server.fresh():
        together = server.gate(r"/manifest/|/mesh/info$", 2)
        every_fragment = server.gate(r"/mesh/(dynamic|initial)/", layers.fragments)
        cold = fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN, cache_dir=cache)
        assert server.count(r"/segmentation/table/.*/info$") == server.count(r"/mesh/info$") == 1
        assert together.opened and every_fragment.opened  # asked for together: one round trip each
        assert every_fragment.arrived == layers.fragments > 300

    new_process()
    with server.fresh():
        every_fragment = server.gate(r"/mesh/(dynamic|initial)/", layers.fragments)
        warm = fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN, cache_dir=cache)
        assert server.count(r"/info$") == 0 and server.count(r"/manifest/") == 1 and every_fragment.opened
    assert np.array_equal(warm.vertices, cold.vertices) and np.array_equal(warm.faces, cold.faces)

    new_process()
    with server.fresh():
        fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN)
        assert server.count(r"/segmentation/table/.*/info$") == 1
    assert [p.parent.name for p in cache.rglob("*") if p.is_file()] == ["graphene-layers"]

    # Past its expiry the layer is read again.
    new_process()
    stored = graphene._disk_path(cache, url)
    entry = json.loads(stored.read_text())
    entry["read_at"] -= graphene.LAYER_INFO_TTL + 1
    stored.write_text(json.dumps(entry))
    with server.fresh():
        fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN, cache_dir=cache)
        assert server.count(r"/segmentation/table/.*/info$") == 1


def test_requests_in_flight_stay_within_the_cap(minnie_like):
    from mesh_export.retrieve.politeness import set_max_connections

    layers, server = minnie_like
    url = server.graphene_url(layers.graphene_table)
    fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN)  # layer info read once
    set_max_connections(6)
    try:
        with server.fresh():
            held = server.gate(r"/mesh/(dynamic|initial)/", 7, timeout=0.05)
            fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN)
    finally:
        set_max_connections(None)
    assert held.most_waiting == 6 and held.arrived == layers.fragments


def test_max_connections_caps_the_cli_fetch_and_refuses_zero(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    fragments = len(fixture_data.graphene["manifests"][str(root_id)]["fragments"])
    assert fragments > 3
    with srv.fresh():
        held = srv.gate(r"/mesh/(dynamic|initial)/", 4, timeout=0.05)
        _, result = _export(workdir, srv, fixture_data, "--max-connections", "3")
        assert result.returncode == 0, result.stderr
        assert held.most_waiting == 3 and held.arrived == fragments
    _, result = _export(workdir, srv, fixture_data, "--max-connections", "0")
    _assert_error(result, errors.InvalidArgumentError, "--max-connections must be 1 or more")


def test_an_stl_without_cache_or_sidecar_is_written_from_the_fragments(minnie_like, workdir, tmp_path):
    """``--no-cache --no-sidecar``: nothing keeps the merged mesh, so the STL is written from the
    ~600 fragments as fetched (no merge): the merged mesh's file byte for byte, its collapsed
    faces (Draco's 16 nm grid collapses small triangles) dropped the same way."""
    from mesh_export.api import export

    layers, server = minnie_like
    url = server.graphene_url(layers.graphene_table)
    merged = export(layers.root_id, source=url, token=TOKEN, cache_dir=tmp_path / "cache", out_dir=tmp_path / "m",
                    sidecar=False)
    result = cli(workdir, layers.root_id, "--source", url, "--no-cache", "--no-sidecar", "--json", token=TOKEN)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    written = workdir / "out" / merged.output.name
    assert written.read_bytes() == merged.output.read_bytes()
    assert summary["vertices"] is None and summary["faces"] == merged.summary()["faces"]
    unmerged = fetch_mesh(Source("graphene", url), layers.root_id, token=TOKEN, merge=False)
    assert unmerged.vertices is None and len(unmerged.pieces) == layers.fragments
    assert sum(len(faces) for _, faces in unmerged.pieces) > summary["faces"]  # faces collapsed
