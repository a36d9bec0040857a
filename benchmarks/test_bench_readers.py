"""Reading VTK files (issue 27): mesh-export's numpy readers side by side with VTK's own readers
and meshio, on the 1.3M-face icosphere written by mesh-export (VTP raw and zlib, VTU, legacy VTK
binary). Each case ends with numpy arrays of the points and the triangles, as a caller would use
them. Whole-process figures at 9M faces are in RESULTS.md ("Reading every format we write").
"""

from __future__ import annotations

import numpy as np
import pytest

from mesh_export import api
from mesh_export.writers.readers import read_surface

vtk_xml = pytest.importorskip("vtkmodules.vtkIOXML")


@pytest.fixture(scope="module")
def vtk_files(icosphere8, tmp_path_factory):
    where = tmp_path_factory.mktemp("vtk-read")
    files = {}
    for name, options in (("vtp", {}), ("vtp-zlib", {"compress": True}), ("vtu", {}), ("vtk", {})):
        path = where / f"sphere-{name}.{name.split('-')[0]}"
        api.write(icosphere8, path, **options)
        files[name] = path
    return files


def _vtk_read(path):
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOLegacy import vtkPolyDataReader

    suffix = path.suffix
    reader = {".vtp": vtk_xml.vtkXMLPolyDataReader, ".vtu": vtk_xml.vtkXMLUnstructuredGridReader,
              ".vtk": vtkPolyDataReader}[suffix]()
    reader.SetFileName(str(path))
    reader.Update()
    out = reader.GetOutput()
    cells = out.GetPolys() if suffix != ".vtu" else out.GetCells()
    return vtk_to_numpy(out.GetPoints().GetData()), vtk_to_numpy(cells.GetConnectivityArray()).reshape(-1, 3)


@pytest.mark.parametrize("name", ["vtp", "vtp-zlib", "vtu", "vtk"])
@pytest.mark.benchmark(group="read-vtk")
def test_read_mesh_export(benchmark, vtk_files, name, icosphere8):
    vertices, faces, _ = benchmark(read_surface, vtk_files[name])
    assert len(faces) == len(icosphere8.faces)


@pytest.mark.parametrize("name", ["vtp", "vtp-zlib", "vtu", "vtk"])
@pytest.mark.benchmark(group="read-vtk")
def test_read_vtk(benchmark, vtk_files, name, icosphere8):
    vertices, faces = benchmark(_vtk_read, vtk_files[name])
    assert len(faces) == len(icosphere8.faces)


@pytest.mark.benchmark(group="read-vtk")
def test_read_vtu_meshio(benchmark, vtk_files, icosphere8):
    import meshio

    mesh = benchmark(meshio.read, vtk_files["vtu"])
    assert sum(len(block.data) for block in mesh.cells) == len(icosphere8.faces)
    assert np.asarray(mesh.points).shape == (len(icosphere8.vertices), 3)
