"""The CLI as a user runs it: conversions, format listing, and one-line errors with exit codes."""

from __future__ import annotations

import json
import os
import stat
import textwrap

import numpy as np
import pytest

import mesh_export
from conftest import run_cli
from consumers import assert_same_geometry, with_meshio, with_trimesh
from mesh_export import errors


@pytest.fixture()
def sphere_ply(sphere, tmp_path):
    path = tmp_path / "sphere.ply"
    mesh_export.write(sphere, path)
    return path


def assert_one_line_error(result, exit_code: int, text: str):
    assert result.returncode == exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert text in lines[0]


def test_formats_lists_every_writer_as_table_and_json():
    table = run_cli("formats")
    assert table.returncode == 0
    for name in ("stl", "ply", "obj", "off", "vtk", "vtp", "vtu", "glb", "gltf", "3mf", "gmsh", "xdmf"):
        assert any(line.split()[0] == name for line in table.stdout.splitlines()[1:]), name
    listed = json.loads(run_cli("formats", "--json").stdout)
    by_name = {f["name"]: f for f in listed}
    assert by_name["stl"]["modes"] == ["binary", "ascii"]
    assert by_name["stl"]["accepts"] == ["surface"]
    assert by_name["vtp"]["options"] == {"compress": by_name["vtp"]["options"]["compress"]}
    assert by_name["gmsh"]["backend"] == "meshio"


@pytest.mark.parametrize("extension", ["stl", "obj", "vtu", "msh", "glb"])
def test_convert_picks_format_from_extension(extension, sphere, sphere_ply, tmp_path):
    out = tmp_path / f"out.{extension}"
    result = run_cli("convert", sphere_ply, out)
    assert result.returncode == 0, result.stderr
    reader = with_trimesh if extension in ("stl", "obj", "glb") else with_meshio
    assert_same_geometry(sphere, reader(out), extension)


def test_convert_with_format_flag_ascii_and_json(sphere, sphere_ply, tmp_path):
    out = tmp_path / "out.dat"
    result = run_cli("convert", sphere_ply, out, "--format", "stl", "--ascii", "--json")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"solid ")
    payload = json.loads(result.stdout)
    assert payload["output"] == str(out) and payload["bytes"] == out.stat().st_size


def test_convert_units_and_scale(sphere, sphere_ply, tmp_path):
    out = tmp_path / "um.obj"
    assert run_cli("convert", sphere_ply, out, "--units", "um").returncode == 0
    loaded = mesh_export.load(out)
    assert loaded.units == "um"
    np.testing.assert_allclose(loaded.vertices, sphere.vertices / 1000.0, rtol=1e-6)

    scaled = tmp_path / "scaled.ply"
    assert run_cli("convert", sphere_ply, scaled, "--scale", "2").returncode == 0
    np.testing.assert_allclose(mesh_export.load(scaled).vertices, sphere.vertices * 2, rtol=1e-6)


def test_units_in_declares_unknown_units(tmp_path, sphere):
    import meshio

    raw = tmp_path / "raw.vtu"  # meshio's own file: no units recorded
    meshio.write(raw, meshio.Mesh(sphere.vertices, [("triangle", sphere.faces)]))
    refused = run_cli("convert", raw, tmp_path / "a.stl", "--units", "mm")
    assert_one_line_error(refused, errors.UnitsError.exit_code, "--units-in")
    assert not (tmp_path / "a.stl").exists()
    ok = run_cli("convert", raw, tmp_path / "a.stl", "--units-in", "nm", "--units", "mm")
    assert ok.returncode == 0, ok.stderr
    assert b"units=mm" in (tmp_path / "a.stl").read_bytes()[:80]


def test_convert_reads_formats_only_meshio_knows(sphere, tmp_path):
    import meshio

    source = tmp_path / "in.msh"
    meshio.write(source, meshio.Mesh(sphere.vertices, [("triangle", sphere.faces)]))
    out = tmp_path / "out.ply"
    assert run_cli("convert", source, out).returncode == 0
    assert_same_geometry(sphere, with_trimesh(out), "msh -> ply")


def test_existing_output_needs_overwrite(sphere_ply, tmp_path):
    out = tmp_path / "out.stl"
    out.write_bytes(b"precious")
    result = run_cli("convert", sphere_ply, out)
    assert_one_line_error(result, errors.OutputError.exit_code, "--overwrite")
    assert out.read_bytes() == b"precious"
    assert run_cli("convert", sphere_ply, out, "--overwrite").returncode == 0
    assert out.stat().st_size > 1000


