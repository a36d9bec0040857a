"""Legacy VTK (``.vtk``) POLYDATA, binary (default) and ASCII.

Version 4.2 layout (``POLYGONS n 4n`` followed by ``3 a b c`` records) is read by every
ParaView/VTK release and by meshio. Legacy binary is big-endian by definition.
"""

from __future__ import annotations

import numpy as np

from . import _text
from ._mesh import CHUNK_ROWS, converted_chunks, double_buffer, provenance_line, triangles, write_chunks
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
        write_chunks(handle, converted_chunks(vertices, ">f4"))
        handle.write(f"\nPOLYGONS {n_faces} {4 * n_faces}\n".encode())
        write_chunks(handle, _cells(faces))
        handle.write(b"\n")


_V12 = np.dtype((np.void, 12))


def _cells(faces):
    """Big-endian ``3 a b c`` int32 cells, CHUNK_ROWS at a time, in two alternating buffers."""
    buffers = double_buffer((">i4", (4,)), min(len(faces), CHUNK_ROWS))
    for cells in buffers:
        cells[:, 0] = 3
    for i, start in enumerate(range(0, len(faces), CHUNK_ROWS)):
        chunk = faces[start : start + CHUNK_ROWS]
        cells = buffers[i % 2][: len(chunk)]
        # Cast (and byte-swap) contiguously, then move the 12-byte triples as opaque bytes.
        cells[:, 1:].view(_V12)[:, 0] = chunk.astype(">i4").view(_V12)[:, 0]
        yield memoryview(cells).cast("B")


register(
    Writer(
        name="vtk",
        extensions=(".vtk",),
        write=write_vtk,
        modes=("binary", "ascii"),
        description="Legacy VTK POLYDATA; ParaView, VisIt",
    )
)
