"""Offscreen previews: real navis neurons rendered headless, checked pixel by pixel; the
scale bar measured against a known scale; compare with its Hausdorff distance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from PIL import Image, ImageDraw

from conftest import cli_in as cli
from mesh_export import errors
from mesh_export.look import preview
from mesh_export.look.preview import BACKGROUND, BAR_COLOUR, _font, render, render_png
from support.datasets import fixture_data, fixture_server  # noqa: F401  (pytest fixtures)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def assert_drawn(path, size, low=0.002, high=0.6):
    image = Image.open(path)
    assert image.format == "PNG" and image.size == size
    rgb = np.asarray(image.convert("RGB")).astype(np.int16)
    assert rgb.std() > 5, "blank picture"
    foreground = (np.abs(rgb - np.asarray(BACKGROUND)).sum(axis=2) > 30).mean()
    assert low < foreground < high, foreground
    return rgb


def bar_extent(rgb: np.ndarray):
    """Rows and columns of the scale bar: the only pure-black pixels in the picture."""
    ys, xs = np.nonzero((rgb == np.asarray(BAR_COLOUR)).all(axis=2))
    assert len(xs), "no scale bar"
    return xs.min(), xs.max(), ys.min(), ys.max()


@pytest.mark.parametrize("views", ["xy", "xy,xz,yz", "iso", "xy,xz,yz,iso"])
def test_real_neurons_render_shaded_and_sized(neuron_meshes, tmp_path, views):
    for name, mesh in neuron_meshes.items():
        info = render_png(mesh, tmp_path / f"{name}.png", views=views, size="900x600", caption=name)
        rgb = assert_drawn(tmp_path / f"{name}.png", (900, 600))
        assert info.um_per_pixel > 0 and info.faces_input == [len(mesh.faces)]
        # Shaded, not a silhouette: the neuron's pixels take many grey levels.
        body = rgb[: 600 - 60][(np.abs(rgb[: 600 - 60] - 255).sum(axis=2) > 30)]
        assert len(np.unique(body.sum(axis=1))) > 20


def test_scale_bar_length_and_label_at_a_known_scale(neuron_mesh, tmp_path):
    um_per_pixel = 0.25
    image, info = render([neuron_mesh], views="xy", size=(1000, 700), um_per_pixel=um_per_pixel)
    rgb = np.asarray(image)
    x0, x1, y0, y1 = bar_extent(rgb)
    bar = info.scale_bar
    # 20% of 1000 px at 0.25 um/px is 50 um: the bar says 50 um and is 200 px long.
    assert bar.length_um == 50 and bar.label == "50 um"
    assert x1 - x0 + 1 == round(50 / um_per_pixel) == bar.pixels
    assert (x0, x1, y0, y1) == (bar.x0, bar.x1, bar.y0, bar.y1)
    # The label is there, left of the bar: the same text drawn alone matches the crop.
    left, top, right, bottom = bar.label_box
    reference = Image.new("RGB", image.size, BACKGROUND)
    ImageDraw.Draw(reference).text(bar.label_xy, "50 um", fill=(40, 40, 40), font=_font(bar.font_size))
    crop = rgb[top:bottom, left:right]
    assert (np.abs(crop.astype(int) - 255).sum(axis=2) > 100).mean() > 0.05, "label text missing"
    np.testing.assert_array_equal(crop, np.asarray(reference)[top:bottom, left:right])
    assert right < x0
    # The neuron itself is drawn at that scale: its projected width in pixels.
    drawn = np.nonzero((np.abs(rgb[40: bar.y0 - 40].astype(int) - 255).sum(axis=2) > 30).any(axis=0))[0]
    expected = neuron_mesh.extents[0] * 1e-3 / um_per_pixel
    assert drawn.max() - drawn.min() + 1 == pytest.approx(expected, abs=3)


def test_scale_bar_label_is_the_fitted_scale(neuron_mesh, tmp_path):
    info = render_png(neuron_mesh, tmp_path / "v.png", views="iso", size="1200x800")
    x0, x1, _, _ = bar_extent(pixels(tmp_path / "v.png"))
    assert (x1 - x0 + 1) == pytest.approx(info.scale_bar.length_um / info.um_per_pixel, abs=1)
    assert str(int(info.scale_bar.length_um)) in info.scale_bar.label


def test_preview_cli_for_a_root_id_through_the_cache(fixture_server, fixture_data, workdir):
    root_id = fixture_data.root_ids[0]
    url = fixture_data.precomputed_url(fixture_server, "multires")
    result = cli(workdir, "preview", root_id, "--source", url, "--lod", "2", "--views", "xy,xz,yz,iso",
                 "--size", "640x480", "-o", "cell.png", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cache"] == "miss" and summary["views"] == ["xy", "xz", "yz", "iso"]
    assert_drawn(workdir / "out" / "cell.png", (640, 480), high=0.8)
    again = cli(workdir, "preview", root_id, "--source", url, "--lod", "2", "--offline", "-o", "cell.png")
    assert again.returncode == errors.OutputError.exit_code  # exists: --overwrite needed
    again = cli(workdir, "preview", root_id, "--source", url, "--lod", "2", "--offline", "-o", "cell.png",
                "--overwrite")
    assert again.returncode == 0, again.stderr


def test_preview_of_a_file_and_of_a_skeleton(neuron_mesh, workdir):
    neuron_mesh.export(workdir / "n.ply")
    result = cli(workdir, "preview", workdir / "n.ply", "--units-in", "nm", "--views", "iso")
    assert result.returncode == 0, result.stderr
    assert_drawn(workdir / "out" / "n.png", (1200, 800))
    swc = workdir / "cell.swc"
    rows = ["1 1 0 0 0 6 -1"]
    for k in range(2, 80):  # a spiral dendrite, thinning out
        t = k / 8.0
        rows.append(f"{k} 3 {40 * np.cos(t) * t:.3f} {40 * np.sin(t) * t:.3f} {5 * t:.3f} {3.0 / t:.3f} {k - 1}")
    swc.write_text("\n".join(rows) + "\n")
    result = cli(workdir, "preview", swc, "-o", "skel.png", "--size", "800x600", "--views", "xy,iso")
    assert result.returncode == 0, result.stderr
    rgb = assert_drawn(workdir / "out" / "skel.png", (800, 600), low=0.005)
    bar_extent(rgb)


def test_preview_names_its_png_after_the_id_or_the_file_stem():
    from pathlib import Path

    from mesh_export.look.preview import default_png_name

    assert default_png_name(" 864691135010718168 ") == Path("864691135010718168.png")
    assert default_png_name(Path("meshes") / "cell.lod2.ply") == Path("cell.lod2.png")


def test_preview_refuses_before_fetching(neuron_mesh, tmp_path):
    """Bad views or size, then an existing PNG: refused before a root id is fetched (the cache is
    empty and offline, so a fetch would be a cache miss) or a file is read."""
    from mesh_export.look.preview import preview

    offline = {"offline": True, "cache_dir": tmp_path / "cache"}
    for kwargs, error in (({"views": "top"}, errors.InvalidArgumentError),
                          ({"size": "big"}, errors.InvalidArgumentError)):
        with pytest.raises(error):
            preview("864691135010718168", tmp_path / "new.png", **kwargs, **offline)
    (tmp_path / "taken.png").write_bytes(b"")
    with pytest.raises(errors.OutputError):
        preview("864691135010718168", tmp_path / "taken.png", **offline)
    with pytest.raises(errors.CacheMissError):
        preview("864691135010718168", tmp_path / "taken.png", overwrite=True, **offline)
    assert (tmp_path / "taken.png").read_bytes() == b"" and not (tmp_path / "new.png").exists()
    neuron_mesh.export(tmp_path / "n.ply")
    result = preview(tmp_path / "n.ply", tmp_path / "n.png", size="400x300", units="nm")
    assert result.cache is None and result.summary()["output"] == str(tmp_path / "n.png")


def test_unknown_units_still_draw_with_a_raw_scale(neuron_mesh, tmp_path):
    mesh = trimesh.Trimesh(neuron_mesh.vertices, neuron_mesh.faces, process=False)  # no units
    image, info = render([mesh], size=(400, 300))
    assert info.um_per_pixel is None and "unknown" in info.scale_bar.label


def test_preview_bad_arguments(neuron_mesh, workdir):
    neuron_mesh.export(workdir / "n.ply")
    for args in (["--views", "top"], ["--size", "10x10"], ["--size", "big"]):
        result = cli(workdir, "preview", workdir / "n.ply", *args)
        assert result.returncode == errors.InvalidArgumentError.exit_code, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_compare_two_lods_side_by_side(fixture_server, fixture_data, workdir):
    root_id = fixture_data.root_ids[1]
    url = fixture_data.precomputed_url(fixture_server, "multires")
    result = cli(workdir, "compare", root_id, root_id, "--lod-a", "0", "--lod-b", "3", "--source", url,
                 "-o", "cmp.png", "--size", "1000x500", "--samples", "20000", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["a"]["lod"] == 0 and summary["b"]["lod"] == 3
    assert summary["a"]["faces"] > summary["b"]["faces"]
    assert 0 < summary["hausdorff"] < max(fixture_data.meshes[root_id].extents)
    rgb = assert_drawn(workdir / "out" / "cmp.png", (1000, 500), high=0.8)
    # Side by side: both halves hold a mesh.
    for half in (rgb[:400, :500], rgb[:400, 500:]):
        assert (np.abs(half - 255).sum(axis=2) > 30).mean() > 0.002


def test_compare_a_mesh_with_itself_is_zero(sphere, workdir):
    sphere.export(workdir / "s.ply")
    result = cli(workdir, "compare", workdir / "s.ply", workdir / "s.ply", "--units-in", "nm", "--json",
                 "--samples", "5000")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hausdorff"] == pytest.approx(0.0, abs=1e-6)


def test_hausdorff_is_exact_for_a_known_displacement(sphere):
    from mesh_export.look.info import hausdorff

    moved = trimesh.Trimesh(sphere.vertices.copy(), sphere.faces, process=False)
    moved.vertices[0] += (moved.vertices[0] - sphere.centroid) / np.linalg.norm(moved.vertices[0] - sphere.centroid) * 300.0
    result = hausdorff(sphere, moved, samples=20000)
    assert result["hausdorff"] == pytest.approx(300.0, rel=1e-6)


def test_export_preview_of_the_bundled_sample(workdir):
    from importlib.resources import files

    provenance = json.loads(files("mesh_export").joinpath("data/sample/provenance").read_text())
    root_id = provenance["root_ids"][0]
    result = cli(workdir, root_id, "--source", "sample", "--preview", "--out", workdir / "out", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    png = workdir / "out" / f"{root_id}_lod0.stl.png"
    assert summary["preview"] == str(png)
    assert json.loads((workdir / "out" / f"{root_id}_lod0.stl.json").read_text())["preview"] == png.name
    assert_drawn(png, (1200, 800))
    assert not list((workdir / "out").glob("*.part")) and not list((workdir / "out").glob(".*"))


def test_a_neurite_thinner_than_a_pixel_is_a_line_not_dashes():
    """A long thin tube (a fifth of a pixel wide on screen, meshed finely as marching cubes and
    connectomics meshes are): every column it crosses is drawn."""
    from mesh_export.look.preview import rasterize

    tube = trimesh.creation.cylinder(radius=0.1, segment=[[10.0, 50.3, 0.0], [190.0, 57.7, 0.0]], sections=8)
    vertices, faces = trimesh.remesh.subdivide_to_size(tube.vertices, tube.faces, max_edge=0.5)
    faces, _ = rasterize(np.asarray(vertices, dtype=np.float64), np.asarray(faces), 200, 100)
    columns = np.flatnonzero((faces >= 0).any(axis=0))
    assert columns.min() <= 11 and columns.max() >= 189
    assert len(columns) >= 175, f"{180 - len(columns)} columns missing: a dashed line"


def test_compare_prints_the_counts_and_the_distances(sphere, workdir):
    sphere.export(workdir / "s.ply")
    result = cli(workdir, "compare", workdir / "s.ply", workdir / "s.ply", "--units-in", "nm", "--samples", "500",
                 "--size", "400x200")
    assert result.returncode == 0, result.stderr
    import re

    faces = f"{len(sphere.faces):,}"
    counts, wrote = result.stdout.splitlines()
    assert re.fullmatch(rf"A {faces} faces   B {faces} faces   Hausdorff (\S+) nm  \(A->B \1, B->A \1\)", counts), counts
    assert wrote == "wrote compare.png"


def test_compare_refuses_before_drawing(sphere, tmp_path):
    """Negative samples, a skeleton, meshes in different units: an argument error, no picture."""
    import mesh_export
    from mesh_export.look.compare import compare

    mesh_export.write(sphere, tmp_path / "nm.ply")
    in_um = trimesh.Trimesh(sphere.vertices / 1000.0, sphere.faces, process=False)
    in_um.units = "um"
    mesh_export.write(in_um, tmp_path / "um.ply")
    (tmp_path / "cell.swc").write_text("1 1 0 0 0 5 -1\n2 3 0 0 10 1 1\n")
    out = tmp_path / "cmp.png"
    for a, b, kwargs, text in ((tmp_path / "nm.ply", tmp_path / "nm.ply", {"samples": -1}, "--samples"),
                               (tmp_path / "nm.ply", tmp_path / "cell.swc", {}, "not skeletons"),
                               (tmp_path / "nm.ply", tmp_path / "um.ply", {}, r"different units \(nm vs um\)")):
        with pytest.raises(errors.InvalidArgumentError, match=text):
            compare(a, b, out, **kwargs)
        assert not out.exists()


def test_preview_and_info_of_a_file_build_no_trimesh_and_draw_what_a_trimesh_draws(neuron_mesh, tmp_path):
    """`preview` and `info` read a file's arrays (float32 / int32 as stored) and never import
    trimesh; the picture is the one drawn from a trimesh.Trimesh of the same mesh, pixel for pixel."""
    import subprocess
    import sys

    path = tmp_path / "cell.ply"
    neuron_mesh.export(path)
    script = ("import sys, json; from mesh_export import api; "
              f"p = api.preview({str(path)!r}, {str(tmp_path / 'arrays.png')!r}, units='nm', views='xy,iso'); "
              f"i = api.info({str(path)!r}, units='nm'); "
              "print(json.dumps(['trimesh' in sys.modules, i['faces'], p.picture.faces_drawn]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    imported, faces, drawn = json.loads(result.stdout.strip().splitlines()[-1])
    assert not imported and faces == len(neuron_mesh.faces) and len(drawn) == 2
    from mesh_export.writers.readers import load

    # The panels (the caption below them says where the mesh came from).
    preview.render_png(load(path, units="nm"), tmp_path / "trimesh.png", views="xy,iso", size="1200x800")
    np.testing.assert_array_equal(pixels(tmp_path / "arrays.png")[:700], pixels(tmp_path / "trimesh.png")[:700])


def test_display_clustering_numbers_cells_as_numpy_unique():
    rng = np.random.default_rng(7)
    for keys in (rng.integers(0, 50, 1000), rng.integers(0, 2**40, 5000), np.array([2**62, 3, 2**62, 0])):
        numbers, count = preview._cell_numbers(keys)
        unique, inverse = np.unique(keys, return_inverse=True)
        assert count == len(unique)
        np.testing.assert_array_equal(numbers, inverse.ravel())