def _no_leftovers(directory, allowed):
    return sorted(p.name for p in directory.iterdir() if p.name not in allowed)


_PLY_FACE_OUT_OF_RANGE = (
    b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
    b"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 9\n"
)


@pytest.mark.parametrize(
    "make_input, error, text",
    [
        (lambda d: d / "missing.ply", errors.InputError, "not found"),
        (lambda d: _write(d / "garbage.ply", b"this is not a mesh"), errors.InputError, "cannot read"),
        (lambda d: _write(d / "garbage.vtu", b"<xml nope"), errors.InputError, "cannot read"),
        (lambda d: _write(d / "thing.xyz123", b"1 2 3"), errors.InputError, "unknown mesh file type"),
        (lambda d: _write(d / "nan.obj", b"v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n"), errors.InvalidMeshError, "NaN"),
        (lambda d: _write(d / "range.ply", _PLY_FACE_OUT_OF_RANGE), errors.InvalidMeshError, "outside"),
        # Every native reader now refuses an index out of range as the mesh's error, naming the line.
        (lambda d: _write(d / "range.off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n"), errors.InvalidMeshError,
         "line 6: a face index outside"),
        (lambda d: _write(d / "empty.obj", b"# nothing\n"), errors.InvalidMeshError, "empty"),
    ],
    ids=["missing", "garbage-ply", "garbage-vtu", "unknown-type", "nan", "face-range", "face-range-at-read", "empty"],
)
def test_bad_input_is_one_line_error_and_writes_nothing(make_input, error, text, tmp_path):
    source = make_input(tmp_path)
    before = set(p.name for p in tmp_path.iterdir())
    result = run_cli("convert", source, tmp_path / "out.stl")
    assert_one_line_error(result, error.exit_code, text)
    assert _no_leftovers(tmp_path, before) == []


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_unknown_format_and_extension(sphere_ply, tmp_path):
    assert_one_line_error(run_cli("convert", sphere_ply, tmp_path / "o.stl", "--format", "nope"),
                          errors.UnknownFormatError.exit_code, "unknown format 'nope'")
    assert_one_line_error(run_cli("convert", sphere_ply, tmp_path / "o.weird"),
                          errors.UnknownFormatError.exit_code, "--format")
    assert_one_line_error(run_cli("convert", sphere_ply, tmp_path / "o.glb", "--ascii"),
                          errors.InvalidArgumentError.exit_code, "no ASCII variant")
    assert list(p.name for p in tmp_path.iterdir()) == ["sphere.ply"]


def test_missing_output_directory_and_read_only_target(sphere_ply, tmp_path):
    assert_one_line_error(run_cli("convert", sphere_ply, tmp_path / "nowhere" / "o.stl"),
                          errors.OutputError.exit_code, "does not exist")
    locked = tmp_path / "locked.stl"
    locked.write_bytes(b"keep me")
    locked.chmod(stat.S_IRUSR | stat.S_IRGRP)
    assert_one_line_error(run_cli("convert", sphere_ply, locked, "--overwrite"),
                          errors.OutputError.exit_code, "read-only")
    assert locked.read_bytes() == b"keep me"
    locked_dir = tmp_path / "locked_dir"
    locked_dir.mkdir()
    locked_dir.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert_one_line_error(run_cli("convert", sphere_ply, locked_dir / "o.stl"),
                              errors.OutputError.exit_code, "not writable")
    finally:
        locked_dir.chmod(stat.S_IRWXU)


def test_bad_scale_and_units_values(sphere_ply, tmp_path):
    assert_one_line_error(run_cli("convert", sphere_ply, tmp_path / "o.stl", "--scale", "-1"),
                          errors.InvalidArgumentError.exit_code, "--scale")
    assert_one_line_error(run_cli("convert", sphere_ply, tmp_path / "o.stl", "--units", "furlong"),
                          errors.UnitsError.exit_code, "unknown units")


def test_verbose_shows_traceback(tmp_path):
    result = run_cli("--verbose", "convert", tmp_path / "missing.ply", tmp_path / "o.stl")
    assert result.returncode == errors.InputError.exit_code
    assert "Traceback" in result.stderr


def test_writer_failure_leaves_no_partial_file(sphere, tmp_path, writer_table):

    def explode(mesh, path, **options):
        with open(path, "wb") as handle:
            handle.write(b"half a file")
        raise RuntimeError("disk on fire")

    writer_table.register(writer_table.Writer("explode", (".boom",), explode))
    target = tmp_path / "x.boom"
    target.write_bytes(b"old")
    with pytest.raises(errors.OutputError, match="disk on fire"):
        mesh_export.write(sphere, target, overwrite=True)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.boom"]


