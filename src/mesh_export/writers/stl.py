"""STL, binary (default) and ASCII. Binary is one structured array written with tofile."""

from __future__ import annotations

import numpy as np

from . import _text
from ._mesh import face_normals32, provenance_line, triangles
from .registry import Writer, register

_FACET = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attributes", "<u2")])


def write_stl(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    normals = face_normals32(vertices, faces)
    if ascii:
        _write_ascii(path, vertices, faces, normals, provenance_line(mesh))
        return
    facets = np.empty(len(faces), dtype=_FACET)
    facets["normal"] = normals
    facets["corners"] = vertices.astype(np.float32, copy=False)[faces]
    facets["attributes"] = 0
    # The 80-byte header must not start with "solid": readers would take the file for ASCII.
    header = provenance_line(mesh).encode("ascii", "replace")[:80].ljust(80, b" ")
    with open(path, "wb") as handle:
        handle.write(header)
        handle.write(np.uint32(len(faces)).tobytes())
        facets.tofile(handle)


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
