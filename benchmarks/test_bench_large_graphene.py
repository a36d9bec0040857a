"""Real scale, dynamic meshes: a MICrONS-size cell from a graphene layer built like minnie65's
(256 x 256 x 512-voxel level-2 chunks at 8 x 8 x 40 nm, Draco on a 16 nm grid, one fragment in
four dynamic, the rest range reads into per-chunk initial shards), served on 127.0.0.1 with no
added latency and with 50 ms per request, side by side with what a notebook user runs:
``CloudVolume(url).mesh.get(id)`` then ``trimesh.Trimesh(...).export(path)``.

- ``graphene-9M``: one hemibrain neuron subdivided to 9.0M faces, 612 fragments.
- ``graphene-300``: two other neurons at 0.6 scale, 1M faces and ~300 fragments each, at 20, 50
  and 150 ms per request (a distant user's round trip): what the number of round trips costs.

The layers are built once per machine (``tests/support/large.py``; about 7 minutes for the
9M-face one) and kept under the user cache directory. CloudVolume takes over a minute per 9M-face
mesh, so those cases run one round.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.datasets import TOKEN  # noqa: E402
from support.server import FixtureServer  # noqa: E402

from support.large import build_large_layers  # noqa: E402
from mesh_export.jobs.export import export  # noqa: E402

_counter = itertools.count()
LATENCIES = {"0ms": 0.0, "50ms": 0.05}


def _serve(layers, latency):
    server = FixtureServer(layers.root, token=TOKEN, latency=latency)
    server.add_graphene(layers.graphene_table, layers.graphene_dir)
    return server


@pytest.fixture(scope="module", params=list(LATENCIES))
def large(request):
    layers = build_large_layers(target_faces=9_000_000, multires=True)
    with _serve(layers, LATENCIES[request.param]) as server:
        yield request.param, layers, server.graphene_url(layers.graphene_table)


LATENCIES_300 = {"20ms": 0.02, "50ms": 0.05, "150ms": 0.15}


@pytest.fixture(scope="module", params=list(LATENCIES_300))
def three_hundred(request):
    layers = build_large_layers(target_faces=1_000_000, neuron_index=(1, 2), scale=0.6)
    with _serve(layers, LATENCIES_300[request.param]) as server:
        yield request.param, layers, server.graphene_url(layers.graphene_table)


def _plain_cloudvolume(url, root_ids, directory: Path, write: bool = True) -> None:
    import trimesh
    from cloudvolume import CloudVolume

    volume = CloudVolume(url, secrets=TOKEN, use_https=True, progress=False, cache=False)
    for root_id in root_ids:
        mesh = volume.mesh.get(root_id)
        mesh = mesh[root_id] if isinstance(mesh, dict) else mesh
        if write:
            trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(directory / f"{root_id}.stl")


def _mesh_export(url, root_ids, directory: Path, format: str = "stl") -> None:
    out = directory / f"run{next(_counter)}"  # new files every round, as the plain side writes
    out.mkdir()
    for root_id in root_ids:
        export(root_id, source=url, token=TOKEN, use_cache=False, out_dir=out, format=format, sidecar=False)


def test_graphene_9m_mesh_export(benchmark, large, tmp_path):
    latency, layers, url = large
    benchmark.group = f"graphene-9M-faces/{latency}"
    benchmark.pedantic(_mesh_export, args=(url, layers.root_ids, tmp_path), rounds=3, warmup_rounds=1)


def test_graphene_9m_plain_cloudvolume(benchmark, large, tmp_path):
    latency, layers, url = large
    benchmark.group = f"graphene-9M-faces/{latency}"
    benchmark.pedantic(_plain_cloudvolume, args=(url, layers.root_ids, tmp_path), rounds=1, warmup_rounds=0)


def test_graphene_300_fragments_fetch_mesh_export(benchmark, three_hundred):
    from mesh_export.retrieve.fetch import fetch_mesh
    from mesh_export.retrieve.sources import Source

    latency, layers, url = three_hundred
    benchmark.group = f"graphene-300-fragments/{latency}/fetch"
    benchmark.pedantic(lambda: [fetch_mesh(Source("graphene", url), r, token=TOKEN) for r in layers.root_ids],
                       rounds=3, warmup_rounds=1)


def test_graphene_300_fragments_fetch_plain_cloudvolume(benchmark, three_hundred, tmp_path):
    latency, layers, url = three_hundred
    benchmark.group = f"graphene-300-fragments/{latency}/fetch"
    benchmark.pedantic(_plain_cloudvolume, args=(url, layers.root_ids, tmp_path, False), rounds=2,
                       warmup_rounds=0)