def test_written_file_has_normal_permissions(sphere, tmp_path):
    path = mesh_export.write(sphere, tmp_path / "p.stl")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_plugin_writer_registered_through_entry_point(sphere_ply, sphere, tmp_path):
    """A third-party package adds a format via the ``mesh_export.writers`` entry-point group."""
    site = tmp_path / "site"
    package = site / "xyz_writer"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent('''
        from mesh_export.writers.registry import Writer

        def write_xyz(mesh, path, precision=3):
            with open(path, "w") as handle:
                for x, y, z in mesh.vertices:
                    handle.write(f"{x:.{precision}f} {y:.{precision}f} {z:.{precision}f}\\n")

        def writers():
            return [Writer("xyz", (".xyz",), write_xyz, options={"precision": "decimals"},
                           backend="xyz-writer", description="point list")]
    '''))
    dist = site / "xyz_writer-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xyz-writer\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mesh_export.writers]\nxyz = xyz_writer:writers\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    listed = json.loads(run_cli("formats", "--json", env=env).stdout)
    assert any(f["name"] == "xyz" and f["backend"] == "xyz-writer" for f in listed)
    out = tmp_path / "points.xyz"
    result = run_cli("convert", sphere_ply, out, env=env)
    assert result.returncode == 0, result.stderr
    points = np.loadtxt(out)
    np.testing.assert_allclose(points, sphere.vertices, atol=1e-3)


def test_no_overwrite_holds_even_if_the_file_appears_during_the_write(tmp_path):
    from mesh_export.core.atomic import atomic_output

    target = tmp_path / "race.stl"
    with pytest.raises(errors.OutputError, match="appeared"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"new")
            target.write_bytes(b"someone else's")  # another worker got there first
    assert target.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["race.stl"]


def test_out_directory_is_created_for_exports_and_batches(tmp_path):
    """Like every downloader: a missing --out is made, parents too (convert still needs the
    target's directory, like cp: see test_missing_output_directory_and_read_only_target)."""
    from build_sample import SAMPLE_ROOT_ID

    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache")}
    single = tmp_path / "a" / "b" / "c"
    result = run_cli(SAMPLE_ROOT_ID, "--source", "sample", "--lod", "3", "--format", "3mf", "--out", single, env=env)
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((single / f"{SAMPLE_ROOT_ID}_lod3.3mf.json").read_text())
    # 3MF cannot state nanometres: the export converts to micrometres and says so.
    assert sidecar["units"] == "um" and sidecar["steps"][-1]["step"] == "convert_units"
    assert sidecar["steps"][-1]["to"] == "um" and "3mf" in sidecar["steps"][-1]["reason"]
    batch = tmp_path / "x" / "y"
    result = run_cli(SAMPLE_ROOT_ID, "--source", "sample", "--lod", "3", "--workers", "2", "--out", batch, env=env)
    assert result.returncode == 0, result.stderr
    assert (batch / f"{SAMPLE_ROOT_ID}_lod3.stl").exists() and (batch / "manifest.jsonl").exists()
    (tmp_path / "file").write_text("not a directory")
    assert_one_line_error(run_cli(SAMPLE_ROOT_ID, "--source", "sample", "--out", tmp_path / "file", env=env),
                          errors.OutputError.exit_code, "not a directory")


@pytest.mark.parametrize("args", [("864691135010718168", "--no-such-option"), ("convert", "a.ply", "b.stl", "--nope")])
def test_an_unknown_option_is_a_usage_error_not_an_internal_one(args):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "No such option" in result.stderr and "internal error" not in result.stderr
    assert "Traceback" not in result.stderr


def test_options_taken_together_are_the_same_on_every_command_that_takes_them():
    """export and convert take every processing step as its own flag; info, preview and compare
    take every fetch option; each the same option wherever it appears (declared once)."""
    from dataclasses import fields

    import typer

    from mesh_export.cli import app
    from mesh_export.cli.options import FETCH_OPTIONS, STEP_FLAGS
    from mesh_export.process.steps import StepOptions

    assert {f.name for f in fields(StepOptions)} <= set(STEP_FLAGS.options)
    commands = typer.main.get_command(app).commands

    def shown(command: str, names) -> list:
        params = {p.name: p for p in commands[command].params}
        return [(params[n].opts, params[n].help, params[n].rich_help_panel, params[n].default) for n in names]

    for group, takers in ((STEP_FLAGS, ("export", "convert")), (FETCH_OPTIONS, ("info", "preview", "compare"))):
        first, *others = [shown(command, group.options) for command in takers]
        assert all(other == first for other in others)
