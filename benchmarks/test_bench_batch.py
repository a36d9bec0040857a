"""Batch throughput and memory: 200 small meshes from a local server.

`export_many(..., workers=N)` for N = 1, 2, 4, 8, side by side with the plain loop a notebook
user writes (one CloudVolume, `mesh.get` + `trimesh.export` per id). The server runs in its
own process (so it does not share the benchmark's GIL), once with no added latency and once
with 10 ms per request, closer to a real bucket. Memory: peak RSS of a 200-id batch (in a
fresh process) against a single export of the largest mesh.

    .venv/bin/python -m pytest benchmarks/test_bench_batch.py -q -s
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trimesh

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from test_batch import build_batch_layer  # noqa: E402

_counter = itertools.count()
_SERVE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from support.server import FixtureServer
    srv = FixtureServer({root!r}).start()
    if {latency!r}:
        srv.inject(r".", "slow", delay={latency!r}, times=None)
    print(srv.url, flush=True)
    sys.stdin.read()
""")


@pytest.fixture(scope="module")
def layer_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-batch-layer")
    info = build_batch_layer(root, big=6)  # the last id: an icosphere(6), ~80k faces
    return root, info


@pytest.fixture(scope="module", params=[0.0, 0.01], ids=["no-latency", "10ms-latency"])
def served(request, layer_root):
    root, info = layer_root
    proc = subprocess.Popen([sys.executable, "-c", _SERVE.format(tests=str(TESTS), root=str(root),
                                                               latency=request.param)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    yield f"precomputed://{url}/batch", info["ids"], request.param
    proc.stdin.close()
    proc.wait(timeout=10)


def _plain_loop(url, ids, directory: Path) -> None:
    from cloudvolume import CloudVolume

    volume = CloudVolume(url, progress=False, cache=False)
    for root_id in ids:
        mesh = volume.mesh.get(root_id)
        mesh = mesh[root_id] if isinstance(mesh, dict) else mesh
        trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(directory / f"{root_id}.stl")


def _report(benchmark, label, n):
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info["meshes_per_s"] = round(n / seconds, 1)
    print(f"\n{label}: {n / seconds:.1f} meshes/s ({seconds:.2f} s for {n})")


def test_batch_plain_loop(benchmark, served, tmp_path):
    url, ids, latency = served
    benchmark.group = f"batch-200/{latency * 1000:g}ms"

    def run():
        out = tmp_path / f"plain{next(_counter)}"
        out.mkdir()
        _plain_loop(url, ids, out)

    benchmark.pedantic(run, rounds=1, iterations=1)
    _report(benchmark, f"plain loop ({latency * 1000:g} ms)", len(ids))


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_batch_export_many(benchmark, served, tmp_path, workers):
    from mesh_export.jobs.batch import export_many

    url, ids, latency = served
    benchmark.group = f"batch-200/{latency * 1000:g}ms"

    def run():
        out = tmp_path / f"batch{next(_counter)}"
        out.mkdir()
        result = export_many(ids, source=url, out_dir=out, workers=workers, use_cache=False, manifest=True)
        assert result.exit_code == 0, result.summary_table()

    benchmark.pedantic(run, rounds=1, iterations=1)
    _report(benchmark, f"export_many workers={workers} ({latency * 1000:g} ms)", len(ids))


_PEAK = textwrap.dedent("""
    import json, resource, sys
    from mesh_export.jobs.batch import export_many
    from mesh_export.jobs.export import export
    url, out, ids, workers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
    if len(ids) == 1:
        export(ids[0], source=url, out_dir=out, use_cache=False, overwrite=True)
    else:
        assert export_many(ids, source=url, out_dir=out, workers=workers, use_cache=False,
                           overwrite=True).exit_code == 0
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def _peak_kib(url, out, ids, workers=1) -> int:
    done = subprocess.run([sys.executable, "-c", _PEAK, url, str(out), json.dumps([str(i) for i in ids]),
                           str(workers)], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("workers", [1, 8])
def test_batch_peak_memory(served, tmp_path, workers):
    url, ids, latency = served
    if latency:
        pytest.skip("memory does not depend on latency")
    single = _peak_kib(url, tmp_path, ids[-1:])  # the largest mesh alone
    batch = _peak_kib(url, tmp_path, ids, workers)
    ratio = batch / single
    print(f"\npeak RSS: single largest {single / 1024:.0f} MiB, batch of {len(ids)} "
          f"(workers={workers}) {batch / 1024:.0f} MiB, ratio {ratio:.2f}")
    assert ratio > 0
