"""PLY, binary little-endian (default) and ASCII, with units and tool in comments."""

from __future__ import annotations

import numpy as np

from . import _text
from ._mesh import (CHUNK_ROWS, converted_chunks, double_buffer, provenance_line, triangles, units_of,
                    write_chunks)
from .registry import Writer, register

_FACE = np.dtype([("count", "u1"), ("indices", "<i4", (3,))])


def write_ply(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    encoding = "ascii" if ascii else "binary_little_endian"
    header = (
        "ply\n"
        f"format {encoding} 1.0\n"
        f"comment {provenance_line(mesh)}\n"
        f"comment units {units_of(mesh)}\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\n"
        "property list uchar int vertex_indices\n"
        "end_header\n"
    )
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        if ascii:
            decimals = _text.choose_decimals(vertices)
            _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], len(vertices))
            _text.write_text(handle, [b"3 "] + _text.int_columns(faces) + [b"\n"], len(faces))
            return
        write_chunks(handle, converted_chunks(vertices, "<f4"))
        write_chunks(handle, _face_records(faces))


_V12 = np.dtype((np.void, 12))


def _face_records(faces):
    """13-byte ``3 a b c`` records, CHUNK_ROWS at a time, in two alternating buffers."""
    buffers = double_buffer(_FACE, min(len(faces), CHUNK_ROWS))
    for records in buffers:
        records["count"] = 3
    for i, start in enumerate(range(0, len(faces), CHUNK_ROWS)):
        chunk = faces[start : start + CHUNK_ROWS]
        records = buffers[i % 2][: len(chunk)]
        # Cast contiguously, then move 12-byte triples as opaque bytes into the packed
        # records: assigning the (n, 3) int field directly is several times slower.
        indices = chunk.astype("<i4")
        records.view(np.uint8).reshape(len(chunk), 13)[:, 1:].view(_V12)[:, 0] = indices.view(_V12)[:, 0]
        yield memoryview(records).cast("B")


register(
    Writer(
        name="ply",
        extensions=(".ply",),
        write=write_ply,
        modes=("binary", "ascii"),
        description="Stanford polygon format; Blender, MeshLab, CloudCompare",
    )
)
