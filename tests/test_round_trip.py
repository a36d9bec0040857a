"""Every file we write, we read: a walk over the writer registry. For every format holding a
surface, a volume mesh or a morphology (in each of its modes), ``info`` reads what the writer
wrote with the same figures (faces and area; cells by type and volume; nodes and length), and
``convert`` takes it on to another format of the same kind with the same figures again.

A new writer without a reader fails here, unless it joins WITHOUT_READER with its reason (a
reviewed list: a listed format that can be read fails too, so the list cannot go stale).
"""

from __future__ import annotations

import meshio
import numpy as np
import pytest
import trimesh

import mesh_export
import mesh_export.api
from mesh_export import errors
from mesh_export.model import SKELETON, SURFACE, VOLUME, Skeleton
from mesh_export.writers.catalog import all_writers

WITHOUT_READER = {
    "hoc": "a NEURON program, not data: NEURON runs it (tests/test_hoc_template.py loads every template there)",
    "neuroglancer": "meshio's legacy Neuroglancer fragment has no extension and no magic number: no file of it "
                    "can be told apart from others",
}
# Kinds walked; a circuit (sonata: a directory of many cells' files) is not a file of one kind:
# its cells are SWC files, walked here, and tests/test_sonata.py runs the circuit in BMTK. Nor
# are Neuroglancer layers (precomputed: a directory CloudVolume and neuroglancer's own reader read
# back in tests/test_precomputed_layers.py).
KINDS = (SURFACE, VOLUME, SKELETON)
# Writers registered without an extension: the extension a user gives them with --format.
EXTENSIONLESS = {"gmsh22": ".msh", "ansys": ".msh"}
# The volume cells meshio's writers cannot hold (writers.meshio_formats refuses them in one line).
HOLDS_TETRA_ONLY = {"dolfin-xml", "h5m"}
HOLDS_NO_PYRAMID = {"abaqus", "mdpa"}


def _walked():
    cases = []
    for writer in all_writers():
        for kind in KINDS:
            if kind in writer.accepts:
                for mode in writer.modes or ("",):
                    cases.append(pytest.param(writer.name, kind, mode, id=f"{writer.name}-{kind}{'-' + mode if mode else ''}"))
    return cases


def _extension(writer) -> str:
    return writer.extensions[0] if writer.extensions else EXTENSIONLESS.get(writer.name, "")


@pytest.fixture(scope="module")
def samples():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=2500.0)
    sphere = trimesh.Trimesh(sphere.vertices + [1.0e5, -2.0e4, 3.3e4], sphere.faces, process=False)
    sphere.units = "nm"
    corners = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)] + [[0.5, 0.5, 1.5]]) * 1000.0
    # A unit cube (1000 nm) as 5 tetrahedra; and a hexahedron, with a pyramid on top, as a mix.
    tetra = meshio.Mesh(corners[:8], [("tetra", np.array([[0, 1, 3, 5], [0, 3, 2, 6], [0, 4, 5, 6], [3, 7, 6, 5],
                                                            [0, 3, 6, 5]]))])
    mixed = meshio.Mesh(corners, [("hexahedron", np.array([[0, 1, 3, 2, 4, 5, 7, 6]])),
                                  ("pyramid", np.array([[4, 5, 7, 6, 8]]))])
    for volume in (tetra, mixed):
        volume.metadata = {"units": "nm", "steps": []}
    skeleton = Skeleton([[0, 0, 0], [0, 0, 5], [0, 3, 9], [2, -3, 9], [2, -3, 14]], [-1, 0, 1, 1, 3],
                        [2.0, 1.0, 0.5, 0.5, 0.4], [1, 3, 3, 3, 3], "um")
    return {"sphere": sphere, "tetra": tetra, "mixed": mixed, "skeleton": skeleton}


def _surface_figures(info: dict, sphere) -> None:
    assert info["kind"] == "mesh" and info["faces"] == len(sphere.faces)
    area_nm2 = float(sphere.area)
    if info["units"] is not None:  # a format that states units (3MF writes micrometres)
        assert info["surface_area_um2"] == pytest.approx(area_nm2 * 1e-6, rel=1e-6)
    else:  # the file's numbers are the nanometres written
        assert info["surface_area"] == pytest.approx(area_nm2, rel=1e-6)
        np.testing.assert_allclose(info["bbox"]["min"], sphere.bounds[0], rtol=1e-6)
        np.testing.assert_allclose(info["bbox"]["max"], sphere.bounds[1], rtol=1e-6)


