"""Legacy VTK (``.vtk``) POLYDATA, binary (default) and ASCII.

Version 4.2 layout (``POLYGONS n 4n`` followed by ``3 a b c`` records) is read by every
ParaView/VTK release and by meshio. Legacy binary is big-endian by definition.
"""

from __future__ import annotations

import numpy as np

from . import _text
from ._mesh import provenance_line, triangles
from .registry import Writer, register


def write_vtk(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    n_vertices, n_faces = len(vertices), len(faces)
    head = (
        "# vtk DataFile Version 4.2\n"
        f"{provenance_line(mesh)}\n"
        f"{'ASCII' if ascii else 'BINARY'}\n"
        "DATASET POLYDATA\n"
        f"POINTS {n_vertices} float\n"
    )
    with open(path, "wb") as handle:
        handle.write(head.encode("ascii"))
        if ascii:
            decimals = _text.choose_decimals(vertices)
            _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], n_vertices)
            handle.write(f"POLYGONS {n_faces} {4 * n_faces}\n".encode())
            _text.write_text(handle, [b"3 "] + _text.int_columns(faces) + [b"\n"], n_faces)
            return
        vertices.astype(">f4", copy=False).tofile(handle)
        handle.write(f"\nPOLYGONS {n_faces} {4 * n_faces}\n".encode())
        cells = np.empty((n_faces, 4), dtype=">i4")
        cells[:, 0] = 3
        cells[:, 1:] = faces
        cells.tofile(handle)
        handle.write(b"\n")


register(
    Writer(
        name="vtk",
        extensions=(".vtk",),
        write=write_vtk,
        modes=("binary", "ascii"),
        description="Legacy VTK POLYDATA; ParaView, VisIt",
    )
)
