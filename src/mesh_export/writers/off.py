"""Object File Format (text)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesh_export.writers import _text
from mesh_export.writers._mesh import provenance_line, triangles
from mesh_export.writers._read import BadText, Damaged, Lines, NotNative, text_numbers, text_polygons
from mesh_export.writers.registry import Writer, register


def write_off(mesh, path) -> None:
    vertices, faces = triangles(mesh)
    decimals = _text.choose_decimals(vertices)
    with open(path, "xb") as handle:
        handle.write(f"OFF\n# {provenance_line(mesh)}\n{len(vertices)} {len(faces)} 0\n".encode())
        _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], len(vertices))
        _text.write_text(handle, [b"3 "] + _text.int_columns(faces) + [b"\n"], len(faces))


# ---------------------------------------------------------------------------- reading
#
# The native reader (shared machinery in _read).

def read_off(path: Path):
    with open(path, "rb") as handle:
        first = handle.readline().split(b"#", 1)[0].split()
        if not first or first[0] != b"OFF":
            raise NotNative("not plain OFF (COFF, NOFF, ...)")
        counts = first[1:]
        while not counts:
            line = handle.readline()
            if not line:
                raise Damaged("OFF file without its vertex and face counts")
            counts = line.split(b"#", 1)[0].split()
        try:
            vertex_count, face_count = int(counts[0]), int(counts[1])
        except (IndexError, ValueError):
            raise Damaged(f"bad OFF counts line {b' '.join(counts)!r}") from None
        lines = Lines(handle)
        lines.skip_blank()
        first_vertex = None
        vertices = np.empty((vertex_count, 3))
        done = 0
        for text, count in lines.take(vertex_count):
            numbers = text_numbers(text)
            width = numbers.size // count if count else 3
            if first_vertex is None:
                first_vertex = width
            if numbers.size != count * width or width != first_vertex or width < 3:
                raise BadText("vertex lines of different lengths")
            vertices[done : done + count] = numbers.reshape(count, width)[:, :3]
            done += count
        # A face line: its vertex count, the indices, maybe a colour.
        lines.skip_blank()
        faces = text_polygons(lines.take(face_count), ["list"], 0, np.int32, trailing=True)
    # As trimesh's OFF reader does (so the error stays the same): indices checked on reading.
    if len(faces) and (faces.min() < 0 or faces.max() >= vertex_count):
        raise Damaged("OFF file has a face index outside the range of its vertices")
    return vertices, faces


register(
    Writer(
        name="off",
        extensions=(".off",),
        write=write_off,
        modes=("ascii",),
        description="Object File Format; CGAL, Geomview, MeshLab",
    )
)
