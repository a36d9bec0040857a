"""A plate of neurons (`mesh-export ID ... --print 40mm --plate 250x210mm`) through the CLI,
against a legacy precomputed layer of five real (navis) neurons served on 127.0.0.1, sliced by
PrusaSlicer."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import trimesh

from conftest import cli_in, slice_with_prusa
from support.server import FixtureServer


@pytest.fixture(scope="module")
def layer(tmp_path_factory, neuron_meshes):
    from support.neurons import make_root_ids
    from support.precomputed import LayerGeometry, write_legacy_mesh_layer

    root = tmp_path_factory.mktemp("plate-layer")
    ids = sorted(make_root_ids(5, 23))
    meshes = {root_id: mesh for root_id, mesh in zip(ids, neuron_meshes.values())}
    geometry = LayerGeometry.covering(meshes, resolution=(8.0, 8.0, 40.0), chunk_size=(4096, 4096, 1024))
    write_legacy_mesh_layer(root / "cells", meshes, geometry=geometry, compress=False)
    with FixtureServer(root) as srv:
        yield {"ids": ids, "meshes": meshes, "url": f"precomputed://{srv.url}/cells"}


def _objects(path) -> dict[str, np.ndarray]:
    """Object name -> vertices, read from the 3MF's model XML with lxml (no trimesh)."""
    from lxml import etree

    ns = {"m": "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"}
    tree = etree.fromstring(zipfile.ZipFile(path).read("3D/3dmodel.model"))
    objects = {}
    for obj in tree.iterfind(".//m:resources/m:object", ns):
        verts = [[float(v.get(a)) for a in "xyz"] for v in obj.iterfind(".//m:vertex", ns)]
        objects[obj.get("name")] = np.array(verts)
    return objects


@pytest.mark.slow
def test_plate_of_five_cells_one_scale_sliced(layer, workdir, prusa_slicer):
    ids = [str(i) for i in layer["ids"]]
    result = cli_in(workdir, "export", *ids, "--source", layer["url"], "--print", "40mm",
                    "--plate", "250x210mm", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    (summary,) = json.loads(result.stdout)
    assert summary["of"] == 1 and sorted(summary["root_ids"]) == sorted(ids)
    path = workdir / "out" / "plate.3mf"
    objects = _objects(path)
    assert sorted(objects) == sorted(ids)
    # Footprints on the plate, apart (bounding boxes do not overlap), all on z = 0.
    boxes = {k: (v[:, :2].min(axis=0), v[:, :2].max(axis=0)) for k, v in objects.items()}
    for k, (lo, hi) in boxes.items():
        assert lo.min() >= 0 and hi[0] <= 250 and hi[1] <= 210 and objects[k][:, 2].min() == pytest.approx(0, abs=1e-4)
        for other, (lo2, hi2) in boxes.items():
            if other != k:
                assert (hi <= lo2).any() or (hi2 <= lo).any(), (k, other)
    # One scale: each cell's print scale (mm per nm) is the same, the largest 40 mm long.
    sidecar = json.loads((workdir / "out" / "plate.3mf.json").read_text())
    scales = {c["root_id"]: c["steps"][-1].get("scale", c["steps"][-1].get("transform", {}).get("scale"))
              for c in sidecar["cells"]}
    assert max(scales.values()) == pytest.approx(min(scales.values()), rel=1e-9)
    longest = max(np.ptp(v, axis=0).max() for v in objects.values())
    assert longest == pytest.approx(40.0, rel=0.01)
    config = zipfile.ZipFile(path).read("Metadata/Slic3r_PE.config").decode()
    assert "bed_shape = 0x0,250x0,250x210,0x210" in config
    stl = trimesh.load(workdir / "out" / "plate.stl")
    assert stl.body_count == 5
    slice_with_prusa(prusa_slicer, path, workdir / "plate.gcode")


@pytest.mark.slow
def test_plate_split_and_too_small(layer, workdir):
    ids = [str(i) for i in layer["ids"][:3]]
    (workdir / "ids.txt").write_text("\n".join(ids) + "\n")
    split = cli_in(workdir, "export", "--ids-file", workdir / "ids.txt", "--source", layer["url"],
                   "--print", "40mm", "--plate", "60x60mm", "--json")
    assert split.returncode == 0, split.stderr[-2000:]
    plates = json.loads(split.stdout)
    assert len(plates) > 1 and sorted(sum((p["root_ids"] for p in plates), [])) == sorted(ids)
    assert all((workdir / "out" / f"plate_{p['plate']}.3mf").is_file() for p in plates)
    small = cli_in(workdir, "export", ids[0], "--source", layer["url"], "--print", "40mm", "--plate", "20x20mm")
    assert small.returncode != 0 and "too small" in small.stderr and "Traceback" not in small.stderr
    assert len(small.stderr.strip().splitlines()) == 1
