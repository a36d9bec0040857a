"""Real scale, static meshes: lod 0 of a MICrONS-size cell from a sharded multi-LOD Draco layer
(9.06M faces at lod 0 in 37 fragments, 16-bit quantization, 8 x 8 x 40 nm), served on 127.0.0.1
with no added latency and with 50 ms per request, side by side with what a notebook user runs:
``CloudVolume(url).mesh.get(id, lod=0)`` then ``trimesh.Trimesh(v, f).export("x.stl")``.

The layer is built once per machine (``tests/support/large.py``, with ``multires=True``) and
kept under the user cache directory. The plain side takes 5-15 s a round, so it runs few rounds.
Whole-process figures (start-up and imports included) are in RESULTS.md.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.server import FixtureServer  # noqa: E402

from support.large import build_large_layers  # noqa: E402
from mesh_export.jobs.export import export  # noqa: E402

_counter = itertools.count()
LATENCIES = {"0ms": 0.0, "50ms": 0.05}


@pytest.fixture(scope="module", params=list(LATENCIES))
def large(request):
    layers = build_large_layers(target_faces=9_000_000, multires=True)
    with FixtureServer(layers.root, latency=LATENCIES[request.param]) as server:
        yield request.param, layers.root_id, f"precomputed://{server.url}/{layers.multires_dir.name}"


def _fresh(directory: Path) -> Path:
    out = directory / f"run{next(_counter)}"  # new files every round, on both sides
    out.mkdir()
    return out


def _plain_cloudvolume(url: str, root_id: int, directory: Path, process: bool) -> None:
    import trimesh
    from cloudvolume import CloudVolume

    mesh = CloudVolume(url, use_https=True, progress=False, cache=False).mesh.get(root_id, lod=0)[root_id]
    trimesh.Trimesh(mesh.vertices, mesh.faces, process=process).export(_fresh(directory) / f"{root_id}.stl")


def test_static_9m_lod0_mesh_export(benchmark, large, tmp_path):
    latency, root_id, url = large
    benchmark.group = f"static-9M-faces-lod0/{latency}"
    benchmark.pedantic(lambda: export(root_id, source=url, lod=0, use_cache=False, out_dir=_fresh(tmp_path),
                                      format="stl", sidecar=False), rounds=3, warmup_rounds=1)


def test_static_9m_lod0_plain_cloudvolume_no_process(benchmark, large, tmp_path):
    """The kinder yardstick: ``process=False`` spares trimesh's own vertex merge."""
    latency, root_id, url = large
    benchmark.group = f"static-9M-faces-lod0/{latency}"
    benchmark.pedantic(_plain_cloudvolume, args=(url, root_id, tmp_path, False), rounds=2, warmup_rounds=0)


def test_static_9m_lod0_plain_cloudvolume(benchmark, large, tmp_path):
    """As a user writes it: ``trimesh.Trimesh(v, f)`` with its defaults."""
    latency, root_id, url = large
    benchmark.group = f"static-9M-faces-lod0/{latency}"
    benchmark.pedantic(_plain_cloudvolume, args=(url, root_id, tmp_path, True), rounds=1, warmup_rounds=0)


def test_static_9m_lod0_fetch_mesh_export(benchmark, large):
    """The fetch alone: download, decode, transform, one exact merge (float32/int32)."""
    from mesh_export.retrieve.fetch import fetch_mesh
    from mesh_export.retrieve.sources import resolve

    latency, root_id, url = large
    benchmark.group = f"static-9M-faces-lod0-fetch/{latency}"
    benchmark.pedantic(lambda: fetch_mesh(resolve(source=url), root_id, lod=0), rounds=3, warmup_rounds=1)


def test_static_9m_lod0_fetch_plain_cloudvolume(benchmark, large):
    from cloudvolume import CloudVolume

    latency, root_id, url = large
    benchmark.group = f"static-9M-faces-lod0-fetch/{latency}"
    benchmark.pedantic(lambda: CloudVolume(url, use_https=True, progress=False, cache=False).mesh.get(root_id, lod=0),
                       rounds=2, warmup_rounds=0)
