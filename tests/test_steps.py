"""Processing steps and print-ready output, through the API and the CLI, on real neurons."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

import mesh_export
from conftest import grid_surface, run_cli
from mesh_export import errors
from mesh_export.process import steps
from mesh_export.process.check import CheckFailedError, check_mesh


def surface_distances(a: trimesh.Trimesh, b: trimesh.Trimesh, samples: int = 20000):
    """Distances from points sampled on ``a`` to the nearest point sampled on ``b``."""
    rng_a, _ = trimesh.sample.sample_surface(a, samples, seed=1)
    rng_b, _ = trimesh.sample.sample_surface(b, samples * 4, seed=2)
    return cKDTree(rng_b).query(rng_a)[0]


@pytest.fixture(scope="module")
def printed(neuron_meshes):
    before = {key: np.array(mesh.vertices) for key, mesh in neuron_meshes.items()}
    out = {key: steps.apply_steps(mesh, steps.StepOptions(print_size="100mm"))
           for key, mesh in neuron_meshes.items()}
    for key, mesh in neuron_meshes.items():  # a step returns a new mesh: the input is left as it was
        np.testing.assert_array_equal(mesh.vertices, before[key], err_msg=key)
    return out


@pytest.mark.slow
def test_print_gives_one_watertight_body_of_the_right_size(printed, neuron_meshes):
    for key, out in printed.items():
        assert out.units == "mm"
        assert out.is_watertight and out.is_volume, key
        assert out.body_count == 1, key
        assert np.ptp(out.vertices, axis=0).max() == pytest.approx(100.0, rel=0.01)
        assert out.vertices[:, 2].min() == pytest.approx(0.0, abs=1e-9)


def test_print_still_follows_the_neuron(printed, neuron_meshes):
    """Hausdorff-style bounds, in mm at print size: the print lies within ~1 mm of the neuron
    (thickening adds up to half the 0.8 mm minimum feature), and 95% of the neuron's surface is
    within 1.5 mm of the print (small debris far from the cell is dropped)."""
    for key, out in printed.items():
        transform = out.metadata["steps"][-1]["transform"]
        source = neuron_meshes[key]
        rotation = np.asarray(transform["rotation"])
        mapped = trimesh.Trimesh((np.asarray(source.vertices) @ rotation.T) * transform["scale"] - transform["offset"],
                                 source.faces, process=False)
        print_to_neuron = surface_distances(out, mapped)
        neuron_to_print = surface_distances(mapped, out)
        assert print_to_neuron.max() < 1.5, (key, print_to_neuron.max())
        assert np.percentile(neuron_to_print, 95) < 1.5, (key, np.percentile(neuron_to_print, 95))


def test_print_thickens_thin_neurites(printed):
    report = check_mesh(next(iter(printed.values())), size="100mm", min_feature="0.8mm")
    assert report["printable"], report["failures"]
    assert report["thinnest_feature"] >= 0.8 - report["thinnest_feature_resolution"]


def test_raw_neuron_fails_the_print_check(neuron_mesh, tmp_path):
    path = tmp_path / "raw.stl"
    mesh_export.write(neuron_mesh, path)
    result = run_cli("check", path, "--print", "100mm")
    assert result.returncode == CheckFailedError.exit_code
    assert "not watertight" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.slow
def test_print_through_cli_with_check_and_json(neuron_mesh, tmp_path):
    source = tmp_path / "neuron.ply"
    mesh_export.write(neuron_mesh, source)
    out = tmp_path / "print.stl"
    result = run_cli("convert", source, out, "--print", "120mm", "--check", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["check"]["printable"] and payload["units"] == "mm"
    assert [s["step"] for s in payload["steps"]] == ["print"]
    printed_mesh = trimesh.load(out)
    assert printed_mesh.is_watertight and np.ptp(printed_mesh.vertices, axis=0).max() == pytest.approx(120, rel=0.01)
    assert b"units=mm" in out.read_bytes()[:80]
    report = json.loads(run_cli("check", out, "--print", "120mm", "--json").stdout)
    assert report["printable"] and report["bodies"] == 1


@pytest.mark.slow
def test_watertight_step_with_pitch(neuron_mesh):
    um = steps.convert_units(neuron_mesh, "um")
    out = steps.apply_steps(um, steps.StepOptions(watertight=True, pitch=0.5, max_memory="2GB"))
    assert out.is_watertight and out.is_volume and out.body_count == 1
    record = out.metadata["steps"][-1]
    assert record["step"] == "watertight" and record["pitch"] == 0.5


def test_watertight_memory_budget(neuron_mesh):
    with pytest.raises(errors.InvalidArgumentError, match="--max-memory"):
        steps.apply_steps(neuron_mesh, steps.StepOptions(watertight=True, pitch=1.0, max_memory="100MB"))
    # Without a pitch, a coarser one is chosen to fit the budget.
    out = steps.apply_steps(neuron_mesh, steps.StepOptions(watertight=True, max_memory="20MB"))
    assert out.is_watertight
    assert out.metadata["steps"][-1]["grid_voxels"] * 8 <= 20e6


def test_simplify_hits_target_on_million_faces(million_face_mesh):
    out = steps.simplify(million_face_mesh, ratio=0.1)
    target = 0.1 * len(million_face_mesh.faces)
    assert abs(len(out.faces) - target) <= 0.05 * target
    np.testing.assert_allclose(out.bounds, million_face_mesh.bounds,
                               atol=0.01 * np.ptp(million_face_mesh.bounds, axis=0).max())


def test_simplify_real_neuron_to_face_count(neuron_mesh):
    out = steps.simplify(neuron_mesh, faces=2000)
    assert abs(len(out.faces) - 2000) <= 100
    np.testing.assert_allclose(out.bounds, neuron_mesh.bounds, atol=0.01 * np.ptp(neuron_mesh.bounds, axis=0).max())


def test_components_are_trimesh_face_adjacency_pieces(neuron_meshes, sphere):
    """keep_components keeps exactly the faces trimesh's face_adjacency pieces say (edges of
    three faces join nothing there, nor here)."""
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    fin = trimesh.Trimesh(np.vstack([v, v + 1.0e4, [[0.0, 0.0, 1.0e5]]]),
                          np.vstack([f, f + len(v), [[f[0, 0], f[0, 1], 2 * len(v)]]]), process=False)
    fin.units = "nm"
    for mesh in [*list(neuron_meshes.values())[:3], fin]:
        pieces = sorted(trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(mesh.faces)),
                                                           min_len=1), key=len, reverse=True)
        for kept, options in ((pieces[:1], {"largest": True}), ([p for p in pieces if len(p) >= 30], {"min_faces": 30})):
            faces = np.asarray(mesh.faces)[np.sort(np.concatenate(kept))]
            out = steps.keep_components(mesh, **options)
            np.testing.assert_array_equal(out.vertices[out.faces], np.asarray(mesh.vertices)[faces])
            assert out.metadata["steps"][-1]["pieces"] == len(pieces)
            assert out.metadata["steps"][-1]["kept"] == len(kept)


def test_components_repair_smooth_center(neuron_mesh):
    largest = steps.keep_components(neuron_mesh, largest=True)
    assert largest.body_count == 1 and len(largest.faces) < len(neuron_mesh.faces)
    some = steps.keep_components(neuron_mesh, min_faces=50)
    assert len(largest.faces) <= len(some.faces) <= len(neuron_mesh.faces)
    doubled = trimesh.Trimesh(np.vstack([neuron_mesh.vertices, neuron_mesh.vertices]),
                              np.vstack([neuron_mesh.faces, neuron_mesh.faces + len(neuron_mesh.vertices),
                                         [[0, 0, 1]]]), process=False)
    doubled.units = "nm"
    repaired = steps.repair(doubled)
    record = repaired.metadata["steps"][-1]
    # The copy is merged away entirely (the neuron also has a few duplicates of its own).
    assert record["vertices_merged"] >= len(neuron_mesh.vertices)
    assert record["duplicate_faces_removed"] >= len(neuron_mesh.faces)
    assert record["faces_after"] <= len(neuron_mesh.faces) + record["hole_faces_added"]
    assert record["degenerate_faces_removed"] == 1
    smoothed = steps.smooth(largest, 5)
    assert not np.allclose(smoothed.vertices, largest.vertices)
    # Taubin does not shrink the cell: the bounding box stays within 3% of the original.
    np.testing.assert_allclose(smoothed.bounds, largest.bounds, atol=0.03 * np.ptp(largest.bounds, axis=0).max())
    centered = steps.center(neuron_mesh)
    np.testing.assert_allclose(centered.bounds.mean(axis=0), 0, atol=1e-6)


def test_steps_run_in_fixed_order_and_are_recorded(neuron_mesh, tmp_path):
    source = tmp_path / "n.ply"
    mesh_export.write(neuron_mesh, source)
    result = run_cli("convert", source, tmp_path / "o.obj", "--center", "--simplify", "0.5", "--units", "um",
                     "--repair", "--largest-component", "--smooth", "2", "--json")
    assert result.returncode == 0, result.stderr
    names = [s["step"] for s in json.loads(result.stdout)["steps"]]
    assert names == ["largest_component", "repair", "convert_units", "simplify", "smooth", "center"]
    repair_record = json.loads(result.stdout)["steps"][1]
    assert "vertices_merged" in repair_record and "hole_faces_added" in repair_record


@pytest.mark.parametrize(
    "args, error, text",
    [
        (["--simplify", "0"], errors.InvalidArgumentError, "(0, 1]"),
        (["--simplify", "1.5"], errors.InvalidArgumentError, "(0, 1]"),
        (["--faces", "99999999"], errors.InvalidArgumentError, "--faces"),
        (["--watertight", "--pitch", "-1"], errors.InvalidArgumentError, "--pitch must be positive"),
        (["--watertight", "--pitch", "1", "--max-memory", "10MB"], errors.InvalidArgumentError, "--max-memory"),
        (["--min-component-faces", "100000000"], errors.InvalidMeshError, "nothing left"),
        (["--print", "tiny"], errors.InvalidArgumentError, "length"),
        (["--smooth", "0"], errors.InvalidArgumentError, "--smooth"),
    ],
)
def test_bad_step_arguments_fail_clearly_and_write_nothing(args, error, text, neuron_mesh, tmp_path):
    source = tmp_path / "n.ply"
    mesh_export.write(neuron_mesh, source)
    result = run_cli("convert", source, tmp_path / "o.stl", *args)
    assert result.returncode == error.exit_code, result.stderr
    assert text in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.stl").exists()


def test_steps_on_fetched_mesh_recorded_in_sidecar(tmp_path):
    from mesh_export.jobs.export import export
    from mesh_export.retrieve.sources import sample_path

    root_id = json.loads((sample_path() / "provenance").read_text())["root_ids"][0]
    result = export(root_id, source="sample", lod=2, out_dir=tmp_path, cache_dir=tmp_path / "cache",
                    steps=steps.StepOptions(units="um", simplify=0.5, center=True))
    sidecar = json.loads(result.sidecar.read_text())
    assert [s["step"] for s in sidecar["steps"]] == ["convert_units", "simplify", "center"]
    assert sidecar["units"] == "um"


def test_plan_for_writer_leaves_the_callers_options_alone(sphere, tmp_path):
    options = steps.StepOptions(units="um")
    mesh_export.write(sphere, tmp_path / "s.ply")
    mesh_export.convert(tmp_path / "s.ply", tmp_path / "s.swc", steps=options)
    assert options.units == "um" and options.skeletonize is False
    mesh_export.convert(tmp_path / "s.ply", tmp_path / "s.stl", steps=options)  # still a surface plan
    assert mesh_export.load(tmp_path / "s.stl").units == "um"


def test_check_keeps_unknown_units_unknown(tmp_path):
    import meshio

    box = trimesh.creation.box(extents=(10, 20, 30))
    path = tmp_path / "box.vtu"  # meshio's own file: no units recorded
    meshio.write(path, meshio.Mesh(box.vertices, [("triangle", box.faces)]))
    report = check_mesh(mesh_export.load(path), size="30mm")
    assert report["units"] is None
    assert "units are unknown, not mm" in report["failures"]
