"""The fixture layers are real: CloudVolume and caveclient read them through the server.

Also pins the library behaviour the fetch code depends on (error types for
missing ids/fragments, what is retried), so a library upgrade that changes it
fails here first, with a clear name.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import requests
from scipy.spatial import cKDTree

from support.datasets import FixtureData, fixture_data, fixture_server, mesh_bounds  # noqa: F401

cloudvolume = pytest.importorskip("cloudvolume")
from cloudvolume import CloudVolume  # noqa: E402
from cloudvolume.exceptions import AuthenticationError, MeshDecodeError, MeshMissingError  # noqa: E402


@pytest.fixture
def srv(fixture_server):
    """The session server with a clean request log and no faults left over."""
    fixture_server.clear_faults()
    fixture_server.reset_requests()
    yield fixture_server
    fixture_server.clear_faults()


def _voxels(data: FixtureData) -> np.ndarray:
    return np.asarray(data.volume.resolution, dtype=float)


def assert_close_to_expected(data: FixtureData, root_id: int, vertices, voxels: float = 1.0) -> None:
    """Decoded vertices are nanometres and lie on the generated mesh (bbox and surface)."""
    res = _voxels(data)
    expected = data.meshes[root_id]
    lo, hi = data.volume.bounds_nm
    got = mesh_bounds(vertices)
    # Nanometres in dataset coordinates, not voxels or a local frame.
    assert np.all(got[0] >= lo - res) and np.all(got[1] <= hi + res)
    off_by = np.abs(got - mesh_bounds(expected.vertices))
    assert np.all(off_by <= voxels * res), off_by
    # Every decoded vertex is near the generated surface (sampled densely).
    samples = np.vstack([
        expected.vertices, expected.triangles_center,
        expected.vertices[expected.edges_unique].mean(axis=1),
    ])
    dist, _ = cKDTree(samples).query(np.asarray(vertices))
    assert dist.max() < 1.5 * res.max()


# ----------------------------------------------------------------- static server


def test_range_requests_get_206(srv, fixture_data):
    shard = fixture_data.root / "multires" / "mesh" / "0.shard"
    if not shard.exists():
        shard = next((fixture_data.root / "multires" / "mesh").glob("*.shard"))
    url = f"{srv.url}/multires/mesh/{shard.name}"
    blob = shard.read_bytes()

    r = requests.get(url, headers={"Range": "bytes=10-29"})
    assert r.status_code == 206
    assert r.content == blob[10:30]
    assert r.headers["Content-Range"] == f"bytes 10-29/{len(blob)}"

    r = requests.get(url, headers={"Range": "bytes=-16"})
    assert r.status_code == 206 and r.content == blob[-16:]
    r = requests.get(url, headers={"Range": f"bytes={len(blob)}-"})
    assert r.status_code == 416
    r = requests.get(url)
    assert r.status_code == 200 and r.content == blob
    r = requests.head(url)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(blob)
    assert srv.count(r"\.shard$") == 5


def test_gz_files_are_served_with_content_encoding(srv, fixture_data):
    root_id = fixture_data.root_ids[0]
    name = fixture_data.legacy_fragments[root_id][0]
    on_disk = fixture_data.root / "legacy" / "mesh" / f"{name}.gz"
    assert on_disk.exists() and not on_disk.with_suffix("").exists()

    r = requests.get(f"{srv.url}/legacy/mesh/{name}")  # requests decodes gzip itself
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.content == gzip.decompress(on_disk.read_bytes())
    assert requests.get(f"{srv.url}/legacy/mesh/nope").status_code == 404
    assert requests.get(f"{srv.url}/../etc/passwd").status_code in (403, 404)


def test_fault_injection_is_counted_and_expires(srv):
    srv.inject(r"/legacy/info$", "503", times=2)
    codes = [requests.get(f"{srv.url}/legacy/info").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert [r.fault for r in srv.requests(r"/legacy/info$")] == ["503", "503", None]

    srv.inject(r"/legacy/info$", "truncate", times=1)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"{srv.url}/legacy/info")
    srv.inject(r"/legacy/info$", "reset", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{srv.url}/legacy/info")
    srv.inject(r"/legacy/info$", "slow", delay=0.2, times=1)
    assert requests.get(f"{srv.url}/legacy/info").status_code == 200
    assert srv.requests(r"/legacy/info$")[-1].fault == "slow"
    srv.inject(r"/legacy/info$", 404, times=None)
    assert requests.get(f"{srv.url}/legacy/info").status_code == 404
    srv.clear_faults()
    assert requests.get(f"{srv.url}/legacy/info").status_code == 200


# ------------------------------------------------------------------ legacy layer


def test_legacy_mesh_get(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "legacy"), progress=False)
    for root_id in fixture_data.root_ids:
        srv.reset_requests()
        mesh = cv.mesh.get(root_id)  # fused and deduplicated by default
        assert_close_to_expected(fixture_data, root_id, mesh.vertices)
        assert len(mesh.faces) >= len(fixture_data.meshes[root_id].faces)  # cutting adds faces
        # Each fragment fetched exactly once; the manifest at least once.
        fragments = fixture_data.legacy_fragments[root_id]
        assert len(fragments) >= 2
        for name in fragments:
            assert srv.count(f"/legacy/mesh/{name}$") == 1
        assert srv.count(rf"/legacy/mesh/{root_id}:0$") >= 1

    meshes = cv.mesh.get(fixture_data.root_ids[0], fuse=False)
    assert list(meshes) == [fixture_data.root_ids[0]]


def test_legacy_fragment_border_dedup(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "legacy"), progress=False)
    root_id = fixture_data.root_ids[0]
    raw = cv.mesh.get(root_id, fuse=False)[root_id]
    deduped = cv.mesh.get(root_id, chunk_size=fixture_data.geometry.chunk_size)
    # Fragment borders duplicate vertices; chunk-aware dedup removes them.
    assert len(deduped.vertices) < len(raw.vertices)
    assert len(deduped.faces) == len(raw.faces)


def test_quirk_legacy_missing_id_is_valueerror(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "legacy"), progress=False)
    with pytest.raises(ValueError, match="missing corresponding mesh manifests"):
        cv.mesh.get(fixture_data.missing_id)


def test_quirk_legacy_missing_fragment_is_typeerror(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "legacy"), progress=False)
    root_id = fixture_data.root_ids[1]
    name = fixture_data.legacy_fragments[root_id][1]
    srv.inject(f"/legacy/mesh/{name}$", "404", times=None)
    # A 404 on a fragment reaches the decoder as None content.
    with pytest.raises(TypeError):
        cv.mesh.get(root_id)


# -------------------------------------------------------------- multires layers


@pytest.mark.parametrize("layer", ["multires", "multires_unsharded"])
def test_multires_every_lod(srv, fixture_data, layer):
    cv = CloudVolume(fixture_data.precomputed_url(srv, layer), progress=False)
    assert cv.mesh.meta.is_multires()
    assert cv.mesh.meta.is_sharded() == (layer == "multires")
    res = _voxels(fixture_data)
    for root_id in fixture_data.root_ids:
        faces = []
        for lod in range(fixture_data.num_lods):
            mesh = cv.mesh.get(root_id, lod=lod)[root_id]
            faces.append(len(mesh.faces))
            if lod == 0:
                assert_close_to_expected(fixture_data, root_id, mesh.vertices)
            else:
                # Coarser LODs shrink a little (simplification), never grow.
                got, want = mesh_bounds(mesh.vertices), mesh_bounds(fixture_data.meshes[root_id].vertices)
                assert np.all(got[0] >= want[0] - 2 * res) and np.all(got[1] <= want[1] + 2 * res)
        assert faces == sorted(faces, reverse=True) and len(set(faces)) == len(faces), faces
        # Faces per LOD as written, plus triangles split at fragment borders
        # (many at fine LODs, whose fragments are small).
        written = fixture_data.multires_faces[root_id]
        assert all(w <= f <= 2 * w for w, f in zip(written, faces)), (written, faces)


def test_multires_lod_minus_one_is_coarsest(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "multires"), progress=False)
    root_id = fixture_data.root_ids[2]
    coarsest = cv.mesh.get(root_id, lod=fixture_data.num_lods - 1)[root_id]
    assert len(cv.mesh.get(root_id, lod=-1)[root_id].faces) == len(coarsest.faces)
    with pytest.raises(MeshDecodeError):
        cv.mesh.get(root_id, lod=fixture_data.num_lods)


def test_multires_sharded_reads_use_ranges(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "multires"), progress=False)
    cv.mesh.get(fixture_data.root_ids[0], lod=1)
    shard_reads = srv.requests(r"/multires/mesh/\d+\.shard$")
    assert shard_reads and all(r.range and r.status == 206 for r in shard_reads)


def test_multires_static_503_is_retried(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "multires"), progress=False)
    srv.inject(r"/multires/mesh/\d+\.shard$", "503", times=1)
    root_id = fixture_data.root_ids[0]
    mesh = cv.mesh.get(root_id, lod=0)[root_id]
    assert_close_to_expected(fixture_data, root_id, mesh.vertices)
    statuses = [r.status for r in srv.requests(r"\.shard$")]
    assert statuses[0] == 503 and 206 in statuses[1:]


@pytest.mark.parametrize("kind", ["500", "truncate", "reset"])
def test_multires_static_faults_are_retried(srv, fixture_data, kind):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "multires"), progress=False)
    srv.inject(r"/multires/mesh/\d+\.shard$", kind, times=1)
    root_id = fixture_data.root_ids[1]
    assert len(cv.mesh.get(root_id, lod=1)[root_id].faces) > 0
    assert srv.requests(r"\.shard$")[0].fault == kind


def test_quirk_multires_missing_id_is_meshmissingerror(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "multires"), progress=False)
    with pytest.raises(MeshMissingError):
        cv.mesh.get(fixture_data.missing_id)


def test_quirk_unsharded_multires_missing_id_is_typeerror(srv, fixture_data):
    cv = CloudVolume(fixture_data.precomputed_url(srv, "multires_unsharded"), progress=False)
    with pytest.raises(TypeError):
        cv.mesh.get(fixture_data.missing_id)


# ---------------------------------------------------------------------- graphene


def test_graphene_mesh_get_with_token(srv, fixture_data):
    cv = CloudVolume(srv.graphene_url(fixture_data.graphene_table), secrets=fixture_data.token,
                     progress=False)
    for root_id in fixture_data.root_ids:
        srv.reset_requests()
        meshes = cv.mesh.get(root_id, deduplicate_chunk_boundaries=False)
        assert list(meshes) == [root_id]
        # Draco grid of 8 nm: within one voxel of the generated mesh.
        assert_close_to_expected(fixture_data, root_id, meshes[root_id].vertices)
        assert srv.count(r"/manifest/") == 1
        manifest = fixture_data.graphene["manifests"][str(root_id)]
        dynamic = [f for f in manifest["fragments"] if not f.startswith("~")]
        assert dynamic and len(dynamic) < len(manifest["fragments"])  # both kinds are used
        assert srv.count(r"/mesh/dynamic/") == len(dynamic)
        assert srv.count(r"/mesh/initial/2/.*\.shard$") >= 1
        assert all(r.authorized for r in srv.requests(r"^/(segmentation|meshing)/"))


def test_graphene_without_token_raises_authenticationerror(srv, fixture_data):
    with pytest.raises(AuthenticationError):
        CloudVolume(srv.graphene_url(fixture_data.graphene_table))
    # CloudVolume checks the token's shape before sending it.
    with pytest.raises(AuthenticationError):
        CloudVolume(srv.graphene_url(fixture_data.graphene_table), secrets="not a token!")


def test_graphene_wrong_token_is_http_401(srv, fixture_data):
    with pytest.raises(requests.HTTPError) as excinfo:
        CloudVolume(srv.graphene_url(fixture_data.graphene_table), secrets="ffff0000")
    assert excinfo.value.response.status_code == 401
    assert srv.requests(r"/info$")[-1].authorized is False


def test_quirk_graphene_manifest_503_is_not_retried(srv, fixture_data):
    cv = CloudVolume(srv.graphene_url(fixture_data.graphene_table), secrets=fixture_data.token,
                     progress=False)
    root_id = fixture_data.root_ids[0]
    srv.inject(r"/manifest/", "503", times=1)
    with pytest.raises(requests.HTTPError) as excinfo:
        cv.mesh.get(root_id)
    assert excinfo.value.response.status_code == 503
    assert srv.count(r"/manifest/") == 1  # one try only: the caller must retry
    assert root_id in cv.mesh.get(root_id, deduplicate_chunk_boundaries=False)


def test_quirk_graphene_unknown_root_is_indexerror(srv, fixture_data):
    cv = CloudVolume(srv.graphene_url(fixture_data.graphene_table), secrets=fixture_data.token,
                     progress=False)
    with pytest.raises(IndexError):
        cv.mesh.get(fixture_data.missing_id)


# ----------------------------------------------------------------------- CAVE


def test_caveclient_resolves_datastack_to_graphene(srv, fixture_data):
    caveclient = pytest.importorskip("caveclient")
    client = caveclient.CAVEclient(
        fixture_data.datastack, server_address=srv.url, auth_token=fixture_data.token,
        write_server_cache=False,
    )
    source = client.info.segmentation_source()
    assert source == srv.graphene_url(fixture_data.graphene_table)
    assert client.info.segmentation_source(format_for="cloudvolume") == source
    assert srv.unknown_paths == []

    # End to end: datastack -> graphene source -> mesh.
    cv = CloudVolume(source, secrets=client.auth.token, progress=False)
    root_id = fixture_data.root_ids[0]
    assert root_id in cv.mesh.get(root_id, deduplicate_chunk_boundaries=False)


def test_caveclient_wrong_token_is_http_401(srv, fixture_data):
    caveclient = pytest.importorskip("caveclient")
    # The constructor already fetches the datastack info, so it is what fails.
    with pytest.raises(requests.HTTPError) as excinfo:
        caveclient.CAVEclient(
            fixture_data.datastack, server_address=srv.url, auth_token="wrong",
            write_server_cache=False,
        )
    assert excinfo.value.response.status_code == 401


# The bundled sample's tests are in test_sample.py.
