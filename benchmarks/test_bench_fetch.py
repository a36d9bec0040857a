"""Fetch and cache, side by side with what a notebook user does today:
``CloudVolume(url).mesh.get(id)`` then ``trimesh.Trimesh(...).export(path)``.

Data is real precomputed layers (sharded multi-LOD Draco) served on 127.0.0.1 by the
test fixture server, so both sides pay the same HTTP, shard and Draco decoding costs.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.datasets import build_fixture_data  # noqa: E402

import mesh_export  # noqa: E402
from mesh_export.jobs.export import export  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = build_fixture_data(tmp_path_factory.mktemp("bench-layers"), n_cells=3)
    with data.serve() as server:
        yield data, server


@pytest.fixture(scope="module")
def big_layer(tmp_path_factory, icosphere8):
    """A legacy precomputed layer holding one 1.3M-face mesh in two fragments (cutting
    it on the default 64-voxel chunks would multiply its faces), on local disk."""
    from support.precomputed import LayerGeometry, write_legacy_mesh_layer

    root = tmp_path_factory.mktemp("big-layer")
    root_id = 864691135000000042
    mesh = trimesh.Trimesh(icosphere8.vertices + 1.0e5, icosphere8.faces, process=False)
    geometry = LayerGeometry(resolution=(8, 8, 40), size=(32768, 32768, 8192), chunk_size=(16384, 32768, 8192))
    write_legacy_mesh_layer(root / "layer", {root_id: mesh}, geometry=geometry, compress=False)
    return f"precomputed://file://{root / 'layer'}", root_id


def _plain_cloudvolume(url: str, root_ids, directory: Path, cache: Path | bool = False) -> None:
    """The notebook way: open the layer once, get each mesh, export it with trimesh. Warm runs
    pass ``cache``: CloudVolume's own disk cache is the closest thing a notebook user has."""
    from cloudvolume import CloudVolume

    volume = CloudVolume(url, progress=False, cache=str(cache) if cache else False)
    for root_id in root_ids:
        mesh = volume.mesh.get(root_id, lod=0)[root_id]
        trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(directory / f"{root_id}.stl")


def test_fetch_cold_plain_cloudvolume(benchmark, served, tmp_path):
    data, server = served
    url = data.precomputed_url(server, "multires")
    benchmark.group = "fetch-cold/multires-3-cells"
    benchmark(lambda: _plain_cloudvolume(url, data.root_ids, tmp_path))


def test_fetch_cold_mesh_export(benchmark, served, tmp_path):
    data, server = served
    url = data.precomputed_url(server, "multires")
    benchmark.group = "fetch-cold/multires-3-cells"

    def run():
        cache = tmp_path / f"cache{next(_counter)}"  # empty cache: every mesh is fetched
        for i in data.root_ids:
            export(i, source=url, out_dir=tmp_path, cache_dir=cache, overwrite=True)

    benchmark(run)


def _warm(served, tmp_path):
    data, server = served
    url = data.precomputed_url(server, "multires")
    cache = tmp_path / "cache"
    for i in data.root_ids:
        export(i, source=url, out_dir=tmp_path, cache_dir=cache, overwrite=True)
    server.reset_requests()
    return data, server, url, cache


def _new_directory(tmp_path):
    """Setup for one round writing into an empty directory (not timed)."""
    def make():
        directory = tmp_path / f"round{next(_counter)}"
        directory.mkdir()
        return (directory,), {}

    return make


# Warm runs, two ways. "over existing files": the same command run again, replacing its own
# outputs (both sides then pay ext4's flush of a file that replaces another, which it makes
# so that a crash cannot leave an empty file in place of a good one). "new files": the same
# meshes written into an empty directory (another format, another folder).

