"""Skeletonization: mesh-export's wavefront vs skeletor's (GPL, test-only) on a real neuron.

The mesh is navis's first hemibrain example subdivided three times (~835k faces, same
surface). Each case records in ``extra_info`` the membrane area of the skeleton model
(frustums, as NEURON computes it) over the mesh's surface area: 1.0 is a model with the
cell's real membrane; skeletor's wavefront radii give about 2x.

Run with ``python -m pytest benchmarks/test_bench_skeleton.py --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from mesh_export.skeleton import Skeleton, skeletonize


@pytest.fixture(scope="module")
def big_neuron(neuron) -> trimesh.Trimesh:
    vertices, faces = np.asarray(neuron.vertices), np.asarray(neuron.faces)
    for _ in range(3):
        vertices, faces = trimesh.remesh.subdivide(vertices, faces)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.units = "nm"
    return mesh


def _area_ratio(skeleton: Skeleton, mesh: trimesh.Trimesh) -> float:
    return skeleton.membrane_area() / float(mesh.area)


@pytest.mark.benchmark(group="skeletonize/neuron-835k")
def test_mesh_export(benchmark, big_neuron):
    skeleton = benchmark.pedantic(skeletonize, args=(big_neuron,), rounds=3, iterations=1)
    benchmark.extra_info["faces"] = int(len(big_neuron.faces))
    benchmark.extra_info["nodes"] = len(skeleton)
    benchmark.extra_info["area_ratio"] = round(_area_ratio(skeleton, big_neuron), 3)
    assert abs(_area_ratio(skeleton, big_neuron) - 1) < 0.3


@pytest.mark.benchmark(group="skeletonize/neuron-835k")
def test_skeletor_wavefront(benchmark, big_neuron):
    skeletor = pytest.importorskip("skeletor")

    def run():  # the wavefront alone (skeletor.pre.fix_mesh would add ~7 s here)
        return skeletor.skeletonize.by_wavefront(big_neuron, waves=1, step_size=1, progress=False)

    result = benchmark.pedantic(run, rounds=2, iterations=1)
    swc = result.swc
    ids = {int(v): i for i, v in enumerate(swc.node_id.values)}
    parents = np.array([ids.get(int(p), -1) for p in swc.parent_id.values])
    nodes = swc[["x", "y", "z"]].to_numpy(dtype=np.float64)
    radii = np.nan_to_num(swc.radius.to_numpy(dtype=np.float64))
    skeleton = Skeleton(nodes, parents, radii, np.full(len(nodes), 3), "nm")
    benchmark.extra_info["faces"] = int(len(big_neuron.faces))
    benchmark.extra_info["nodes"] = len(skeleton)
    benchmark.extra_info["roots"] = int((parents < 0).sum())
    benchmark.extra_info["area_ratio"] = round(_area_ratio(skeleton, big_neuron), 3)
