"""Prints a slicer takes as they are: a stable pose, a flat contact, supports said, a lean check.

Sliced by PrusaSlicer with its defaults (no flags): `make test` installs it and makes these
tests fail, not skip, when it is missing. Prints here are small (60 mm) to keep the suite
quick; real-size figures are in benchmarks/.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import trimesh

import mesh_export
from conftest import run_cli, slice_with_prusa
from mesh_export.process import steps
from mesh_export.process.check import check_mesh
from support.cells import CELLS, cache_dir, cached_cell


@pytest.fixture(scope="module")
def cells(request):
    return {name: cached_cell(cache_dir(request), **CELLS[name]) for name in ("coarse", "pyramidal")}


@pytest.fixture(scope="module")
def prints(cells, neuron_meshes):
    """Default --print 60mm of two synthetic cells and a real (navis) neuron."""
    sources = {"coarse": cells["coarse"].mesh, "pyramidal": cells["pyramidal"].mesh,
               "navis": next(iter(neuron_meshes.values()))}
    return {key: (mesh, steps.apply_steps(mesh, steps.StepOptions(print_size="60mm")))
            for key, mesh in sources.items()}


def _first_layer_area(mesh: trimesh.Trimesh, height: float = 0.1) -> float:
    """Area of the section halfway up PrusaSlicer's 0.2 mm first layer, by trimesh and shapely."""
    from functools import reduce

    from shapely.geometry import Polygon

    section = mesh.section(plane_origin=[0, 0, height], plane_normal=[0, 0, 1])
    loops = [Polygon(loop[:, :2]).buffer(0) for loop in section.discrete if len(loop) >= 3]
    # Loops inside loops are holes: the even-odd rule, as a slicer fills a layer.
    return float(reduce(lambda a, b: a.symmetric_difference(b), loops).area) if loops else 0.0


def test_print_stands_on_a_flat_contact_of_the_reported_area(prints):
    for key, (_, out) in prints.items():
        record = out.metadata["steps"][-1]
        assert out.is_watertight and out.is_volume and out.body_count == 1, key
        assert np.ptp(out.vertices, axis=0).max() == pytest.approx(60.0, rel=0.01), key
        assert out.vertices[:, 2].min() == pytest.approx(0.0, abs=1e-9)
        contact = record["contact"]
        assert contact["contact_area_mm2"] >= 4.0 and contact["contact_ok"], (key, contact)
        assert _first_layer_area(out) == pytest.approx(contact["contact_area_mm2"], rel=0.10), key
        assert record["pose"]["kept_orientation"] is False and record["pose"]["stable_poses"] >= 1
        assert record["pose"]["stands"], key
        rotation = np.asarray(record["transform"]["rotation"])
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_print_keeps_the_cells_shape_apart_from_pose_scale_and_contact(prints):
    from scipy.spatial import cKDTree

    for key, (source, out) in prints.items():
        transform = out.metadata["steps"][-1]["transform"]
        mapped = (np.asarray(source.vertices) @ np.asarray(transform["rotation"]).T) * transform["scale"] \
            - transform["offset"]
        samples, _ = trimesh.sample.sample_surface(out, 20000, seed=1)
        on_cell, _ = trimesh.sample.sample_surface(trimesh.Trimesh(mapped, source.faces, process=False),
                                                   80000, seed=2)
        # Thickening adds up to half the 0.8 mm minimum feature; the contact flattens <= 1 mm.
        assert cKDTree(on_cell).query(samples)[0].max() < 1.5, key
        assert np.percentile(cKDTree(samples).query(on_cell)[0], 95) < 1.5, key


@pytest.mark.slow
def test_keep_orientation_and_base(cells):
    mesh = cells["coarse"].mesh
    kept = steps.apply_steps(mesh, steps.StepOptions(print_size="60mm", keep_orientation=True))
    record = kept.metadata["steps"][-1]
    np.testing.assert_array_equal(record["transform"]["rotation"], np.eye(3))
    assert record["pose"] == {"kept_orientation": True, "stands": record["pose"]["stands"]}
    based = steps.apply_steps(mesh, steps.StepOptions(print_size="60mm", base=True))
    contact = based.metadata["steps"][-1]["contact"]
    assert based.is_watertight and based.body_count == 1
    assert contact["base"]["thickness_mm"] == 1.0
    # The plate spans the foot the cell stands on: far more than the bare contact.
    plain = steps.apply_steps(mesh, steps.StepOptions(print_size="60mm")).metadata["steps"][-1]["contact"]
    assert contact["contact_area_mm2"] > 5 * plain["contact_area_mm2"]
    assert _first_layer_area(based) == pytest.approx(contact["contact_area_mm2"], rel=0.10)


