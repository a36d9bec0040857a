"""The main job, `mesh-export <root_id>`, driven through the CLI against real-format data
served on 127.0.0.1 (legacy, sharded multi-LOD Draco, graphene + CAVE info)."""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
import pytest
import trimesh

from conftest import cli_in as cli
import mesh_export
from mesh_export import errors
from support.datasets import fixture_data, fixture_server, srv  # noqa: F401  (pytest fixtures)


def sidecar(workdir, name):
    return json.loads((workdir / "out" / (name + ".json")).read_text())


def bodies(mesh: trimesh.Trimesh) -> int:
    return len(trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(mesh.faces)),
                                                  min_len=1))


def assert_ok(result):
    assert result.returncode == 0, result.stderr
    return result


def assert_error(result, error, text=""):
    assert result.returncode == error.exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert text in result.stderr, result.stderr


# ---------------------------------------------------------------- each source kind


@pytest.mark.parametrize("layer", ["legacy", "multires", "multires_unsharded"])
def test_precomputed_layers_export_one_surface_per_cell(layer, srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    assert_ok(cli(workdir, root_id, "--source", fixture_data.precomputed_url(srv, layer), "--format", "ply"))
    exported = trimesh.load(workdir / "out" / f"{root_id}_lod0.ply", process=False)
    generated = fixture_data.meshes[root_id]
    voxel = max(fixture_data.volume.resolution)
    np.testing.assert_allclose(exported.bounds, generated.bounds, atol=2 * voxel)
    # Fragments are stitched: the export has as many bodies as the generated cell, not one per fragment.
    assert bodies(exported) == bodies(generated)
    meta = sidecar(workdir, f"{root_id}_lod0.ply")
    assert meta["units"] == "nm" and meta["root_id"] == str(root_id)
    assert meta["fetch"]["merged_vertices"] > 0
    assert meta["output"]["sha256"] == hashlib.sha256((workdir / "out" / f"{root_id}_lod0.ply").read_bytes()).hexdigest()


def test_every_lod_of_sharded_multires(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[1]
    url = fixture_data.precomputed_url(srv, "multires")
    faces = []
    for lod in range(fixture_data.num_lods):
        assert_ok(cli(workdir, root_id, "--source", url, "--lod", lod, "--format", "stl"))
        faces.append(sidecar(workdir, f"{root_id}_lod{lod}.stl")["faces"])
        assert sidecar(workdir, f"{root_id}_lod{lod}.stl")["lods_available"] == fixture_data.num_lods
    assert faces == sorted(faces, reverse=True) and faces[0] > 2 * faces[-1]
    assert_ok(cli(workdir, root_id, "--source", url, "--lod", "-1", "--format", "obj"))
    assert sidecar(workdir, f"{root_id}_lod{fixture_data.num_lods - 1}.obj")["faces"] == faces[-1]


def test_dynamic_mesh_through_cave_datastack(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[2]
    result = assert_ok(cli(workdir, root_id, "--datastack", fixture_data.datastack, "--server", srv.url,
                           "--version", "943", "--format", "stl", "--json", token=fixture_data.token))
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok" and summary["cache"] == "miss"
    meta = sidecar(workdir, f"{root_id}_lod0.stl")
    assert meta["datastack"] == fixture_data.datastack and meta["version"] == 943
    assert meta["source"]["kind"] == "graphene"
    assert meta["source"]["url"] == srv.graphene_url(fixture_data.graphene_table)
    exported = trimesh.load(workdir / "out" / f"{root_id}_lod0.stl")  # merges STL's per-face vertices
    assert bodies(exported) == bodies(fixture_data.meshes[root_id])
    assert srv.count(r"/info/api/v2/datastack/full/") >= 1


def test_graphene_source_url_and_several_ids(srv, fixture_data, workdir):
    ids = fixture_data.root_ids[:2]
    result = assert_ok(cli(workdir, *ids, "--source", srv.graphene_url(fixture_data.graphene_table),
                           "--format", "glb", "--json", "--token", fixture_data.token))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["root_id"] for line in lines] == [str(i) for i in ids]
    for root_id in ids:
        assert trimesh.load(workdir / "out" / f"{root_id}_lod0.glb", force="mesh").faces.shape[0] > 100


def test_bundled_sample_runs_offline_without_server(workdir):
    from mesh_export.retrieve.sources import sample_path

    provenance = json.loads((sample_path() / "provenance").read_text())
    root_id = provenance["root_ids"][0]
    assert_ok(cli(workdir, root_id, "--source", "sample", "--format", "stl", "--lod", "2"))
    mesh = trimesh.load(workdir / "out" / f"{root_id}_lod2.stl")
    assert len(mesh.faces) >= provenance["faces_per_lod"][str(root_id)][2]


# ---------------------------------------------------------------- cache


def test_cache_hit_makes_no_requests_and_offline_serves_it(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    url = fixture_data.precomputed_url(srv, "multires")
    assert_ok(cli(workdir, root_id, "--source", url, "--format", "stl"))
    first = (workdir / "out" / f"{root_id}_lod0.stl").read_bytes()
    srv.reset_requests()
    result = assert_ok(cli(workdir, root_id, "--source", url, "--format", "stl", "--overwrite", "--json"))
    assert json.loads(result.stdout)["cache"] == "hit"
    assert srv.count() == 0
    assert (workdir / "out" / f"{root_id}_lod0.stl").read_bytes() == first
    result = assert_ok(cli(workdir, root_id, "--source", url, "--format", "stl", "--overwrite",
                           "--offline", "--json"))
    assert json.loads(result.stdout)["cache"] == "hit" and srv.count() == 0


@pytest.mark.parametrize("fmt", ["stl", "ply", "vtk", "vtp", "vtu"])
def test_binary_exports_skip_trimesh_and_match_a_trimesh_written_file(fmt, srv, fixture_data, workdir):
    """With no steps, a binary native format is written straight from the cached float32/int32
    arrays; the bytes must be those mesh_export.write gives for the same mesh as a Trimesh."""
    from mesh_export.retrieve.cached import fetch_cached

    root_id = fixture_data.root_ids[1]
    url = fixture_data.precomputed_url(srv, "multires")
    assert_ok(cli(workdir, root_id, "--source", url, "--format", fmt))
    vertices, faces, _, state = fetch_cached(root_id, source=url, cache_dir=workdir / "cache", offline=True)
    assert state == "hit" and vertices.dtype == np.float32
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.units = "nm"
    mesh_export.write(mesh, workdir / f"via-trimesh.{fmt}")
    assert (workdir / "out" / f"{root_id}_lod0.{fmt}").read_bytes() == (workdir / f"via-trimesh.{fmt}").read_bytes()


def test_lod_requests_for_one_mesh_share_one_cache_entry(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    url = fixture_data.precomputed_url(srv, "multires")
    coarsest = fixture_data.num_lods - 1
    # --lod omitted and --lod 0 are the same mesh: one entry, the second is a hit.
    assert json.loads(assert_ok(cli(workdir, root_id, "--source", url, "--json")).stdout)["cache"] == "miss"
    result = assert_ok(cli(workdir, root_id, "--source", url, "--lod", "0", "--overwrite", "--json"))
    assert json.loads(result.stdout)["cache"] == "hit"
    # -1 is resolved by fetching; its key then points at the coarsest lod's entry (no copy).
    assert_ok(cli(workdir, root_id, "--source", url, "--lod", "-1"))
    assert len(list((workdir / "cache").glob("??/*.npz"))) == 2
    srv.reset_requests()
    for lod in ("-1", str(coarsest)):
        result = assert_ok(cli(workdir, root_id, "--source", url, "--lod", lod, "--offline", "--overwrite",
                               "--json"))
        assert json.loads(result.stdout)["cache"] == "hit" and json.loads(result.stdout)["lod"] == coarsest
    assert srv.count() == 0 and len(list((workdir / "cache").glob("??/*.npz"))) == 2
    assert_ok(cli(workdir, "cache", "clear"))
    assert not list((workdir / "cache").glob("??/*"))


def test_offline_miss_is_a_clear_error(srv, fixture_data, workdir):
    result = cli(workdir, fixture_data.root_ids[1], "--source", fixture_data.precomputed_url(srv, "multires"),
                 "--offline")
    assert_error(result, errors.CacheMissError, "not in the cache")
    assert srv.count() == 0


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_cache_entry_is_refetched_not_served(damage, srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[2]
    url = fixture_data.precomputed_url(srv, "multires")
    assert_ok(cli(workdir, root_id, "--source", url, "--format", "ply"))
    good = (workdir / "out" / f"{root_id}_lod0.ply").read_bytes()
    [entry] = (workdir / "cache").glob("??/*.npz")
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    srv.reset_requests()
    result = assert_ok(cli(workdir, root_id, "--source", url, "--format", "ply", "--overwrite", "--json"))
    assert json.loads(result.stdout)["cache"] == "miss"
    assert srv.count() > 0
    assert (workdir / "out" / f"{root_id}_lod0.ply").read_bytes() == good


def test_cache_entries_are_plain_npz_and_older_sha256_entries_are_still_served(tmp_path):
    from mesh_export.retrieve.cache import MeshCache, _digest

    cache = MeshCache(tmp_path)
    vertices = np.arange(30, dtype=np.float32).reshape(10, 3)
    faces = np.array([[0, 1, 2], [2, 3, 4], [7, 8, 9]], dtype=np.int32)
    path = cache.put("ab" * 32, vertices, faces, {"lod": 0})
    with np.load(path, allow_pickle=False) as data:  # any numpy reads an entry
        assert np.array_equal(data["vertices"], vertices) and np.array_equal(data["faces"], faces)
        assert set(data.files) == {"vertices", "faces", "meta", "xxh3_128"}
    meta = b'{"lod": 1}'
    older = cache.path("cd" * 32)
    older.parent.mkdir(parents=True, exist_ok=True)
    np.savez(older, vertices=vertices, faces=faces, meta=np.frombuffer(meta, dtype=np.uint8),
             sha256=np.frombuffer(_digest(vertices, faces, meta, "sha256").encode(), dtype=np.uint8))
    entry = cache.get("cd" * 32)
    assert entry is not None and entry.meta == {"lod": 1} and np.array_equal(entry.faces, faces)
    meta_damaged = cache.path("ef" * 32)
    meta_damaged.parent.mkdir(parents=True, exist_ok=True)
    np.savez(meta_damaged, vertices=vertices, faces=faces, meta=np.frombuffer(b'{"lod": 2}', dtype=np.uint8),
             xxh3_128=np.frombuffer(_digest(vertices, faces, meta).encode(), dtype=np.uint8))
    assert cache.get("ef" * 32) is None and not meta_damaged.exists()


def test_no_cache_writes_nothing_and_cache_commands(srv, fixture_data, workdir):
    url = fixture_data.precomputed_url(srv, "multires")
    assert_ok(cli(workdir, fixture_data.root_ids[0], "--source", url, "--no-cache"))
    assert not (workdir / "cache").exists()
    for lod in range(3):
        assert_ok(cli(workdir, fixture_data.root_ids[0], "--source", url, "--lod", lod, "--overwrite"))
    info = json.loads(assert_ok(cli(workdir, "cache", "info", "--json")).stdout)
    assert info["entries"] == 3 and info["bytes"] > 0
    entries = sorted((workdir / "cache").glob("??/*.npz"), key=lambda p: p.stat().st_size)
    # Make the largest entry the most recently used: prune must drop the older ones first.
    os.utime(entries[-1], (time.time() + 10, time.time() + 10))
    assert_ok(cli(workdir, "cache", "prune", "--max-size", str(entries[-1].stat().st_size)))
    assert [p.name for p in (workdir / "cache").glob("??/*.npz")] == [entries[-1].name]
    assert_error(cli(workdir, "cache", "prune", "--max-size", "lots"), errors.InvalidArgumentError, "size")
    assert "removed 1" in assert_ok(cli(workdir, "cache", "clear")).stdout
    assert json.loads(cli(workdir, "cache", "info", "--json").stdout)["entries"] == 0


# ---------------------------------------------------------------- failures


def test_transient_503s_are_retried(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    srv.inject(r"/meshing/api/v1/table/.*/manifest/", "503", times=2)
    assert_ok(cli(workdir, root_id, "--source", srv.graphene_url(fixture_data.graphene_table),
                  "--token", fixture_data.token))
    assert sidecar(workdir, f"{root_id}_lod0.stl")["fetch"]["retries"] >= 2
    assert srv.count(r"/manifest/") >= 3


def test_persistent_failure_gives_up_within_timeout(srv, fixture_data, workdir):
    srv.inject(r"/meshing/api/v1/table/.*/manifest/", "503", times=None)
    started = time.monotonic()
    result = cli(workdir, fixture_data.root_ids[0], "--source", srv.graphene_url(fixture_data.graphene_table),
                 "--token", fixture_data.token, "--timeout", "2")
    assert_error(result, errors.NetworkError, "503")
    assert time.monotonic() - started < 15
    assert not list((workdir / "out").iterdir())


def test_unreachable_host_fails_fast(workdir):
    started = time.monotonic()
    result = cli(workdir, "864691135000000001", "--source", "precomputed://http://127.0.0.1:9/layer")
    assert_error(result, errors.NetworkError, "cannot reach 127.0.0.1:9")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("layer", ["legacy", "multires", "multires_unsharded", "graphene"])
def test_missing_root_id_names_the_id(layer, srv, fixture_data, workdir):
    url = (srv.graphene_url(fixture_data.graphene_table) if layer == "graphene"
           else fixture_data.precomputed_url(srv, layer))
    result = cli(workdir, fixture_data.missing_id, "--source", url, "--token", fixture_data.token)
    assert_error(result, errors.NotFoundError, str(fixture_data.missing_id))


def test_missing_fragment_is_an_error_unless_allowed(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[1]
    fragment = fixture_data.legacy_fragments[root_id][1]
    srv.inject(r"/legacy/mesh/" + fragment.replace(".", r"\.") + "$", "404", times=None)
    url = fixture_data.precomputed_url(srv, "legacy")
    assert_error(cli(workdir, root_id, "--source", url), errors.IncompleteMeshError, "--allow-missing")
    assert not list((workdir / "out").iterdir())
    result = assert_ok(cli(workdir, root_id, "--source", url, "--allow-missing", "--json"))
    assert json.loads(result.stdout)["incomplete"] is True
    meta = sidecar(workdir, f"{root_id}_lod0.stl")
    assert meta["incomplete"] is True and len(meta["fetch"]["missing_fragments"]) == 1


def test_lod_on_single_resolution_source_is_an_error(srv, fixture_data, workdir):
    result = cli(workdir, fixture_data.root_ids[0], "--source", fixture_data.precomputed_url(srv, "legacy"),
                 "--lod", "2")
    assert_error(result, errors.SourceError, "single level of detail")
    result = cli(workdir, fixture_data.root_ids[0], "--source", fixture_data.precomputed_url(srv, "multires"),
                 "--lod", "9")
    assert_error(result, errors.SourceError, "lods 0..")


@pytest.mark.parametrize("bad_id", ["abc", "-5", str(2**64), "0", "12.5"])
def test_malformed_root_ids(bad_id, workdir):
    assert_error(cli(workdir, "--source", "sample", "--", bad_id), errors.InvalidArgumentError, "malformed root id")


def test_unknown_datastack_and_static_source(srv, fixture_data, workdir):
    result = cli(workdir, fixture_data.root_ids[0], "--datastack", "no_such_stack", "--server", srv.url,
                 token=fixture_data.token)
    assert_error(result, errors.SourceError, "unknown datastack 'no_such_stack'")
    result = cli(workdir, fixture_data.root_ids[0], "--datastack", "no_such_stack", "--static")
    assert_error(result, errors.SourceError, "no static mesh source")


def test_bad_or_missing_token_gives_hint_and_never_echoes_token(srv, fixture_data, workdir):
    wrong = "fedcba9876543210fedcba9876543210"
    result = cli(workdir, fixture_data.root_ids[0], "--datastack", fixture_data.datastack,
                 "--server", srv.url, token=wrong)
    assert_error(result, errors.AuthError, "CAVE_TOKEN")
    assert wrong not in result.stderr + result.stdout
    result = cli(workdir, fixture_data.root_ids[0], "--source", srv.graphene_url(fixture_data.graphene_table),
                 "--token", wrong)
    assert_error(result, errors.AuthError, "get_new_token")
    assert wrong not in result.stderr + result.stdout
    result = cli(workdir, fixture_data.root_ids[0], "--source", srv.graphene_url(fixture_data.graphene_table))
    assert_error(result, errors.AuthError, "needs a CAVE token")


def test_token_never_reaches_files(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    assert_ok(cli(workdir, root_id, "--datastack", fixture_data.datastack, "--server", srv.url,
                  "--format", "obj", token=fixture_data.token))
    for path in list((workdir / "out").rglob("*")) + list((workdir / "cache").rglob("*")):
        if path.is_file():
            assert fixture_data.token.encode() not in path.read_bytes(), path


def test_token_from_secret_file_and_auth_status(srv, fixture_data, workdir):
    secrets = workdir / "home" / ".cloudvolume" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "cave-secret.json").write_text(json.dumps({"token": fixture_data.token}))
    status = assert_ok(cli(workdir, "auth", "status"))
    assert "cave-secret.json" in status.stdout and fixture_data.token not in status.stdout
    assert_ok(cli(workdir, fixture_data.root_ids[1], "--source", srv.graphene_url(fixture_data.graphene_table)))
    env_status = json.loads(assert_ok(cli(workdir, "auth", "status", "--json", token="abcdef0123")).stdout)
    assert env_status["origin"] == "$CAVE_TOKEN" and env_status["present"] is True
    assert "abcdef0123" not in json.dumps(env_status)


def test_output_naming_units_and_no_sidecar(srv, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    url = fixture_data.precomputed_url(srv, "multires")
    (workdir / "out" / "meshes").mkdir()
    assert_ok(cli(workdir, root_id, "--source", url, "--out", "meshes", "--name", "cell-{root_id}.{ext}",
                  "--format", "obj", "--units", "um", "--no-sidecar"))
    written = workdir / "out" / "meshes" / f"cell-{root_id}.obj"
    assert written.exists() and not written.with_name(written.name + ".json").exists()
    import mesh_export

    loaded = mesh_export.load(written)
    assert loaded.units == "um"
    np.testing.assert_allclose(loaded.bounds, fixture_data.meshes[root_id].bounds / 1000, atol=0.1)
    # A missing --out directory is created, with its parents (issue 13).
    assert_ok(cli(workdir, root_id, "--source", url, "--out", "nowhere/new"))
    assert (workdir / "out" / "nowhere" / "new" / f"{root_id}_lod0.stl").exists()


def test_sanity_checks_on_decoded_meshes():
    from mesh_export.retrieve.fetch import check_decoded, merge_duplicate_vertices

    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [-0.0, 0, 0]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [4, 3, 2], [0, 4, 1]])
    merged, merged_faces, removed = merge_duplicate_vertices(vertices, faces)
    assert removed == 2 and len(merged) == 3
    assert merged_faces.tolist() == [[0, 1, 2], [0, 1, 2]]  # the collapsed face is gone
    with pytest.raises(errors.InvalidMeshError, match="non-finite"):
        check_decoded(np.array([[np.nan, 0, 0]] * 3, dtype=np.float32), np.array([[0, 1, 2]]), 7)
    with pytest.raises(errors.InvalidMeshError, match="out of range"):
        check_decoded(np.zeros((3, 3), dtype=np.float32), np.array([[0, 1, 5]]), 7)
    with pytest.raises(errors.NotFoundError, match="empty"):
        check_decoded(np.zeros((3, 3), dtype=np.float32), np.zeros((0, 3), dtype=int), 7)
    # The same checks of fragments left unmerged (an STL written from them).
    from mesh_export.retrieve.fetch import check_pieces

    good = (np.zeros((3, 3), dtype=np.float32), np.array([[0, 1, 2]]))
    check_pieces([good, (np.zeros((0, 3), dtype=np.float32), np.zeros((0, 3), dtype=int))], 7)
    with pytest.raises(errors.InvalidMeshError, match="non-finite"):
        check_pieces([good, (np.array([[0, np.inf, 0]] * 3, dtype=np.float32), np.array([[0, 1, 2]]))], 7)
    with pytest.raises(errors.NotFoundError, match="empty"):
        check_pieces([(np.zeros((3, 3), dtype=np.float32), np.zeros((0, 3), dtype=int))], 7)


def _run_on_terminal(args, cwd, env):
    """Run the CLI with stderr on a pseudo-terminal (120 columns), as a user at a shell."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "mesh_export", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=slave, cwd=cwd, env={**os.environ, **env})
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    proc.wait(timeout=120)
    os.close(master)
    return proc.returncode, drawn.decode(errors="replace")


def test_progress_bar_on_a_terminal_and_silent_when_piped(workdir):
    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    env = {"HOME": str(workdir / "home"), "MESH_EXPORT_CACHE": str(workdir / "cache")}
    code, drawn = _run_on_terminal([root_id, "--source", "sample", "--no-cache"], workdir / "out", env)
    assert code == 0
    # The bar redraws in place (carriage returns) through the fetch stages to the face count.
    assert f"{root_id}:" in drawn and "1/4" in drawn and "faces" in drawn and "\r" in drawn
    code, drawn = _run_on_terminal([root_id, "--source", "sample", "--no-cache", "--quiet", "--overwrite"],
                                   workdir / "out", env)
    assert code == 0 and "1/4" not in drawn
    piped = cli(workdir, root_id, "--source", "sample", "--no-cache", "--overwrite")
    assert piped.returncode == 0 and piped.stderr == ""
