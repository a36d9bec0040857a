"""Scenes (issue 24): many cells into one file, and a real-size cell's faces labelled.

- 100 cells, one GLB: 100 copies of the bundled sample's lod-2 mesh (46,678 faces each, ~4.7M
  in all) on a 10 x 10 grid, put in the verified mesh cache as a fetch leaves them; then
  ``export_scene(..., offline=True)`` writes the scene from the cache (``--scene cells.glb``),
  and with ``--compartments`` (a morphology per cell) on 10 of them.
- 9M faces with compartments: ``label_faces`` on the 9M fixture (tests/support/large.py) with
  its morphology made once beforehand (the labelling alone: one KD-tree query over the vertices),
  and the whole ``convert n9m.ply n9m.glb --units-in nm --compartments`` (morphology included)
  in its own process for time and peak memory.

    .venv/bin/python -m pytest benchmarks/test_bench_scene.py -q -s
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mesh_export import api
from mesh_export.process.steps import StepOptions

SAMPLE_ID = "864691135010718168"
N_CELLS = 100
TARGET_FACES = 9_000_000


@pytest.fixture(scope="module")
def cells_layer(tmp_path_factory):
    """100 cells in the verified mesh cache, as a fetch from a static layer would leave them
    (the sample's lod-2 arrays and fetch record, moved onto a 10 x 10 grid), keyed for a source
    that is never asked: every run below is --offline."""
    from mesh_export.retrieve.cache import MeshCache, cache_key
    from mesh_export.retrieve.cached import MERGE_RULE, fetch_cached, request_identity
    from support.neurons import make_root_ids

    tmp = tmp_path_factory.mktemp("bench-scene")
    vertices, faces, meta, _ = fetch_cached(SAMPLE_ID, source="sample", lod=2, cache_dir=tmp / "sample-cache")
    vertices = np.asarray(vertices, dtype=np.float32)
    centred = vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    source = "precomputed://https://cells.invalid/static"
    ids = make_root_ids(N_CELLS, 24)
    cache = MeshCache(tmp / "cache")
    identity = request_identity(source, None, False, None)
    for k, root_id in enumerate(ids):
        offset = np.array([500e3 * (k % 10), 500e3 * (k // 10), 0.0], dtype=np.float32) + np.float32(1e6)
        record = {**meta, "source": {**meta["source"], "url": source}}
        cache.put(cache_key(**identity, root_id=root_id, lod=2, version=None, merge=MERGE_RULE, allow_missing=False),
                  centred + offset, np.asarray(faces), record)
    return {"ids": ids, "source": source, "cache": tmp / "cache", "out": tmp, "faces": N_CELLS * len(faces)}


@pytest.mark.benchmark(group="scene-100-cells")
def test_scene_of_100_cells_from_the_cache(benchmark, cells_layer):
    c = cells_layer

    def run():
        return api.export_scene(c["ids"], scene=api.SceneOptions("cells.glb"), out_dir=c["out"], source=c["source"],
                                cache_dir=c["cache"], offline=True, overwrite=True, workers=2, lod=2)

    result = benchmark.pedantic(run, rounds=3, iterations=1)
    assert result.exit_code == 0 and len(result.cells) == N_CELLS
    print(f"\n100 cells, {c['faces']:,} faces -> {result.output.stat().st_size / 2**20:.1f} MiB GLB")


@pytest.mark.benchmark(group="scene-100-cells")
def test_scene_of_10_cells_with_compartments(benchmark, cells_layer):
    c = cells_layer

    def run():
        return api.export_scene(c["ids"][:10], scene=api.SceneOptions("ten.glb"), out_dir=c["out"],
                                source=c["source"], cache_dir=c["cache"], offline=True, overwrite=True, workers=2,
                                lod=2, steps=StepOptions(compartments=True))

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result.exit_code == 0 and len(result.cells) == 10


def test_scene_of_100_cells_whole_process(cells_layer):
    """Whole process (imports included), time and peak memory: the CLI as a user runs it."""
    c = cells_layer
    ids = c["out"] / "ids.txt"
    ids.write_text("\n".join(map(str, c["ids"])) + "\n")
    command = ["/usr/bin/time", "-f", "%e s %M KB", sys.executable, "-m", "mesh_export", "--scene", "cli.glb",
               "--ids-file", str(ids), "--source", c["source"], "--cache-dir", str(c["cache"]), "--offline", "--lod", "2",
               "--out", str(c["out"]), "--overwrite", "--workers", "2", "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    print(f"\nwhole process, 100-cell scene from the cache: {done.stderr.strip().splitlines()[-1]}")


@pytest.fixture(scope="module")
def big_cell(tmp_path_factory):
    from support.large import subdivided_neuron

    vertices, faces = subdivided_neuron(TARGET_FACES)
    path = tmp_path_factory.mktemp("scene-large") / "n9m.ply"
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    mesh = api.load(path, units="nm")
    from mesh_export.process.morphology import skeleton_of

    skeleton = skeleton_of(mesh, StepOptions(skeletonize=True))
    return {"path": path, "mesh": mesh, "skeleton": skeleton}


@pytest.mark.benchmark(group="scene-9m-labels")
def test_label_faces_9m(benchmark, big_cell):
    from mesh_export.process.surface_labels import label_faces

    mesh = big_cell["mesh"]
    result = benchmark.pedantic(lambda: label_faces(mesh, big_cell["skeleton"]), rounds=2, iterations=1)
    labels = result.metadata["face_attributes"]["compartment"]
    print(f"\n{len(labels):,} faces labelled by {len(big_cell['skeleton']):,} nodes: "
          f"{np.bincount(labels, minlength=5).tolist()}")


def test_convert_9m_with_compartments_whole_process(big_cell):
    out = big_cell["path"].with_suffix(".glb")
    command = ["/usr/bin/time", "-f", "%e s %M KB", sys.executable, "-m", "mesh_export", "convert",
               str(big_cell["path"]), str(out), "--units-in", "nm", "--compartments", "--overwrite", "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    print(f"\nwhole process, convert 9M PLY -> GLB with compartments: {done.stderr.strip().splitlines()[-1]}, "
          f"{out.stat().st_size / 2**20:.0f} MiB")