def _volume_figures(info: dict, cells: dict) -> None:
    assert info["kind"] == "volume" and info["cells"] == cells
    assert info["volume"] == pytest.approx(1.0e9 * (1 + (1 / 6 if "pyramid" in cells else 0)), rel=1e-9)
    assert info["bbox"]["min"] == [0, 0, 0]


def _skeleton_figures(info: dict, skeleton) -> None:
    assert info["kind"] == "skeleton" and info["nodes"] == len(skeleton)
    assert info["total_length"] == pytest.approx(skeleton.neurite_length(), rel=1e-6)


@pytest.mark.parametrize("name, kind, mode", _walked())
def test_what_we_write_we_read(name, kind, mode, samples, tmp_path):
    writer = mesh_export.writers.catalog.get_writer(name)
    options = {"ascii": True} if mode == "ascii" and mode != writer.modes[0] else {}
    target = tmp_path / f"written{_extension(writer)}"
    if name in WITHOUT_READER:
        mesh_export.write(samples["skeleton" if kind == SKELETON else "sphere"], target, format=name, **options)
        with pytest.raises(errors.InputError):  # still no reader: else it leaves WITHOUT_READER
            mesh_export.api.info(target)
        return
    if kind == SURFACE:
        mesh_export.write(samples["sphere"], target, format=name, **options)
        _surface_figures(mesh_export.api.info(target), samples["sphere"])
        onward = tmp_path / ("onward.stl" if target.suffix == ".ply" else "onward.ply")
        mesh_export.api.convert(target, onward)
        _surface_figures(mesh_export.api.info(onward), samples["sphere"])
    elif kind == VOLUME:
        mesh_export.write(samples["tetra"], target, format=name, **options)
        _volume_figures(mesh_export.api.info(target), {"tetra": 5})
        onward = tmp_path / ("onward.msh" if target.suffix == ".vtu" else "onward.vtu")
        mesh_export.api.convert(target, onward)
        _volume_figures(mesh_export.api.info(onward), {"tetra": 5})
        mixed = tmp_path / f"mixed{_extension(writer)}"
        if name in HOLDS_TETRA_ONLY | HOLDS_NO_PYRAMID or name == "gmsh":  # refused in one line, nothing written
            with pytest.raises(errors.InvalidArgumentError, match="use "):
                mesh_export.write(samples["mixed"], mixed, format=name)
            assert not mixed.exists()
        else:
            mesh_export.write(samples["mixed"], mixed, format=name, **options)
            _volume_figures(mesh_export.api.info(mixed), {"hexahedron": 1, "pyramid": 1})
    else:
        mesh_export.write(samples["skeleton"], target, format=name, **options)
        _skeleton_figures(mesh_export.api.info(target), samples["skeleton"])
        onward = tmp_path / "onward.swc"
        mesh_export.api.convert(target, onward)
        _skeleton_figures(mesh_export.api.info(onward), samples["skeleton"])


def test_every_writer_is_walked_or_listed_with_its_reason():
    walked = {case.values[0] for case in _walked()}
    for writer in all_writers():
        if not set(writer.accepts) & set(KINDS):
            assert writer.accepts in (("circuit",), ("layers",)), writer.name  # (sonata, precomputed: see KINDS)
            continue
        assert writer.name in walked
    assert all(len(reason) > 40 for reason in WITHOUT_READER.values())


def test_a_neuroml_soma_of_several_points_reads_back(tmp_path):
    # The first soma segment's start is the root (no segment ends there); an axon leaves the soma.
    skeleton = Skeleton([[0, 0, 0], [3, 0, 0], [6, 0, 0], [6, 0, 5], [6, 3, 9], [0, 0, -4]], [-1, 0, 1, 2, 3, 0],
                        [2.0, 3.0, 2.0, 1.0, 0.5, 0.7], [1, 1, 1, 3, 3, 2], "um")
    written = mesh_export.write(skeleton, tmp_path / "cell.cell.nml")
    back, swc = mesh_export.api.info(written), mesh_export.api.info(mesh_export.write(skeleton, tmp_path / "cell.swc"))
    for figure in ("nodes", "neurites", "sections", "tips", "soma_nodes", "total_length", "soma_radius"):
        assert back[figure] == pytest.approx(swc[figure]), figure
    broken = tmp_path / "broken.nml"
    broken.write_text('<neuroml><cell id="x"/></neuroml>')
    with pytest.raises(errors.InputError, match="no <morphology>"):
        mesh_export.api.info(broken)
