"""Legacy VTK (``.vtk``) POLYDATA, binary (default) and ASCII.

Version 4.2 layout (``POLYGONS n 4n`` followed by ``3 a b c`` records) is read by every
ParaView/VTK release and by meshio. Legacy binary is big-endian by definition.
"""

from __future__ import annotations

from pathlib import Path

from mesh_export.writers import _text
from mesh_export.core.validate import SurfaceValues
from mesh_export.errors import InputError
from mesh_export.writers._layout import converted_rows, write_layout
from mesh_export.writers._mesh import counted_triangles, provenance_line, triangles
from mesh_export.writers.registry import Writer, register


def write_vtk(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    n_vertices, n_faces = len(vertices), len(faces)
    checks = SurfaceValues(vertices, faces)
    head = (
        "# vtk DataFile Version 4.2\n"
        f"{provenance_line(mesh)}\n"
        f"{'ASCII' if ascii else 'BINARY'}\n"
        "DATASET POLYDATA\n"
        f"POINTS {n_vertices} float\n"
    )
    if not ascii:
        polygons = f"\nPOLYGONS {n_faces} {4 * n_faces}\n".encode()
        with open(path, "xb") as handle:
            write_layout(handle, [head.encode("ascii"), converted_rows(vertices, ">f4", checks.vertices), polygons,
                                  counted_triangles(faces, checks.faces, ">i4", ">i4"), b"\n"])
        return
    checks.whole()
    decimals = _text.choose_decimals(vertices)
    with open(path, "xb") as handle:
        handle.write(head.encode("ascii"))
        _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], n_vertices)
        handle.write(f"POLYGONS {n_faces} {4 * n_faces}\n".encode())
        _text.write_text(handle, [b"3 "] + _text.int_columns(faces) + [b"\n"], n_faces)


# ---------------------------------------------------------------------------- reading
#
# POLYDATA, which meshio cannot read, read through VTK (readers' fallback for .vtk).

def read_polydata(path: Path):
    """Legacy VTK POLYDATA, which meshio cannot read, through VTK itself (optional extra)."""
    try:
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkFiltersCore import vtkTriangleFilter
        from vtkmodules.vtkIOLegacy import vtkPolyDataReader
    except ImportError:
        raise InputError(f"{path} is legacy VTK POLYDATA, which needs the optional 'vtk' package "
                         "(pip install 'mesh-export[vtk]')") from None
    import trimesh

    reader = vtkPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    triangulate = vtkTriangleFilter()
    triangulate.SetInputConnection(reader.GetOutputPort())
    triangulate.PassLinesOff()
    triangulate.PassVertsOff()
    triangulate.Update()
    polydata = triangulate.GetOutput()
    if polydata.GetPoints() is None:
        raise InputError(f"{path} holds no points")
    vertices = vtk_to_numpy(polydata.GetPoints().GetData())
    faces = vtk_to_numpy(polydata.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


register(
    Writer(
        name="vtk",
        extensions=(".vtk",),
        write=write_vtk,
        checks_values=True,
        modes=("binary", "ascii"),
        description="Legacy VTK POLYDATA; ParaView, VisIt",
    )
)
