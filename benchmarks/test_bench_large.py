"""Real scale (9M faces, a subdivided navis neuron as a binary PLY written by trimesh), side by
side with what a user would otherwise call:

- convert PLY -> binary STL: ``api.convert`` vs ``trimesh.load(...).export(...)`` (trimesh's
  default load, and with ``process=False``);
- info (area, volume, watertight, winding, pieces): ``inspect.info`` vs the same figures from
  trimesh (``area``, ``volume``, ``is_watertight``, ``is_winding_consistent``, connected pieces
  of ``edges_sparse``);
- simplify to 10%: ``steps.simplify`` vs ``fast_simplification.simplify`` alone on the arrays
  it needs (unit scale, float64 / int64).

One or two rounds each: a round takes seconds. Whole-process time and peak memory are in
RESULTS.md (``/usr/bin/time -f "%e s %M KB"``).
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from mesh_export import api


from mesh_export.look import info as inspect

from mesh_export.process import steps
TARGET_FACES = 9_000_000
FACES = {}  # the faces the subdivided neuron actually has (a few short of the target)


@pytest.fixture(scope="module")
def big_ply(tmp_path_factory):
    from support.large import subdivided_neuron

    vertices, faces = subdivided_neuron(TARGET_FACES)
    FACES["count"] = len(faces)
    path = tmp_path_factory.mktemp("large") / "neuron.ply"
    trimesh.Trimesh(vertices, faces, process=False).export(path)  # float32 / int32, as users' files are
    return path


@pytest.fixture(scope="module")
def big_mesh(big_ply):
    return api.load(big_ply, units="nm")


@pytest.mark.benchmark(group="large-convert-ply-stl")
def test_convert_mesh_export(benchmark, big_ply, bench_dir):
    out = bench_dir / "large-me.stl"
    benchmark.pedantic(api.convert, args=(big_ply, out), kwargs={"overwrite": True}, rounds=3, iterations=1)
    assert out.stat().st_size == 84 + 50 * FACES["count"]


@pytest.mark.benchmark(group="large-convert-ply-stl")
@pytest.mark.parametrize("process", [True, False], ids=["trimesh-default", "trimesh-process-False"])
def test_convert_trimesh(benchmark, big_ply, bench_dir, process):
    out = bench_dir / "large-tm.stl"
    benchmark.pedantic(lambda: trimesh.load(big_ply, process=process).export(out), rounds=2, iterations=1)
    assert out.stat().st_size == 84 + 50 * FACES["count"]


@pytest.mark.benchmark(group="large-info")
def test_info_mesh_export(benchmark, big_ply):
    figures = benchmark.pedantic(inspect.info, args=(big_ply,), kwargs={"units": "nm"}, rounds=3, iterations=1)
    assert figures["faces"] == FACES["count"] and not figures["watertight"]


@pytest.mark.benchmark(group="large-info")
def test_info_trimesh(benchmark, big_ply):
    from scipy.sparse.csgraph import connected_components

    def run():
        mesh = trimesh.load(big_ply)  # merges vertices, as info does
        watertight = mesh.is_watertight
        count, labels = connected_components(mesh.edges_sparse, directed=False)
        return (mesh.area, mesh.volume if watertight else None, watertight,
                mesh.is_winding_consistent if watertight else None, count,
                np.bincount(labels[mesh.faces[:, 0]]).max())

    area, _, watertight, _, count, _ = benchmark.pedantic(run, rounds=2, iterations=1)
    assert not watertight and count > 1 and area > 0


@pytest.mark.benchmark(group="large-simplify-10%")
def test_simplify_mesh_export(benchmark, big_mesh):
    out = benchmark.pedantic(steps.simplify, args=(big_mesh,), kwargs={"ratio": 0.1}, rounds=2, iterations=1)
    assert len(out.faces) < 0.11 * FACES["count"]


@pytest.mark.benchmark(group="large-simplify-10%")
def test_simplify_fast_simplification_alone(benchmark, big_mesh):
    fast_simplification = pytest.importorskip("fast_simplification")
    vertices = np.asarray(big_mesh.vertices, dtype=np.float64)
    unit = (vertices - vertices.min(axis=0)) / float(np.ptp(vertices, axis=0).max())
    faces = np.asarray(big_mesh.faces, dtype=np.int64)
    target = int(round(0.1 * len(faces)))
    _, out = benchmark.pedantic(fast_simplification.simplify, args=(unit, faces),
                                kwargs={"target_count": target}, rounds=2, iterations=1)
    assert len(out) < 0.11 * FACES["count"]
