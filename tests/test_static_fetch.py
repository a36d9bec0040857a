"""Static precomputed meshes through our own fetch (mesh_export.retrieve.static_fetch): the same surface
CloudVolume's ``mesh.get`` gives, and one layer of retries bounded by ``--timeout``."""

from __future__ import annotations

import collections
import gzip
import json
import re
import time

import numpy as np
import pytest

from conftest import cli_in as cli
from mesh_export import errors
from mesh_export.retrieve.fetch import fetch_mesh, merge_duplicate_vertices
from mesh_export.retrieve.sources import resolve, sample_path
from support.datasets import fixture_data, fixture_server  # noqa: F401  (pytest fixtures)

MULTIRES = ("multires", "multires_unsharded")
#: What a failure may take beyond ``--timeout``: the CLI's start-up and its one-line error.
SLACK = 1.5


@pytest.fixture()
def srv(fixture_server):
    fixture_server.clear_faults()
    fixture_server.reset_requests()
    yield fixture_server
    fixture_server.clear_faults()


def assert_error(result, error, text=""):
    assert result.returncode == error.exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert text in result.stderr, result.stderr


def sidecar(workdir, name):
    return json.loads((workdir / "out" / (name + ".json")).read_text())


def surface(vertices, faces):
    """(sorted unique vertex rows, total area, sorted rows of non-degenerate face corners)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    corners = vertices[np.asarray(faces)]
    areas = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1) / 2
    kept = corners[areas > 0].reshape(-1, 9)
    return np.unique(vertices, axis=0), areas.sum(), kept[np.lexsort(kept.T[::-1])]


def cloudvolume_mesh(url: str, root_id: int, lod: int):
    """What a notebook user gets: ``mesh.get(id, lod=k)``, then the same exact vertex merge."""
    from cloudvolume import CloudVolume

    mesh = CloudVolume(url, progress=False, cache=False).mesh.get(root_id, lod=lod)[root_id]
    vertices, faces, _ = merge_duplicate_vertices(mesh.vertices, mesh.faces.astype(np.int64))
    return vertices, faces


def layers(fixture_data, srv):
    provenance = json.loads((sample_path() / "provenance").read_text())
    cases = [(fixture_data.precomputed_url(srv, layer), fixture_data.root_ids[0], fixture_data.num_lods)
             for layer in MULTIRES]
    sample_id = provenance["root_ids"][0]
    cases.append((resolve(source="sample").url, int(sample_id), len(provenance["faces_per_lod"][sample_id])))
    return cases


# ---------------------------------------------------------------- the same mesh as CloudVolume's


def test_every_lod_is_the_surface_cloudvolume_returns(srv, fixture_data):
    """Sharded and unsharded fixture layers (HTTP) and the bundled sample (file://)."""
    for url, root_id, lods in layers(fixture_data, srv):
        source = resolve(source=url)
        for lod in range(lods):
            ours = fetch_mesh(source, root_id, lod=lod, timeout=30)
            assert ours.vertices.dtype == np.float32 and ours.faces.dtype == np.int32
            assert ours.lod == lod and ours.lods_available == lods
            theirs = cloudvolume_mesh(url, root_id, lod)
            # The vertex transform is CloudVolume's arithmetic: the merged arrays are identical.
            np.testing.assert_array_equal(ours.vertices, theirs[0], err_msg=f"{url} lod {lod}")
            ours_vertices, ours_area, ours_faces = surface(ours.vertices, ours.faces)
            theirs_vertices, theirs_area, theirs_faces = surface(*theirs)
            np.testing.assert_array_equal(ours_vertices, theirs_vertices)
            assert ours_area == pytest.approx(theirs_area, rel=1e-9)
            np.testing.assert_array_equal(ours_faces, theirs_faces)
        # -1 is the coarsest.
        assert fetch_mesh(source, root_id, lod=-1, timeout=30).lod == lods - 1


def test_stored_model_space_to_nm_is_cloudvolumes_arithmetic_bit_for_bit():
    """Identity, a scaling (the usual resolution transform) and a general affine transform."""
    from cloudvolume.datasource.precomputed.mesh.common import apply_transform
    from cloudvolume.datasource.precomputed.mesh.multilod import (
        MultiLevelPrecomputedMeshManifest,
        from_stored_model_space,
    )

    from mesh_export.retrieve.static_fetch import stored_to_physical

    rng = np.random.default_rng(5)
    manifest = MultiLevelPrecomputedMeshManifest(
        1, chunk_shape=np.array([31.7, 63.1, 17.3], np.float32), grid_origin=np.array([1e5, -3e3, 7.25], np.float32),
        num_lods=2, lod_scales=np.array([1, 2], np.float32),
        vertex_offsets=np.array([[0.5, 0, 0], [0.25, 0.125, 3]], np.float32), num_fragments_per_lod=[3, 1],
        fragment_positions=[rng.integers(0, 900, (3, 3)).astype(np.uint32), np.array([[4, 5, 6]], np.uint32)],
        fragment_offsets=[np.array([1, 1, 1], np.uint32), np.array([1], np.uint32)])
    transforms = [np.eye(4), np.diag([8.0, 8.0, 40.0, 1.0]),
                  np.array([[7.9, 0.1, 0, 11.5], [0, 8.2, 0.3, -4], [0.2, 0, 39.5, 100], [0, 0, 0, 1]])]
    for bits in (10, 16):
        points = rng.integers(0, 2**bits, (5000, 3)).astype(np.float32)
        for transform in transforms:
            for lod, fragment in ((0, 0), (0, 2), (1, 0)):
                expected = apply_transform(from_stored_model_space(points, manifest, lod, bits, fragment), transform)
                ours = stored_to_physical(points, manifest, lod, bits, fragment, transform)
                assert ours.dtype == np.float32
                np.testing.assert_array_equal(ours.view(np.uint32), np.asarray(expected, np.float32).view(np.uint32))


def test_cli_export_matches_and_reads_the_lod_in_few_requests(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[1]
    url = fixture_data.precomputed_url(srv, "multires")
    result = cli(workdir, root_id, "--source", url, "--lod", "1", "--format", "ply", "--no-cache", "--json")
    assert result.returncode == 0, result.stderr
    # info, mesh info, shard index, minishard index, manifest, then the lod's bytes (small here: one range).
    assert srv.count(r"/multires/info$") == 1 and srv.count(r"/multires/mesh/info$") == 1
    assert srv.count(r"\.shard$") == 4
    assert all(r.range for r in srv.requests(r"\.shard$"))
    assert json.loads(result.stdout)["faces"] == len(cloudvolume_mesh(url, root_id, 1)[1])


# ---------------------------------------------------------------- failures and retries


def test_a_503_burst_on_the_shard_is_retried(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    srv.inject(r"/multires/mesh/.*\.shard$", "503", times=3)
    result = cli(workdir, root_id, "--source", fixture_data.precomputed_url(srv, "multires"), "--no-cache")
    assert result.returncode == 0, result.stderr
    assert sidecar(workdir, f"{root_id}_lod0.stl")["fetch"]["retries"] >= 3
    assert [r.fault for r in srv.requests(r"\.shard$")][:3] == ["503"] * 3


@pytest.mark.parametrize("layer", ["multires", "multires_unsharded", "legacy"])
def test_a_truncated_body_is_fetched_again(layer, srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[2]
    url = fixture_data.precomputed_url(srv, layer)
    assert cli(workdir, root_id, "--source", url, "--no-cache", "--format", "ply").returncode == 0
    clean = (workdir / "out" / f"{root_id}_lod0.ply").read_bytes()
    data = {"multires": r"\.shard$", "multires_unsharded": rf"/mesh/{root_id}$",
            "legacy": r"/legacy/mesh/.*:0:"}[layer]
    srv.inject(data, "truncate", times=2)
    result = cli(workdir, root_id, "--source", url, "--no-cache", "--format", "ply", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert [r.fault for r in srv.requests(data)].count("truncate") == 2
    assert (workdir / "out" / f"{root_id}_lod0.ply").read_bytes() == clean


@pytest.mark.parametrize("layer,path", [
    ("multires", r"/multires/mesh/.*\.shard$"),
    ("multires", r"/multires/info$"),
    ("multires", r"/multires/mesh/info$"),
    ("multires_unsharded", r"/multires_unsharded/mesh/\d+$"),
    ("legacy", r"/legacy/mesh/\d+:0$"),
    ("legacy", r"/legacy/mesh/.*:0:"),
])
def test_a_permanent_503_fails_within_the_timeout(layer, path, srv, fixture_data, workdir):
    srv.inject(path, "503", times=None)
    started = time.monotonic()
    result = cli(workdir, fixture_data.root_ids[0], "--source", fixture_data.precomputed_url(srv, layer),
                 "--no-cache", "--timeout", "3")
    elapsed = time.monotonic() - started
    assert_error(result, errors.NetworkError, "503")
    assert elapsed < 3 + SLACK, elapsed
    # Our retries only (first try plus backoff 0.25, 0.5, 1 s): no library retrying inside them.
    tries = collections.Counter(r.path for r in srv.requests(path))
    assert tries and 2 <= max(tries.values()) <= 6, tries
    assert not list((workdir / "out").iterdir())


def test_retries_share_one_budget_across_requests(srv, fixture_data):
    """The budget covers the whole fetch: a server that keeps failing after the open gets
    only what is left of it."""
    srv.inject(r"/multires_unsharded/mesh/\d+$", "503", times=None)
    source = resolve(source=fixture_data.precomputed_url(srv, "multires_unsharded"))
    started = time.monotonic()
    with pytest.raises(errors.NetworkError, match="gave up after retries"):
        fetch_mesh(source, fixture_data.root_ids[1], timeout=2)
    assert time.monotonic() - started < 2 + 0.5


@pytest.mark.parametrize("layer", ["multires", "multires_unsharded", "legacy", "sample"])
def test_missing_root_id_is_exit_8(layer, srv, fixture_data, workdir):
    url = "sample" if layer == "sample" else fixture_data.precomputed_url(srv, layer)
    result = cli(workdir, fixture_data.missing_id, "--source", url, "--no-cache")
    assert_error(result, errors.NotFoundError, str(fixture_data.missing_id))


@pytest.mark.parametrize("layer", MULTIRES)
def test_missing_lod_is_exit_13(layer, srv, fixture_data, workdir):
    result = cli(workdir, fixture_data.root_ids[0], "--source", fixture_data.precomputed_url(srv, layer),
                 "--lod", str(fixture_data.num_lods), "--no-cache")
    assert_error(result, errors.SourceError, f"lods 0..{fixture_data.num_lods - 1}")


def test_not_a_precomputed_layer(srv, fixture_data):
    with pytest.raises(errors.SourceError, match="no info file"):
        fetch_mesh(resolve(source=f"precomputed://{srv.url}/no-such-layer"), fixture_data.root_ids[0], timeout=5)


def test_legacy_missing_fragment_is_recorded_when_allowed(srv, fixture_data):
    root_id = fixture_data.root_ids[1]
    fragment = fixture_data.legacy_fragments[root_id][0]
    srv.inject(r"/legacy/mesh/" + fragment.replace(".", r"\.") + "$", "404", times=None)
    source = resolve(source=fixture_data.precomputed_url(srv, "legacy"))
    with pytest.raises(errors.IncompleteMeshError, match="--allow-missing"):
        fetch_mesh(source, root_id, timeout=10)
    fetched = fetch_mesh(source, root_id, timeout=10, allow_missing=True)
    assert fetched.missing_fragments == [fragment]
    assert fetched.fragments == len(fixture_data.legacy_fragments[root_id])


def test_retrier_budget_is_respected_by_the_request_timeout(srv, fixture_data):
    """A server that answers too slowly counts against the same budget (the request timeout is
    the time left), so a stalled shard cannot hold the fetch past ``timeout``."""
    srv.inject(r"\.shard$", "slow", times=None, delay=10)
    started = time.monotonic()
    with pytest.raises(errors.NetworkError):
        fetch_mesh(resolve(source=fixture_data.precomputed_url(srv, "multires")), fixture_data.root_ids[2],
                   timeout=2)
    assert time.monotonic() - started < 2 + 0.5


def test_bytes_that_do_not_decode_are_fetched_again_then_an_error(srv, fixture_data, monkeypatch):
    import DracoPy

    decode = DracoPy.decode
    failures = {"left": 1}

    def flaky(data):
        if failures["left"]:
            failures["left"] -= 1
            raise ValueError("Failed to decode input mesh")
        return decode(data)

    monkeypatch.setattr(DracoPy, "decode", flaky)
    source = resolve(source=fixture_data.precomputed_url(srv, "multires_unsharded"))
    root_id = fixture_data.root_ids[2]
    fetched = fetch_mesh(source, root_id, lod=2, timeout=10)
    assert fetched.retries == 1 and len(fetched.faces) > 0
    failures["left"] = 100
    with pytest.raises(errors.InvalidMeshError, match="cannot be decoded"):
        fetch_mesh(source, root_id, lod=2, timeout=10)


def test_a_batch_reads_each_shard_index_once(srv, fixture_data, workdir):
    ids = fixture_data.root_ids
    result = cli(workdir, *ids, "--source", fixture_data.precomputed_url(srv, "multires"), "--no-cache")
    assert result.returncode == 0, result.stderr
    index_reads = [r for r in srv.requests(r"\.shard$") if r.range == "bytes=0-31"]  # 2 minishards x 16 bytes
    assert sorted(r.path for r in index_reads) == sorted({r.path for r in srv.requests(r"\.shard$")})


def test_a_legacy_fragment_indexing_past_its_vertices_is_refused(srv, fixture_data, workdir):
    """Fragments are merged without being concatenated first: a triangle that points past its
    own fragment's vertices (which in one concatenated array would silently land in the next
    fragment) is a one-line error, exit code of an invalid mesh, nothing written."""
    root_id = fixture_data.root_ids[1]
    fragment = fixture_data.legacy_fragments[root_id][0]
    data = bytearray(gzip.decompress((fixture_data.root / "legacy" / "mesh" / (fragment + ".gz")).read_bytes()))
    count = int(np.frombuffer(bytes(data[:4]), dtype="<u4")[0])
    data[4 + 12 * count:4 + 12 * count + 4] = np.uint32(count).tobytes()  # first corner: one past the end
    route = "/legacy/mesh/" + re.escape(fragment)
    srv.add_route(route, lambda request: (200, {}, bytes(data)))
    try:
        result = cli(workdir, root_id, "--source", fixture_data.precomputed_url(srv, "legacy"), "--no-cache")
    finally:
        srv.remove_route(route)
    assert_error(result, errors.InvalidMeshError, "past its own vertices")
    assert not list((workdir / "out").iterdir())


# ---------------------------------------------------------------- STL from the unmerged fragments


@pytest.mark.parametrize("layer, lod", [("multires", 1), ("multires", -1), ("multires_unsharded", 0), ("legacy", 0)])
def test_an_stl_without_cache_or_sidecar_is_the_merged_meshs_file(layer, lod, srv, fixture_data, tmp_path):
    """With nothing to keep the merged mesh (no cache entry, no sidecar), the STL is written from
    the fragments as fetched (``Writer.write_pieces``): the same bytes; the vertex count unknown.
    The legacy layer has a fragment missing (--allow-missing): passed over as the merge does."""
    from mesh_export.api import export

    root_id = fixture_data.root_ids[1]
    url = fixture_data.precomputed_url(srv, layer)
    missing = layer == "legacy"
    if missing:
        fragment = fixture_data.legacy_fragments[root_id][0]
        srv.inject(r"/legacy/mesh/" + fragment.replace(".", r"\.") + "$", "404", times=None)
    merged = export(root_id, source=url, lod=lod, cache_dir=tmp_path / "cache", out_dir=tmp_path / "merged",
                    sidecar=False, allow_missing=missing)
    direct = export(root_id, source=url, lod=lod, use_cache=False, out_dir=tmp_path / "direct", sidecar=False,
                    allow_missing=missing)
    assert merged.cache == "miss" and direct.cache == "off"
    assert direct.output.name == merged.output.name
    assert direct.output.read_bytes() == merged.output.read_bytes()
    assert direct.summary()["vertices"] is None and merged.summary()["vertices"] > 0
    assert direct.summary()["faces"] == merged.summary()["faces"]
    assert direct.provenance["bbox"] == merged.provenance["bbox"]
    assert direct.provenance["fetch"]["merged_vertices"] is None
    assert direct.provenance["incomplete"] is missing