def test_fetch_warm_mesh_export(benchmark, served, tmp_path):
    data, server, url, cache = _warm(served, tmp_path)
    benchmark.group = "fetch-warm/multires-3-cells/over-existing-files"
    benchmark(lambda: [export(i, source=url, out_dir=tmp_path, cache_dir=cache, overwrite=True)
                       for i in data.root_ids])
    assert server.count() == 0, "warm runs must not touch the server"


def test_fetch_warm_mesh_export_no_sidecar(benchmark, served, tmp_path):
    """Without the provenance sidecar (and so without hashing the output), which the plain
    way does not write either."""
    data, server, url, cache = _warm(served, tmp_path)
    benchmark.group = "fetch-warm/multires-3-cells/over-existing-files"
    benchmark(lambda: [export(i, source=url, out_dir=tmp_path, cache_dir=cache, overwrite=True, sidecar=False)
                       for i in data.root_ids])
    assert server.count() == 0


def test_fetch_warm_mesh_export_new_files(benchmark, served, tmp_path):
    data, server, url, cache = _warm(served, tmp_path)
    benchmark.group = "fetch-warm/multires-3-cells/new-files"
    benchmark.pedantic(lambda out: [export(i, source=url, out_dir=out, cache_dir=cache) for i in data.root_ids],
                       setup=_new_directory(tmp_path), rounds=100, warmup_rounds=3)
    assert server.count() == 0


def test_fetch_warm_mesh_export_new_files_no_sidecar(benchmark, served, tmp_path):
    data, server, url, cache = _warm(served, tmp_path)
    benchmark.group = "fetch-warm/multires-3-cells/new-files"
    benchmark.pedantic(lambda out: [export(i, source=url, out_dir=out, cache_dir=cache, sidecar=False)
                                    for i in data.root_ids],
                       setup=_new_directory(tmp_path), rounds=100, warmup_rounds=3)
    assert server.count() == 0


def test_fetch_warm_plain_cloudvolume(benchmark, served, tmp_path):
    data, server = served
    url = data.precomputed_url(server, "multires")
    benchmark.group = "fetch-warm/multires-3-cells/over-existing-files"
    benchmark(lambda: _plain_cloudvolume(url, data.root_ids, tmp_path, cache=tmp_path / "cv-cache"))


def test_fetch_warm_plain_cloudvolume_new_files(benchmark, served, tmp_path):
    data, server = served
    url = data.precomputed_url(server, "multires")
    _plain_cloudvolume(url, data.root_ids, tmp_path, cache=tmp_path / "cv-cache")
    benchmark.group = "fetch-warm/multires-3-cells/new-files"
    benchmark.pedantic(lambda out: _plain_cloudvolume(url, data.root_ids, out, cache=tmp_path / "cv-cache"),
                       setup=_new_directory(tmp_path), rounds=30, warmup_rounds=1)


def test_cache_hit_to_stl_1m_faces(benchmark, big_layer, tmp_path):
    url, root_id = big_layer
    cache = tmp_path / "cache"
    export(root_id, source=url, out_dir=tmp_path, cache_dir=cache, overwrite=True, sidecar=False)
    benchmark.group = "cache-hit-vs-writer/1.3M-faces"
    result = benchmark(lambda: export(root_id, source=url, out_dir=tmp_path, cache_dir=cache,
                                      overwrite=True, sidecar=False))
    assert result.cache == "hit"


def test_writer_alone_1m_faces(benchmark, big_layer, tmp_path):
    """The floor for the cache-hit case: the same triangles, already in memory, written."""
    url, root_id = big_layer
    cache = tmp_path / "cache"
    export(root_id, source=url, out_dir=tmp_path, cache_dir=cache, overwrite=True, sidecar=False)
    [entry] = cache.glob("??/*.npz")
    with np.load(entry) as data:
        mesh = trimesh.Trimesh(data["vertices"], data["faces"], process=False)
    mesh.units = "nm"
    benchmark.group = "cache-hit-vs-writer/1.3M-faces"
    benchmark(lambda: mesh_export.write(mesh, tmp_path / "alone.stl", overwrite=True))
