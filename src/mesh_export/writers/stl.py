"""STL, binary (default) and ASCII. Binary fills 50-byte facet records a chunk at a time."""

from __future__ import annotations

import numpy as np

from mesh_export.writers import _text
from mesh_export.core.validate import SurfaceValues
from mesh_export.writers._layout import Rows, scratch_array, write_layout
from mesh_export.writers._mesh import (face_normals32, float32_vertices, gather_corners32, normals_from_corners, provenance_line,
                    triangles)
from mesh_export.writers.registry import Writer, register

_FACET = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attributes", "<u2")])
_V12 = np.dtype((np.void, 12))
_V36 = np.dtype((np.void, 36))


def write_stl(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    checks = SurfaceValues(vertices, faces)
    if ascii:
        checks.whole()
        normals = face_normals32(vertices, faces)
        _write_ascii(path, vertices, faces, normals, provenance_line(mesh))
        return
    # The 80-byte header must not start with "solid": readers would take the file for ASCII.
    header = provenance_line(mesh).encode("ascii", "replace")[:80].ljust(80, b" ")
    with open(path, "xb") as handle:
        write_layout(handle, [header + np.uint32(len(faces)).tobytes(), _facets(vertices, faces, checks)])


def _facets(vertices, faces, checks: SurfaceValues) -> Rows:
    """Binary facet records (the attribute count stays 0)."""
    vertices32 = float32_vertices(vertices, checks.vertices)

    def fill(start: int, stop: int, scratch) -> memoryview:
        chunk = faces[start:stop]
        checks.faces(chunk)
        records = scratch_array(scratch, "stl.facets", _FACET, stop - start)[: stop - start]
        normals = scratch_array(scratch, "stl.normals", (np.float32, 3), stop - start)
        corners = gather_corners32(vertices32, chunk, scratch)
        # Whole records moved as opaque bytes: field-wise float assignment is 2-3x slower.
        raw = records.view(np.uint8).reshape(len(chunk), _FACET.itemsize)
        raw[:, 12:48].view(_V36)[:, 0] = corners.view(_V36)[:, 0]
        raw[:, 0:12].view(_V12)[:, 0] = normals_from_corners(corners, out=normals).view(_V12)[:, 0]
        return memoryview(records).cast("B")

    return Rows(len(faces), _FACET.itemsize, fill, chunk_rows=1 << 15)


def _write_ascii(path, vertices, faces, normals, title: str) -> None:
    corners = vertices[faces]  # (n, 3, 3)
    decimals = _text.choose_decimals(vertices)
    segments: list[_text.Segment] = [b"facet normal "]
    segments += _text.fixed_columns(normals, 6)
    segments.append(b"\n  outer loop\n")
    for corner in range(3):
        segments.append(b"    vertex ")
        segments += _text.fixed_columns(corners[:, corner, :], decimals)
        segments.append(b"\n")
    segments.append(b"  endloop\nendfacet\n")
    name = title.replace(" ", "_")
    with open(path, "xb") as handle:
        handle.write(f"solid {name}\n".encode())
        _text.write_text(handle, segments, len(faces))
        handle.write(f"endsolid {name}\n".encode())


register(
    Writer(
        name="stl",
        extensions=(".stl",),
        write=write_stl,
        checks_values=True,
        modes=("binary", "ascii"),
        description="Stereolithography; the 3D-printing standard (no units field: see the header)",
    )
)
