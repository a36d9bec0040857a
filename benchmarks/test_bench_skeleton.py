"""Skeletonization at real scale: mesh-export vs skeletor's wavefront (GPL, test-only), same run.

Meshes: navis's first hemibrain example subdivided to 1M and to 9M faces
(``support.large.subdivided_neuron``: the same surface, a real cell's shape at
MICrONS scale; the MICrONS tutorial cell has 8.76M faces), and a MICrONS-like synthetic cell
(tests/support/cells.py: spiny, decimated, with debris; 185k faces).

Each case records in ``extra_info``: faces, nodes, the peak resident memory the call added
(sampled every 10 ms from /proc), and the membrane area of the skeleton model (frustums, as
NEURON computes it) over the mesh's surface area: 1.0 is a model with the cell's membrane.
The 9M-face case must stay within 4 GB.

Run with ``python -m pytest benchmarks/test_bench_skeleton.py --benchmark-only``.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mesh_export.process.skeleton import Skeleton, skeletonize

PAGE = 4096


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakMemory:
    """Peak resident memory above the level at entry, sampled from a thread."""

    def __init__(self, every: float = 0.01):
        self.every, self.peak, self._stop = every, 0, threading.Event()

    def __enter__(self):
        self.base = _rss()

        def watch():
            while not self._stop.wait(self.every):
                self.peak = max(self.peak, _rss() - self.base)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss() - self.base)


def _nm_mesh(vertices, faces) -> trimesh.Trimesh:
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.units = "nm"
    return mesh


@pytest.fixture(scope="module")
def neuron_1m():
    from support.large import subdivided_neuron

    return _nm_mesh(*subdivided_neuron(1_000_000))


@pytest.fixture(scope="module")
def neuron_9m():
    from support.large import subdivided_neuron

    return _nm_mesh(*subdivided_neuron(9_000_000))


@pytest.fixture(scope="module")
def microns_like(request):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.cells import CELLS, cache_dir, cached_cell

    return cached_cell(cache_dir(request), **CELLS["pyramidal"]).mesh


def _area_ratio(skeleton: Skeleton, mesh: trimesh.Trimesh) -> float:
    return skeleton.membrane_area() / float(mesh.area)


def _run(benchmark, function, mesh, rounds):
    memory = []

    def measured():
        with PeakMemory() as peak:
            result = function(mesh)
        memory.append(peak.peak)
        return result

    started = time.perf_counter()
    result = benchmark.pedantic(measured, rounds=rounds, iterations=1)
    benchmark.extra_info["faces"] = int(len(mesh.faces))
    benchmark.extra_info["peak_memory_gb"] = round(max(memory) / 1e9, 3)
    benchmark.extra_info["wall_s_all_rounds"] = round(time.perf_counter() - started, 1)
    return result, max(memory)


def _ours(benchmark, mesh, rounds=1):
    skeleton, peak = _run(benchmark, skeletonize, mesh, rounds)
    benchmark.extra_info["nodes"] = len(skeleton)
    benchmark.extra_info["area_ratio"] = round(_area_ratio(skeleton, mesh), 3)
    assert abs(_area_ratio(skeleton, mesh) - 1) < 0.1
    return peak


def _skeletor(benchmark, mesh, rounds=1):
    skeletor = pytest.importorskip("skeletor")

    def run(m):  # the wavefront alone (skeletor.pre.fix_mesh would add much more)
        return skeletor.skeletonize.by_wavefront(m, waves=1, step_size=1, progress=False)

    result, _ = _run(benchmark, run, mesh, rounds)
    swc = result.swc
    ids = {int(v): i for i, v in enumerate(swc.node_id.values)}
    parents = np.array([ids.get(int(p), -1) for p in swc.parent_id.values])
    nodes = swc[["x", "y", "z"]].to_numpy(dtype=np.float64)
    radii = np.nan_to_num(swc.radius.to_numpy(dtype=np.float64))
    trees = _trees(nodes, parents, radii)
    benchmark.extra_info["nodes"] = len(nodes)
    benchmark.extra_info["roots"] = len(trees)
    benchmark.extra_info["area_ratio"] = round(sum(_area_ratio(tree, mesh) for tree in trees), 3)


def _trees(nodes: np.ndarray, parents: np.ndarray, radii: np.ndarray) -> list[Skeleton]:
    """skeletor's forest (one tree per piece it could not join) as one-root skeletons."""
    top = np.arange(len(parents))
    while True:  # every node's root, by pointer jumping
        up = np.where(parents[top] >= 0, parents[top], top)
        if (up == top).all():
            break
        top = up
    trees = []
    for root in np.flatnonzero(parents < 0):
        members = np.flatnonzero(top == root)
        local = np.full(len(parents), -1)
        local[members] = np.arange(len(members))
        tree_parents = np.where(parents[members] >= 0, local[np.maximum(parents[members], 0)], -1)
        trees.append(Skeleton(nodes[members], tree_parents, radii[members], np.full(len(members), 3), "nm"))
    return trees


CASES = {"microns-like-185k": ("microns_like", 3), "neuron-1M": ("neuron_1m", 2), "neuron-9M": ("neuron_9m", 1)}


@pytest.mark.parametrize("case", list(CASES))
def test_mesh_export(benchmark, request, case):
    fixture, rounds = CASES[case]
    benchmark.group = f"skeletonize/{case}"
    peak = _ours(benchmark, request.getfixturevalue(fixture), rounds)
    assert peak < 4e9, f"skeletonizing {case} took {peak / 1e9:.2f} GB"


@pytest.mark.parametrize("case", list(CASES))
def test_skeletor_wavefront(benchmark, request, case):
    fixture, rounds = CASES[case]
    benchmark.group = f"skeletonize/{case}"
    _skeletor(benchmark, request.getfixturevalue(fixture), rounds)
