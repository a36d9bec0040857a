"""A cell's morphology as a whole process, at 1M and 9M faces: ``mesh-export <id> --format swc``
from a served graphene layer (fetch, skeletonize, write), and ``convert neuron.ply x.swc`` from
the same mesh as a file, beside the same commands on another checkout (the tree before a
change: ``MESH_EXPORT_BASELINE_SRC=/path/to/checkout/src``) and skeletor's wavefront
(benchmarks/skeletor_swc.py, file to SWC), all in one run.

Each case runs the command under ``/usr/bin/time -f "%e %M"`` and records the wall time and the
peak resident memory (``peak_rss_mib``) in ``extra_info``; the SWC's node count and the skeleton
step's soma radius beside them. Layers come from tests/support/large.py (built once per machine,
kept under the user cache; the 9M-face one is the subdivided navis neuron, 612 fragments).

Run: ``python -m pytest benchmarks/test_bench_skeleton_process.py --benchmark-only -p no:randomly -n 0``
(about ten minutes with skeletor's 9M-face case).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.datasets import TOKEN  # noqa: E402
from support.large import build_large_layers  # noqa: E402
from support.server import FixtureServer  # noqa: E402

SIZES = {"1M": 1_000_000, "9M": 9_000_000}
TREES = ["this tree", "baseline"]


@pytest.fixture(scope="module", params=list(SIZES))
def layer(request):
    layers = build_large_layers(target_faces=SIZES[request.param])
    server = FixtureServer(layers.root, token=TOKEN)
    server.add_graphene(layers.graphene_table, layers.graphene_dir)
    with server:
        yield request.param, layers, server.graphene_url(layers.graphene_table)


def _src(tree: str) -> str:
    if tree == "this tree":
        return str(ROOT / "src")
    baseline = os.environ.get("MESH_EXPORT_BASELINE_SRC")
    if not baseline:
        pytest.skip("set MESH_EXPORT_BASELINE_SRC to another checkout's src to time it beside this one")
    return baseline


def _timed(benchmark, command, env=None) -> None:
    """One round of ``command`` under /usr/bin/time; wall seconds and peak RSS into extra_info."""
    record = {}

    def run():
        done = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *command], env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        last = [line for line in done.stderr.splitlines() if line.startswith("TIME ")][-1].split()
        record["wall_s"], record["peak_rss_mib"] = float(last[1]), round(int(last[2]) / 1024)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(record)


def _swc_figures(benchmark, path: Path) -> None:
    rows = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    benchmark.extra_info["nodes"] = len(rows)
    benchmark.extra_info["soma_radius_um"] = float(rows[0].split()[5])


def _env(src: str) -> dict:
    return {**os.environ, "PYTHONPATH": src, "NEURON_MODULE_OPTIONS": "-nogui"}


@pytest.mark.parametrize("tree", TREES)
def test_export_swc(benchmark, layer, tree, tmp_path):
    size, layers, url = layer
    benchmark.group = f"swc-whole-process/{size}/export-by-id"
    _timed(benchmark, [sys.executable, "-m", "mesh_export", str(layers.root_id), "--source", url, "--token", TOKEN,
                       "--no-cache", "--format", "swc", "-o", str(tmp_path), "--overwrite"], _env(_src(tree)))
    _swc_figures(benchmark, next(tmp_path.glob("*.swc")))


@pytest.mark.parametrize("tree", TREES)
def test_convert_swc(benchmark, layer, tree, tmp_path):
    size, layers, _ = layer
    benchmark.group = f"swc-whole-process/{size}/file"
    out = tmp_path / "neuron.swc"
    _timed(benchmark, [sys.executable, "-m", "mesh_export", "convert", str(layers.ply), str(out), "--units-in", "nm"],
           _env(_src(tree)))
    _swc_figures(benchmark, out)


def test_skeletor_swc(benchmark, layer, tmp_path):
    pytest.importorskip("skeletor")
    size, layers, _ = layer
    benchmark.group = f"swc-whole-process/{size}/file"
    out = tmp_path / "neuron.swc"
    _timed(benchmark, [sys.executable, str(ROOT / "benchmarks" / "skeletor_swc.py"), str(layers.ply), str(out)])
    benchmark.extra_info["nodes"] = sum(1 for line in out.read_text().splitlines() if line and line[0] != "#")