@pytest.mark.slow
def test_prusaslicer_slices_default_stl_and_3mf(prints, prusa_slicer, tmp_path):
    for key, (_, out) in prints.items():
        for ext in ("stl", "3mf"):
            path = tmp_path / f"{key}.{ext}"
            mesh_export.write(out, path)
            slice_with_prusa(prusa_slicer, path, tmp_path / f"{key}.{ext}.gcode")


@pytest.mark.slow
def test_3mf_turns_supports_on_when_the_check_says_so(prints, prusa_slicer, tmp_path):
    _, out = prints["pyramidal"]
    path = tmp_path / "cell.3mf"
    mesh_export.write(out, path)
    config = zipfile.ZipFile(path).read("Metadata/Slic3r_PE.config").decode()
    report = check_mesh(mesh_export.load(path), size="60mm")
    assert report["needs_support"] and report["overhang_area"] > 1.0
    assert out.metadata["steps"][-1]["supports"]["needed"] is True
    assert "; support_material = 1" in config
    gcode = tmp_path / "cell.gcode"
    slice_with_prusa(prusa_slicer, path, gcode)
    text = gcode.read_text()
    # The slicer took the setting from the 3MF (it echoes its config at the end) and used it.
    assert "; support_material = 1" in text and ";TYPE:Support material" in text
    # The same model as STL has no settings: PrusaSlicer's default is no supports.
    stl = tmp_path / "cell.stl"
    mesh_export.write(out, stl)
    slice_with_prusa(prusa_slicer, stl, tmp_path / "stl.gcode")
    assert ";TYPE:Support material" not in (tmp_path / "stl.gcode").read_text()


def test_check_reports_contact_and_overhang_lean(prints, tmp_path):
    _, out = prints["pyramidal"]
    path = tmp_path / "cell.stl"
    mesh_export.write(out, path)
    result = run_cli("check", path, "--print", "60mm", "--json", "--max-memory", "64MB")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["printable"] and report["thinnest_feature"] >= 0.8 - report["thinnest_feature_resolution"]
    assert report["contact_area"] == pytest.approx(out.metadata["steps"][-1]["contact"]["contact_area_mm2"], rel=0.01)
    assert report["overhang_area"] > 0
    # A budget too small for even one block of the check: one line, no traceback.
    small = run_cli("check", path, "--print", "60mm", "--max-memory", "1MB")
    assert small.returncode != 0 and "--max-memory" in small.stderr and "Traceback" not in small.stderr


def test_print_sidecar_has_pose_and_contact(tmp_path):
    from mesh_export.jobs.export import export
    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    result = export(root_id, source="sample", lod=2, out_dir=tmp_path, cache_dir=tmp_path / "cache",
                    format="3mf", steps=steps.StepOptions(print_size="60mm"), check=True)
    sidecar = json.loads(result.sidecar.read_text())
    record = sidecar["steps"][-1]
    assert record["step"] == "print" and record["pose"]["stands"]
    assert record["contact"]["contact_area_mm2"] == pytest.approx(sidecar["check"]["contact_area"], rel=0.01)


def test_print_that_cannot_be_closed_within_max_memory_fails_in_one_line(cells, tmp_path):
    import mesh_export

    source = tmp_path / "cell.ply"
    mesh_export.write(cells["coarse"].mesh, source)
    result = run_cli("convert", source, tmp_path / "p.stl", "--print", "100mm", "--max-memory", "8MB")
    assert result.returncode != 0 and "--max-memory" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.stl").exists()


@pytest.mark.slow
def test_a_cell_standing_on_a_neurite_tip_slices(prusa_slicer, tmp_path):
    """A soma on top of a thin neurite pointing down: on its rounded tip (main's print) the
    first layer is empty and PrusaSlicer refuses it; the flattened contact slices, and so does
    the stable pose."""
    ball = trimesh.creation.icosphere(subdivisions=3, radius=10000.0)
    ball.apply_translation((0, 0, 70000))
    rod = trimesh.creation.cylinder(radius=250.0, height=62000.0, sections=12)
    rod.apply_translation((0, 0, 31000))
    joined = trimesh.util.concatenate([ball, rod])
    cell = trimesh.Trimesh(joined.vertices, joined.faces, process=False)
    cell.units = "nm"
    for keep in (True, False):
        out = steps.apply_steps(cell, steps.StepOptions(print_size="60mm", keep_orientation=keep))
        contact = out.metadata["steps"][-1]["contact"]
        assert contact["contact_area_mm2"] > 1.0 and contact["cut_mm"] <= 1.0
        path = tmp_path / f"needle-{keep}.stl"
        mesh_export.write(out, path)
        slice_with_prusa(prusa_slicer, path, tmp_path / f"needle-{keep}.gcode")
