"""PLY, binary little-endian (default) and ASCII, with units and tool in comments."""

from __future__ import annotations

import numpy as np

from . import _text
from ._mesh import provenance_line, triangles, units_of
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
        vertices.astype("<f4", copy=False).tofile(handle)
        records = np.empty(len(faces), dtype=_FACE)
        records["count"] = 3
        records["indices"] = faces
        records.tofile(handle)


register(
    Writer(
        name="ply",
        extensions=(".ply",),
        write=write_ply,
        modes=("binary", "ascii"),
        description="Stanford polygon format; Blender, MeshLab, CloudCompare",
    )
)
