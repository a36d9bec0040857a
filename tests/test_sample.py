"""The bundled sample: one neuron at true scale, a sharded multi-LOD Draco layer like MICrONS'
static meshes, rebuilt byte for byte by the project's own generator, with no seams at
fragment borders, and a morphology NEURON loads and fires."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from conftest import run_cli
from consumers import load_swc_in_neuron, membrane_area, neuron_h, spike_trace
from build_sample import SAMPLE_ROOT_ID, build_sample
from mesh_export.retrieve.fetch import fetch_mesh
from mesh_export.retrieve.sources import resolve, sample_path

cloudvolume = pytest.importorskip("cloudvolume")


@pytest.fixture(scope="module")
def provenance() -> dict:
    return json.loads((sample_path() / "provenance").read_text())


def layer_files(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bundled_sample_is_one_neuron_at_true_scale(provenance):
    assert provenance["root_ids"] == [str(SAMPLE_ROOT_ID)]
    morphology = provenance["morphology"]
    assert 11.0 <= morphology["soma_diameter_um"] <= 13.0
    assert 150.0 <= morphology["longest_path_um"]["basal"] <= 300.0
    assert 250.0 <= morphology["longest_path_um"]["apical"] <= 400.0
    assert morphology["longest_path_um"]["axon"] > 200.0
    size = sum(len(b) for b in layer_files(sample_path()).values())
    assert size < 5_000_000, size
    info = json.loads((sample_path() / "mesh" / "info").read_text())
    assert info["@type"] == "neuroglancer_multilod_draco" and info["vertex_quantization_bits"] == 16
    assert info["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"


def test_cloudvolume_reads_every_lod(provenance):
    cv = cloudvolume.CloudVolume(f"precomputed://file://{sample_path()}", progress=False)
    faces = [len(cv.mesh.get(SAMPLE_ROOT_ID, lod=lod)[SAMPLE_ROOT_ID].faces) for lod in range(4)]
    assert faces == sorted(faces, reverse=True) and faces[0] > 20 * faces[-1]
    assert len(provenance["faces_per_lod"][str(SAMPLE_ROOT_ID)]) == 4


@pytest.mark.slow
def test_finest_lod_is_one_closed_surface_without_seams():
    """Fragments are cut exactly on the octree planes, so after decoding (16-bit vertices per
    fragment) the border vertices of neighbouring fragments coincide: merged, every edge has
    two faces and the neuron is one body. (A seam would leave border edges with one face.)"""
    fetched = fetch_mesh(resolve(source="sample"), SAMPLE_ROOT_ID, lod=0, timeout=60)
    assert fetched.fragments > 50
    mesh = trimesh.Trimesh(fetched.vertices, fetched.faces, process=False)
    edges = np.sort(mesh.edges, axis=1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    assert (uses == 2).all(), np.bincount(uses)
    assert mesh.is_watertight and mesh.volume > 0
    assert len(trimesh.graph.connected_components(mesh.edges, min_len=1)) == 1
    extents_um = mesh.extents / 1000.0
    assert extents_um.max() > 500 and extents_um.min() > 100  # a cell, not a speck


@pytest.mark.slow
def test_generator_writes_the_same_bytes_twice(tmp_path):
    """A coarse, quick variant built twice in this process."""
    kwargs = {"faces": 20_000, "pitch_um": 0.5, "num_lods": 3}
    first, second = (layer_files(Path(build_sample(tmp_path / run, **kwargs)["path"])) for run in "ab")
    assert first.keys() == second.keys() and first == second


@pytest.mark.slow
def test_bundled_layer_is_what_the_generator_writes(tmp_path):
    """`make sample` reproduces the bundled copy byte for byte (a rebuild, in another process
    and at another time than the one that wrote it)."""
    summary = build_sample(tmp_path / "sample")
    assert summary["root_ids"] == [SAMPLE_ROOT_ID]
    rebuilt, bundled = layer_files(tmp_path / "sample"), layer_files(sample_path())
    assert rebuilt.keys() == bundled.keys()
    differing = [name for name in rebuilt if rebuilt[name] != bundled[name]]
    assert not differing, f"rebuild differs from the bundled sample in {differing}: run `make sample`"


def test_sample_swc_has_hundreds_of_nodes_and_fires_in_neuron(tmp_path):
    out = tmp_path / "new" / "nested"  # --out is created, parents too
    result = run_cli(SAMPLE_ROOT_ID, "--source", "sample", "--lod", "2", "--format", "swc", "--out", out,
                     "--json", env={"MESH_EXPORT_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["nodes"] >= 300
    sidecar = json.loads((out / f"{SAMPLE_ROOT_ID}_lod2.swc.json").read_text())
    assert sidecar["units"] == "um" and sidecar["total_length"] > 2000  # micrometres of neurites
    cell, sections = load_swc_in_neuron(out / f"{SAMPLE_ROOT_ID}_lod2.swc")
    assert len(sections) > 20 and membrane_area(sections) > 5000  # um^2
    soma = cell.soma[0] if hasattr(cell, "soma") else sections[0]
    v, _stim = spike_trace(neuron_h(), sections, soma)
    assert np.isfinite(v).all() and v.max() > 0, f"no spike: peak {v.max():.1f} mV"
    assert v[-1] < -40, "the membrane repolarises after the spike"
