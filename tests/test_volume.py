"""Tetrahedral meshes (--volume) for mesh-based solvers, read back by meshio."""

from __future__ import annotations

import json

import meshio
import numpy as np
import pytest
import trimesh

import mesh_export
import mesh_export.api
from conftest import run_cli
from mesh_export import errors
from mesh_export.process import steps
from mesh_export.process.volume import tet_volumes

pytest.importorskip("tetgen")


def _tetra(path):
    data = meshio.read(path)
    tetra = np.concatenate([c.data for c in data.cells if c.type == "tetra"])
    return data.points, tetra


@pytest.mark.parametrize("extension", ["msh", "vtu", "xdmf", "mesh"])
def test_volume_of_a_closed_surface_round_trips(extension, sphere, tmp_path):
    out = tmp_path / f"ball.{extension}"
    result = run_cli("convert", _write(sphere, tmp_path / "ball.ply"), out, "--volume", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    points, tetra = _tetra(out)
    assert len(tetra) == payload["elements"] > 100
    volumes = tet_volumes(points, tetra)
    assert (volumes > 0).all(), "every element positively oriented"
    # The tetrahedra fill exactly the closed surface they were built from.
    assert volumes.sum() == pytest.approx(sphere.volume, rel=1e-6)
    assert payload["volume"] == pytest.approx(sphere.volume, rel=1e-6)
    assert [s["step"] for s in payload["steps"]] == ["tetrahedralize"]


@pytest.mark.slow
def test_real_neuron_is_remeshed_then_tetrahedralized(neuron_mesh, tmp_path):
    um = steps.convert_units(neuron_mesh, "um")
    # A 1 um voxel rebuild (the default, longest side / 384, is 0.5 um here: 6x the time).
    volume = steps.apply_steps(um, steps.StepOptions(volume=True, max_tet_volume=8.0, pitch=1.0))
    names = [s["step"] for s in volume.metadata["steps"]]
    assert names == ["convert_units", "watertight", "tetrahedralize"]
    assert volume.metadata["steps"][1]["pitch"] == 1.0
    record = volume.metadata["steps"][-1]
    assert record["volume"] == pytest.approx(record["surface_volume"], rel=1e-6)
    tetra = volume.cells[0].data
    assert tet_volumes(volume.points, tetra).max() <= 8.0 + 1e-9
    path = mesh_export.write(volume, tmp_path / "neuron.msh")
    points, read_tetra = _tetra(path)
    assert len(read_tetra) == record["elements"]


def test_volume_needs_a_format_that_holds_tetrahedra(sphere, tmp_path):
    result = run_cli("convert", _write(sphere, tmp_path / "ball.ply"), tmp_path / "ball.stl", "--volume")
    assert result.returncode == errors.InvalidArgumentError.exit_code
    assert "tetrahedral" in result.stderr and not (tmp_path / "ball.stl").exists()


@pytest.mark.slow
def test_export_root_id_as_volume_mesh(tmp_path):
    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache")}
    # --pitch sizes the voxels of the watertight rebuild the open sample surface needs first.
    result = run_cli(root_id, "--source", "sample", "--lod", "2", "--volume", "--units", "um", "--pitch", "4",
                     "--format", "vtu", "--out", tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / f"{root_id}_lod2.vtu.json").read_text())
    assert sidecar["elements"] > 0 and sidecar["units"] == "um"
    rebuilt = [step for step in sidecar["steps"] if step["step"] == "watertight"]
    assert len(rebuilt) == 1 and rebuilt[0]["pitch"] == 4.0
    points, tetra = _tetra(tmp_path / f"{root_id}_lod2.vtu")
    assert tet_volumes(points, tetra).sum() == pytest.approx(sidecar["volume"], rel=1e-6)


def _write(mesh: trimesh.Trimesh, path):
    mesh_export.write(mesh, path)
    return path


def test_our_volume_output_is_read_back_as_a_volume(sphere, tmp_path):
    # `convert cell.ply cell.msh --volume`, then `info cell.msh`: the tetrahedra, not "the mesh is empty";
    # then on to another volume format, and to a surface format as its boundary.
    msh = tmp_path / "ball.msh"
    assert run_cli("convert", _write(sphere, tmp_path / "ball.ply"), msh, "--volume").returncode == 0
    result = run_cli("info", msh, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    points, tetra = _tetra(msh)
    assert info["kind"] == "volume" and info["cells"] == {"tetra": len(tetra)} and info["points"] == len(points)
    assert info["volume"] == pytest.approx(sphere.volume, rel=1e-6)
    np.testing.assert_allclose(info["bbox"]["min"], sphere.bounds[0], rtol=1e-9)
    text = run_cli("info", msh).stdout
    assert f"{len(tetra):,} tetra" in text and "volume" in text
    assert run_cli("convert", msh, tmp_path / "ball.vtu").returncode == 0
    assert mesh_export.api.info(tmp_path / "ball.vtu")["cells"] == info["cells"]
    result = run_cli("convert", msh, tmp_path / "ball.stl")
    assert result.returncode == 0 and "boundary of a volume mesh" in result.stdout
    boundary = mesh_export.api.info(tmp_path / "ball.stl")
    # The tetrahedra's outer faces are the surface they were built from.
    assert boundary["watertight"] and boundary["faces"] == len(sphere.faces)
    assert boundary["volume"] == pytest.approx(sphere.volume, rel=1e-6)
