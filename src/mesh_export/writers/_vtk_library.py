"""VTK files through VTK itself (the optional ``vtk`` extra): the variants the native readers
leave alone (structured datasets, lz4 without the lz4 package), as ``core.cells`` blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesh_export.core.cells import Block, Cells, blocks_of_vtk_cells
from mesh_export.errors import InputError


def read_with_vtk(path, why: str) -> Cells:
    """The points and cells of any VTK file VTK reads; ``why`` the native reader's reason,
    named when VTK is not installed."""
    try:
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkIOLegacy import vtkDataSetReader
        from vtkmodules.vtkIOXML import vtkXMLGenericDataObjectReader
    except ImportError:
        raise InputError(f"{path}: {why}, which needs the optional 'vtk' package "
                         "(pip install 'mesh-export[vtk]')") from None
    from vtkmodules.vtkCommonCore import vtkObject

    path = Path(path)
    reader = vtkDataSetReader() if path.suffix.lower() == ".vtk" else vtkXMLGenericDataObjectReader()
    reader.SetFileName(str(path))
    shown = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()  # VTK's complaints go to stderr; ours is the one-line error
    try:
        reader.Update()
    finally:
        vtkObject.SetGlobalWarningDisplay(shown)
    data = reader.GetOutputDataObject(0)
    if data is None or not hasattr(data, "GetNumberOfPoints"):
        raise InputError(f"{path}: VTK reads no dataset from it")
    if data.GetClassName() not in ("vtkPolyData", "vtkUnstructuredGrid"):
        from vtkmodules.vtkFiltersGeometry import vtkGeometryFilter

        surface = vtkGeometryFilter()  # structured grids and images: their outer surface
        surface.SetInputData(data)
        surface.Update()
        data = surface.GetOutput()
    if data is None or data.GetPoints() is None:
        raise InputError(f"{path} holds no points")
    points = vtk_to_numpy(data.GetPoints().GetData())
    blocks = []
    if data.GetClassName() == "vtkUnstructuredGrid":
        cells = data.GetCells()
        blocks = blocks_of_vtk_cells(vtk_to_numpy(cells.GetConnectivityArray()),
                                     vtk_to_numpy(cells.GetOffsetsArray())[1:],
                                     vtk_to_numpy(data.GetCellTypesArray()), str(path))
    else:
        for array, name in ((data.GetVerts(), "poly_vertex"), (data.GetLines(), "poly_line"),
                            (data.GetStrips(), "triangle_strip"), (data.GetPolys(), "polygon")):
            if array.GetNumberOfCells():
                blocks.append(Block(name, vtk_to_numpy(array.GetConnectivityArray()),
                                    np.asarray(vtk_to_numpy(array.GetOffsetsArray())[1:], dtype=np.int64)))
    return Cells(points, blocks)


def vtk_polygon_triangles(points: np.ndarray, flat: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
    """Polygons (corners ``flat``, ``counts`` each) cut into triangles by VTK's own triangle filter
    (ear cutting, as VTK and ParaView show them), or None when VTK is not installed."""
    try:
        from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
        from vtkmodules.vtkFiltersCore import vtkTriangleFilter
    except ImportError:
        return None
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    polys = vtkCellArray()
    polys.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_to_vtkIdTypeArray(np.ascontiguousarray(flat, dtype=np.int64), deep=True))
    polydata = vtkPolyData()
    polydata.SetPoints(vtk_points)
    polydata.SetPolys(polys)
    triangulate = vtkTriangleFilter()
    triangulate.SetInputData(polydata)
    triangulate.Update()
    return vtk_to_numpy(triangulate.GetOutput().GetPolys().GetConnectivityArray()).reshape(-1, 3).copy()
