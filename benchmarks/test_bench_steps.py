"""Processing steps side by side with what a user would otherwise call.

- Simplify the 1.3M-face icosphere to 10%: mesh-export vs trimesh's
  ``simplify_quadric_decimation`` vs pyfqmr.
- Watertight remesh of a real neuron at 0.25 um pitch: time here, peak memory in
  ``test_watertight_peak_memory`` (tracemalloc sees numpy/scipy allocations).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import trimesh

from mesh_export.process import steps


@pytest.mark.benchmark(group="simplify-10%/icosphere8")
def test_simplify_mesh_export(benchmark, icosphere8):
    out = benchmark.pedantic(steps.simplify, args=(icosphere8,), kwargs={"ratio": 0.1}, rounds=3, iterations=1)
    assert abs(len(out.faces) - 0.1 * len(icosphere8.faces)) < 0.05 * 0.1 * len(icosphere8.faces)


@pytest.mark.benchmark(group="simplify-10%/icosphere8")
def test_simplify_trimesh(benchmark, icosphere8):
    def run():
        fresh = trimesh.Trimesh(icosphere8.vertices, icosphere8.faces, process=False)
        return fresh.simplify_quadric_decimation(percent=0.9)

    out = benchmark.pedantic(run, rounds=3, iterations=1)
    assert len(out.faces) < 0.2 * len(icosphere8.faces)


@pytest.mark.benchmark(group="simplify-10%/icosphere8")
def test_simplify_pyfqmr(benchmark, icosphere8):
    pyfqmr = pytest.importorskip("pyfqmr")

    def run():
        simplifier = pyfqmr.Simplify()
        simplifier.setMesh(np.asarray(icosphere8.vertices), np.asarray(icosphere8.faces))
        simplifier.simplify_mesh(target_count=len(icosphere8.faces) // 10, aggressiveness=7, verbose=False)
        return simplifier.getMesh()

    vertices, faces, _ = benchmark.pedantic(run, rounds=3, iterations=1)
    assert len(faces) < 0.2 * len(icosphere8.faces)


@pytest.fixture(scope="module")
def neuron_um(neuron):
    return steps.convert_units(neuron, "um")


@pytest.mark.benchmark(group="watertight/neuron-0.25um")
def test_watertight_neuron_025um(benchmark, neuron_um):
    out = benchmark.pedantic(steps.apply_steps, args=(neuron_um, steps.StepOptions(
        watertight=True, pitch=0.25, max_memory="8GB")), rounds=2, iterations=1)
    assert out.is_watertight


@pytest.mark.benchmark(group="print-100mm/neuron")
def test_print_neuron_100mm(benchmark, neuron):
    out = benchmark.pedantic(steps.apply_steps, args=(neuron, steps.StepOptions(print_size="100mm")),
                             rounds=2, iterations=1)
    assert out.is_watertight and out.body_count == 1


def test_watertight_peak_memory(neuron_um, record_property):
    tracemalloc.start()
    out = steps.apply_steps(neuron_um, steps.StepOptions(watertight=True, pitch=0.25, max_memory="8GB"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    voxels = out.metadata["steps"][-1]["grid_voxels"]
    record_property("peak_bytes", peak)
    print(f"\nwatertight 0.25 um: grid {voxels:,} voxels, peak {peak / 2**20:.0f} MiB "
          f"({peak / voxels:.1f} bytes/voxel), {len(out.faces):,} faces")
    assert peak / voxels <= 8.5, "the memory plan (BYTES_PER_VOXEL) must hold"
