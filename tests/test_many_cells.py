"""Many exported cells in one NEURON session: each hoc template is named after its cell, so
cells from different meshes and SWC files load, instantiate and run together (this test shares
the suite's NEURON process, where templates cannot be unloaded: its files have names no other
test uses)."""

from __future__ import annotations

import json

import numpy as np

import mesh_export
from conftest import run_cli
from consumers import hoc_template_of, load_hoc_in_neuron, neuron_h
from support import swc_quirks


def drive(h, cells) -> list[np.ndarray]:
    """hh somata, passive neurites, a current step into each soma; ONE run for all cells."""
    stims, traces = [], []
    for cell, sections in cells:
        soma = cell.soma[0]
        for sec in sections:
            sec.Ra, sec.cm = 100, 1
            if sec == soma:
                sec.insert("hh")
            else:
                sec.insert("pas")
                for seg in sec:
                    seg.pas.g, seg.pas.e = 5e-5, -65
        stim = h.IClamp(soma(0.5))
        stim.delay, stim.dur, stim.amp = 5, 2, 3.0
        stims.append(stim)
        traces.append(h.Vector().record(soma(0.5)._ref_v))
    h.finitialize(-65)
    h.continuerun(30)
    return [np.array(v) for v in traces]


def test_three_exported_cells_spike_together_in_one_session(request, tmp_path):
    from mesh_export.process.compartments import split_axon, type_apical
    from mesh_export.process.skeleton import skeletonize
    from mesh_export.retrieve.sources import sample_path
    from support.cells import CELLS, cache_dir, cached_cell

    # 1. the bundled sample's mesh, exported by root id: the template is named after the root id.
    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    out = tmp_path / "many"
    result = run_cli(root_id, "--source", "sample", "--format", "hoc", "--lod", "2", "--out", out,
                     "--name", "many_cells_sample.{ext}", env={"MESH_EXPORT_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    sample_hoc = out / "many_cells_sample.hoc"
    assert hoc_template_of(sample_hoc) == f"Cell_{root_id}"

    # 2. a MICrONS-like cell's mesh, skeletonized and typed through the API: named after the file.
    cell = cached_cell(cache_dir(request), **CELLS["spiny"])
    skeleton = type_apical(split_axon(skeletonize(cell.mesh), cell.pre, cell.post, source="the cell's synapses"))
    mesh_hoc = mesh_export.write(skeleton, tmp_path / "many-cells mesh.hoc")
    assert hoc_template_of(mesh_hoc) == "Cell_many_cells_mesh"

    # 3. a published-style SWC (NeuroMorpho's 3-point soma), converted by the CLI.
    swc = swc_quirks.three_point_soma(tmp_path)
    swc_hoc = tmp_path / "many_cells_swc.hoc"
    result = run_cli("convert", swc, swc_hoc)
    assert result.returncode == 0, result.stderr
    assert hoc_template_of(swc_hoc) == "Cell_many_cells_swc"

    h = neuron_h()
    loaded = [load_hoc_in_neuron(path) for path in (sample_hoc, mesh_hoc, swc_hoc)]
    # A second instance of a template already loaded runs beside the first.
    loaded.append(load_hoc_in_neuron(sample_hoc))
    names = [{sec.name().split(".")[0] for sec in sections} for _, sections in loaded]
    assert all(len(n) == 1 for n in names) and len(set.union(*names)) == 4, names  # four cells, apart
    for _, sections in loaded:
        assert len(sections) > 5
    traces = drive(h, loaded)
    for (cell_obj, _), v in zip(loaded, traces):
        assert np.isfinite(v).all()
        assert v.max() > 0, f"{cell_obj}: no spike, peak {v.max():.1f} mV"
        assert v[-1] < -40, f"{cell_obj}: the membrane does not repolarise"


def test_export_template_option(tmp_path):
    from mesh_export import errors
    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache")}
    result = run_cli(root_id, "--source", "sample", "--format", "hoc", "--lod", "3", "--out", tmp_path,
                     "--template", "ManyCellsNamedSample", env=env)
    assert result.returncode == 0, result.stderr
    hoc = tmp_path / f"{root_id}_lod3.hoc"
    assert hoc_template_of(hoc) == "ManyCellsNamedSample"
    cell, sections = load_hoc_in_neuron(hoc)
    assert len(sections) > 5 and cell.hname().startswith("ManyCellsNamedSample")
    sidecar = json.loads((tmp_path / f"{root_id}_lod3.hoc.json").read_text())
    assert sidecar["request"]["options"]["template"] == "ManyCellsNamedSample"
    # Not a hoc format, or a batch (whose cells would share one name): refused before any work.
    result = run_cli(root_id, "--source", "sample", "--format", "swc", "--out", tmp_path, "--template", "X", env=env)
    assert result.returncode == errors.InvalidArgumentError.exit_code and "template" in result.stderr
    result = run_cli(root_id, root_id, "--source", "sample", "--format", "hoc", "--out", tmp_path / "batch",
                     "--template", "X", env=env)
    assert result.returncode != 0 and "--template" in result.stderr
    assert not (tmp_path / "batch").exists() or not list((tmp_path / "batch").glob("*.hoc"))
