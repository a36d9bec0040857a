"""Batch export (`mesh-export --ids-file ... --workers N`), driven through the CLI against a
legacy precomputed layer of 200 small meshes served on 127.0.0.1: failures, missing ids,
the manifest, exit codes, Ctrl-C and resume, and the same batch on a Dask LocalCluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from support.server import FixtureServer

N_IDS = 200
EXIT_SOME_FAILED, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 20, 21, 130


def build_batch_layer(root: Path, n: int = N_IDS, seed: int = 11, big: int | None = None) -> dict:
    """A legacy precomputed layer of ``n`` tiny icospheres, each straddling chunk borders so
    it has several fragments. ``big``: subdivisions of one larger sphere (the last id)."""
    from support.neurons import make_root_ids
    from support.precomputed import LayerGeometry, write_legacy_mesh_layer

    ids = sorted(make_root_ids(n + 8, seed))
    present, missing = ids[:n], ids[n:n + 3]
    base = trimesh.creation.icosphere(subdivisions=1, radius=300.0)
    meshes = {}
    for k, root_id in enumerate(present):
        sub = big if (big is not None and k == n - 1) else None
        sphere = trimesh.creation.icosphere(subdivisions=sub, radius=300.0) if sub else base
        centre = np.array([512.0 * (1 + k % 20), 512.0 * (1 + k // 20), 640.0])
        meshes[root_id] = trimesh.Trimesh(sphere.vertices + centre, sphere.faces, process=False)
    geometry = LayerGeometry.covering(meshes, resolution=(8.0, 8.0, 40.0), chunk_size=(64, 64, 16),
                                      voxel_offset=(0, 0, 0))
    write_legacy_mesh_layer(root / "batch", meshes, geometry=geometry, compress=False)
    return {"ids": present, "missing": missing, "meshes": meshes}


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch-layer")
    info = build_batch_layer(root)
    with FixtureServer(root) as srv:
        info["server"] = srv
        info["url"] = f"precomputed://{srv.url}/batch"
        yield info


@pytest.fixture()
def srv(layer):
    server = layer["server"]
    server.clear_faults()
    server.reset_requests()
    yield server
    server.clear_faults()


@pytest.fixture()
def work(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


def _env(work) -> dict:
    env = dict(os.environ)
    env.update({"HOME": str(work / "home"), "MESH_EXPORT_CACHE": str(work / "cache"), "CAVE_TOKEN": ""})
    return env


def cli(work, *args, timeout=300, stdin=None):
    from conftest import run_cli  # here: benchmarks/ imports this module beside its own conftest

    return run_cli(*args, env=_env(work), cwd=work / "out", timeout=timeout, stdin=stdin)


def ids_file(work, ids, name="ids.txt") -> Path:
    path = work / name
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


def manifest(work) -> dict[str, dict]:
    lines = (work / "out" / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    by_id = {r["root_id"]: r for r in records}
    assert len(by_id) == len(records), "one line per id after a run"
    return by_id


def _fragment_of(layer, root_id) -> str:
    files = sorted(p.name for p in (layer["server"].root / "batch" / "mesh").glob(f"{root_id}:0:*"))
    return files[0]


def test_batch_with_failures_manifest_outputs_and_exit_code(layer, srv, work):
    ids = layer["ids"]
    broken = ids[5:7]  # one fragment answers 404: an incomplete mesh
    flaky = ids[9]  # its manifest keeps answering 503: a network failure after retries
    for root_id in broken:
        srv.inject(rf"/mesh/{_fragment_of(layer, root_id)}$", "404", times=None)
    srv.inject(rf"/mesh/{flaky}:0$", "503", times=None)
    all_ids = ids + layer["missing"]
    path = ids_file(work, all_ids)
    result = cli(work, "--ids-file", path, "--source", layer["url"], "--workers", 4, "--timeout", 1,
                 "--format", "stl", "--no-cache")
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    assert "Traceback" not in result.stderr
    records = manifest(work)
    assert set(records) == {str(i) for i in all_ids}
    failed = {i for i, r in records.items() if r["status"] == "failed"}
    assert failed == {str(i) for i in [*broken, flaky, *layer["missing"]]}
    assert {records[str(i)]["error_type"] for i in layer["missing"]} == {"NotFoundError"}
    assert {records[str(i)]["error_type"] for i in broken} == {"IncompleteMeshError"}
    assert records[str(flaky)]["error_type"] == "NetworkError" and records[str(flaky)]["exit_code"] == 9
    for root_id in ids:
        record = records[str(root_id)]
        if str(root_id) in failed:
            assert not (work / "out" / f"{root_id}_lod0.stl").exists()
            continue
        assert record["status"] == "ok" and record["faces"] >= 80 and record["duration"] >= 0
        output = Path(record["output"])
        assert output.name == f"{root_id}_lod0.stl" and Path(record["sidecar"]).is_file()
        mesh = trimesh.load(output)
        np.testing.assert_allclose(mesh.bounds, layer["meshes"][root_id].bounds, atol=1e-3)
    # The summary table, and nothing half-written anywhere.
    assert "failed 6" in result.stderr and "ok 197" in result.stderr, result.stderr[-1500:]
    assert not list((work / "out").glob(".*.part"))
    # Per-id output lines on stdout (piped: no progress bar).
    assert len(result.stdout.splitlines()) == 197 and "\r" not in result.stderr


def test_exit_codes_all_failed_and_all_ok_ids_from_stdin_and_csv(layer, srv, work):
    missing = layer["missing"]
    result = cli(work, *missing, "--source", layer["url"], "--no-cache")
    assert result.returncode == EXIT_ALL_FAILED, result.stderr
    assert "failed 3" in result.stderr
    # stdin
    ids = layer["ids"][:3]
    result = cli(work, "-", "--source", layer["url"], "--no-cache", "--json",
                 stdin="".join(f"{i}\n" for i in ids))
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(line)["root_id"] for line in result.stdout.splitlines()) == sorted(map(str, ids))
    # A CSV column; ids already exported are skipped (not fetched again).
    csv = work / "cells.csv"
    csv.write_text("cell_type,pt_root_id\n" + "".join(f"L23,{i}\n" for i in layer["ids"][:5]))
    srv.reset_requests()
    result = cli(work, "--ids-file", csv, "--id-column", "pt_root_id", "--source", layer["url"], "--no-cache",
                 "--workers", 2)
    assert result.returncode == 0, result.stderr
    assert "skipped (already done) 3" in result.stderr
    assert srv.count(r"/mesh/\d+:0$") == 2
    # A bad id fails alone, with exit 20 for the batch.
    result = cli(work, layer["ids"][0], "12x", "--source", layer["url"], "--no-cache")
    assert result.returncode == EXIT_SOME_FAILED and "12x" in result.stderr


def test_fail_fast_stops_scheduling(layer, srv, work):
    ids = layer["missing"][:1] + layer["ids"][:20]
    result = cli(work, *ids, "--source", layer["url"], "--no-cache", "--fail-fast")
    assert result.returncode == EXIT_SOME_FAILED or result.returncode == EXIT_ALL_FAILED
    assert "--fail-fast" in result.stderr
    assert len(manifest(work)) < len(ids)


@pytest.mark.slow
def test_sigint_stops_cleanly_and_rerun_fetches_only_the_rest(layer, srv, work):
    ids = layer["ids"]
    path = ids_file(work, ids)
    srv.inject(r"/mesh/\d+:0$", "slow", delay=0.05, times=None)  # ~10 s for the whole batch
    args = [sys.executable, "-m", "mesh_export", "--ids-file", str(path), "--source", layer["url"],
            "--workers", 2, "--no-cache"]
    proc = subprocess.Popen(list(map(str, args)), env=_env(work), cwd=work / "out",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    book = work / "out" / "manifest.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if book.exists() and len(book.read_text().splitlines()) >= 30:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    first = manifest(work)
    assert 30 <= len(first) < len(ids)
    assert all(r["status"] == "ok" for r in first.values())
    # Every file under a real name is complete: the ones in the manifest, with their sidecars.
    stls = sorted((work / "out").glob("*.stl"))
    assert {p.name for p in stls} == {f"{i}_lod0.stl" for i in first}
    assert not list((work / "out").glob(".*.part"))
    for p in stls:
        assert len(trimesh.load(p).faces) >= 80

    srv.clear_faults()
    srv.reset_requests()
    result = cli(work, "--ids-file", path, "--source", layer["url"], "--workers", 2, "--no-cache")
    assert result.returncode == 0, result.stderr
    assert srv.count(r"/mesh/\d+:0$") == len(ids) - len(first)
    fetched = {p.path.rsplit("/", 1)[1].split(":")[0] for p in srv.requests(r"/mesh/\d+:0$")}
    assert fetched == {str(i) for i in ids} - set(first)
    final = manifest(work)
    assert set(final) == {str(i) for i in ids} and all(r["status"] == "ok" for r in final.values())
    assert f"skipped (already done) {len(first)}" in result.stderr
    # --overwrite forces every id again.
    srv.reset_requests()
    result = cli(work, *ids[:4], "--source", layer["url"], "--no-cache", "--overwrite")
    assert result.returncode == 0 and srv.count(r"/mesh/\d+:0$") == 4


def test_changed_request_is_not_skipped(layer, srv, work):
    ids = layer["ids"][:3]
    assert cli(work, *ids, "--source", layer["url"], "--no-cache").returncode == 0
    # Same files, different request (--center): not taken for done, and not replaced silently.
    result = cli(work, *ids, "--source", layer["url"], "--no-cache", "--center")
    assert result.returncode == EXIT_ALL_FAILED and "--overwrite" in result.stderr


RATE = 20  # --max-requests-per-second; the bucket's burst is the same (one second's worth)
BURST = RATE
JITTER = 0.25  # seconds between a token's grant and its request's arrival, at most


def test_rate_limit_is_shared_by_workers(layer, srv, work):
    """The server's own log: no second of the batch sees more than burst + rate requests.

    Every HTTP request takes one token from the bucket all workers share, so any w seconds
    hold at most burst + rate * w of them (one more for a token granted on the window's far
    edge); JITTER covers the scheduling between a grant and the request's arrival. Without the
    limiter the 4 workers send these ~100 requests to 127.0.0.1 within 0.2 s, and this fails."""
    ids = layer["ids"][:10]
    result = cli(work, *ids, "--source", layer["url"], "--no-cache", "--workers", 4,
                 "--max-requests-per-second", RATE)
    assert result.returncode == 0, result.stderr
    stamps = sorted(r.received for r in srv.requests())
    busiest = srv.busiest(1.0)
    allowed = BURST + RATE * (1.0 + JITTER) + 1
    print(f"rate limit: {len(stamps)} requests in {stamps[-1] - stamps[0]:.2f} s, "
          f"busiest 1 s window {busiest}, allowed {allowed:.0f}")
    assert len(stamps) > 2 * (BURST + RATE)  # enough requests that an unlimited run would show
    assert busiest <= allowed, f"{busiest} requests within 1 s at --max-requests-per-second {RATE}"
    # The whole run is paced too: all but the first burst at RATE per second.
    assert stamps[-1] - stamps[0] >= (len(stamps) - BURST) / RATE * 0.9


@pytest.mark.slow
def test_dask_cluster_gives_identical_outputs(layer, srv, work, tmp_path):
    distributed = pytest.importorskip("distributed")
    ids = layer["ids"][:40] + layer["missing"][:1]
    path = ids_file(work, ids)
    local = cli(work, "--ids-file", path, "--source", layer["url"], "--workers", 2, "--no-cache")
    assert local.returncode == EXIT_SOME_FAILED, local.stderr

    dask_out = tmp_path / "dask-out"
    dask_out.mkdir()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        result = subprocess.run(
            [sys.executable, "-m", "mesh_export", "--ids-file", str(path), "--source", layer["url"],
             "--scheduler", cluster.scheduler_address, "--no-cache", "--out", str(dask_out)],
            capture_output=True, text=True, env=_env(work), cwd=work, timeout=300)
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    records = {json.loads(line)["root_id"]: json.loads(line)
               for line in (dask_out / "manifest.jsonl").read_text().splitlines()}
    assert set(records) == {str(i) for i in ids}
    assert records[str(layer["missing"][0])]["error_type"] == "NotFoundError"
    for root_id in layer["ids"][:40]:
        name = f"{root_id}_lod0.stl"
        assert (dask_out / name).read_bytes() == (work / "out" / name).read_bytes()


def test_api_export_many_with_client(layer, srv, work):
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    from mesh_export.jobs.batch import export_many

    ids = layer["ids"][:6]
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        result = export_many(ids, client=client, source=layer["url"], out_dir=work / "out", use_cache=False)
    assert result.exit_code == 0 and len(result.ok) == 6
    again = export_many(ids, workers=3, source=layer["url"], out_dir=work / "out", use_cache=False)
    assert again.exit_code == 0 and len(again.skipped) == 6


def test_read_ids_formats(tmp_path):
    from mesh_export.jobs.batch import read_ids
    from mesh_export.errors import InvalidArgumentError

    text = tmp_path / "ids.txt"
    text.write_text("# header comment\n11\n\n12  # trailing\n11\n")
    assert read_ids([], text) == ["11", "12"]
    csv = tmp_path / "ids.csv"
    csv.write_text("root_id,type\n21,a\n22,b\n")
    assert read_ids(["5"], csv) == ["5", "21", "22"]
    with pytest.raises(InvalidArgumentError):
        read_ids([], csv, id_column="nope")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"pt_root_id": pa.array([864691135572530981, 864691135572530982], pa.uint64())})
    pq.write_table(table, tmp_path / "ids.parquet")
    assert read_ids([], tmp_path / "ids.parquet") == ["864691135572530981", "864691135572530982"]
