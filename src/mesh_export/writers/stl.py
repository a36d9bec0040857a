"""STL, binary (default) and ASCII. Binary fills 50-byte facet records a chunk at a time."""

from __future__ import annotations

import numpy as np

from . import _text
from ._mesh import (CHUNK_ROWS, double_buffer, face_normals32, gather_corners32, normals_from_corners,
                    provenance_line, triangles, write_chunks)
from .registry import Writer, register

_FACET = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attributes", "<u2")])
_V12 = np.dtype((np.void, 12))
_V36 = np.dtype((np.void, 36))


def write_stl(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    if ascii:
        normals = face_normals32(vertices, faces)
        _write_ascii(path, vertices, faces, normals, provenance_line(mesh))
        return
    # The 80-byte header must not start with "solid": readers would take the file for ASCII.
    header = provenance_line(mesh).encode("ascii", "replace")[:80].ljust(80, b" ")
    with open(path, "wb") as handle:
        handle.write(header)
        handle.write(np.uint32(len(faces)).tobytes())
        write_chunks(handle, _facets(vertices, faces))


def _facets(vertices, faces):
    """Binary facet records, CHUNK_ROWS at a time, in two alternating zeroed buffers (the
    attribute count stays 0)."""
    vertices32 = np.ascontiguousarray(vertices, dtype="<f4")
    buffers = double_buffer(_FACET, min(len(faces), CHUNK_ROWS))
    normals = np.empty((len(buffers[0]), 3), dtype=np.float32)
    for i, start in enumerate(range(0, len(faces), CHUNK_ROWS)):
        chunk = faces[start : start + CHUNK_ROWS]
        records = buffers[i % 2][: len(chunk)]
        corners = gather_corners32(vertices32, chunk)
        # Whole records moved as opaque bytes: field-wise float assignment is 2-3x slower.
        raw = records.view(np.uint8).reshape(len(chunk), _FACET.itemsize)
        raw[:, 12:48].view(_V36)[:, 0] = corners.view(_V36)[:, 0]
        raw[:, 0:12].view(_V12)[:, 0] = normals_from_corners(corners, out=normals).view(_V12)[:, 0]
        yield memoryview(records).cast("B")


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
    with open(path, "wb") as handle:
        handle.write(f"solid {name}\n".encode())
        _text.write_text(handle, segments, len(faces))
        handle.write(f"endsolid {name}\n".encode())


register(
    Writer(
        name="stl",
        extensions=(".stl",),
        write=write_stl,
        modes=("binary", "ascii"),
        description="Stereolithography; the 3D-printing standard (no units field: see the header)",
    )
)
