"""Neuroglancer layers at real scale (issue 25): a 9M-face cell (the subdivided navis neuron of
test_bench_large, float32/int32 as read from a PLY) added to a new directory as a 4-lod sharded
multi-resolution Draco layer, side by side with what the lods alone cost (fast-simplification's
quadric decimation, three times, each from the one before). One round each: a round takes
minutes on 2 cores. Whole-process time and peak memory are in RESULTS.md
(``/usr/bin/time -f "%e s %M KB"`` around ``mesh-export convert big.ply layers --format precomputed``).
"""

from __future__ import annotations

import shutil

import pytest

from mesh_export.core.mesh_ops import quadric_decimate
from mesh_export.writers.precomputed import Cell, LayerOptions, add_cells
from mesh_export.writers.precomputed.mesh import LOD_REDUCTION
from mesh_export.writers.readers import read_surface

TARGET_FACES = 9_000_000
LODS = 4


@pytest.fixture(scope="module")
def big_arrays(tmp_path_factory):
    import numpy as np
    import trimesh

    from support.large import subdivided_neuron

    vertices, faces = subdivided_neuron(TARGET_FACES)
    path = tmp_path_factory.mktemp("layers-large") / "neuron.ply"
    trimesh.Trimesh(vertices.astype(np.float32), faces.astype(np.int32), process=False).export(path)
    vertices, faces, _ = read_surface(path)
    assert vertices.dtype == np.float32 and faces.dtype == np.int32  # the arrays as a reader gives them
    return vertices, faces


@pytest.mark.benchmark(group="large-layers-4-lods")
def test_add_cell_to_new_layers(benchmark, big_arrays, tmp_path):
    vertices, faces = big_arrays
    out = tmp_path / "layers"

    def run():
        shutil.rmtree(out, ignore_errors=True)
        return add_cells(out, [Cell(864691135000000009, vertices, faces)], LayerOptions(lods=LODS))

    registry = benchmark.pedantic(run, rounds=1, iterations=1)
    counts = registry["cells"]["864691135000000009"]["faces_per_lod"]
    assert counts[0] == len(faces) and len(counts) == LODS and counts[-1] < len(faces) / 40


@pytest.mark.benchmark(group="large-layers-4-lods")
def test_the_lods_alone(benchmark, big_arrays):
    vertices, faces = big_arrays

    def run():
        v, f = vertices, faces
        for _ in range(LODS - 1):
            v, f = quadric_decimate(v, f, target_count=int(len(f) * LOD_REDUCTION))
        return f

    assert len(benchmark.pedantic(run, rounds=1, iterations=1)) < len(faces) / 40
