"""Read files back with the libraries real users open them with: trimesh, meshio, VTK."""

from __future__ import annotations

import numpy as np
import trimesh


def corners(vertices, faces) -> np.ndarray:
    """Triangle corner coordinates in face order: equal corners mean equal geometry and winding."""
    return np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]


def with_trimesh(path) -> np.ndarray:
    mesh = trimesh.load(path, process=False, force="mesh")
    return corners(mesh.vertices, mesh.faces)


def with_meshio(path, file_format: str | None = None) -> np.ndarray:
    import meshio

    mesh = meshio.read(path, file_format=file_format)
    faces = np.concatenate([c.data for c in mesh.cells if c.type == "triangle"])
    return corners(mesh.points[:, :3], faces)


def _vtk_corners(output) -> np.ndarray:
    from vtkmodules.util.numpy_support import vtk_to_numpy

    points = vtk_to_numpy(output.GetPoints().GetData())
    cells = output.GetPolys() if hasattr(output, "GetPolys") else output.GetCells()
    offsets = vtk_to_numpy(cells.GetOffsetsArray())
    assert np.all(np.diff(offsets) == 3), "every cell is a triangle"
    return corners(points, vtk_to_numpy(cells.GetConnectivityArray()).reshape(-1, 3))


def with_vtk(path) -> np.ndarray:
    """VTK's own readers: legacy .vtk, XML .vtp and .vtu."""
    from vtkmodules.vtkIOLegacy import vtkPolyDataReader
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader, vtkXMLUnstructuredGridReader

    path = str(path)
    reader_class = {
        ".vtk": vtkPolyDataReader,
        ".vtp": vtkXMLPolyDataReader,
        ".vtu": vtkXMLUnstructuredGridReader,
    }[path[path.rindex("."):]]
    reader = reader_class()
    reader.SetFileName(path)
    reader.Update()
    output = reader.GetOutput()
    assert output.GetNumberOfPoints() > 0, f"VTK read no points from {path}"
    return _vtk_corners(output)


def assert_same_geometry(expected: trimesh.Trimesh, actual_corners: np.ndarray, what: str) -> None:
    want = corners(expected.vertices, expected.faces)
    assert actual_corners.shape == want.shape, f"{what}: {actual_corners.shape} != {want.shape}"
    scale = float(np.abs(want).max()) or 1.0
    # float32 storage: ~6e-8 relative; text writers keep 9 significant digits.
    np.testing.assert_allclose(actual_corners, want, rtol=0, atol=scale * 2e-7, err_msg=what)
