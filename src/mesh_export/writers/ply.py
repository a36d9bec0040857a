"""PLY, binary little-endian (default) and ASCII, with units and tool in comments."""

from __future__ import annotations

from mesh_export.writers import _text
from mesh_export.core.validate import SurfaceValues
from mesh_export.writers._layout import converted_rows, write_layout
from mesh_export.writers._mesh import counted_triangles, provenance_line, triangles, units_of
from mesh_export.writers.registry import Writer, register


def write_ply(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    checks = SurfaceValues(vertices, faces)
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
    if not ascii:
        with open(path, "xb") as handle:
            write_layout(handle, [header.encode("ascii"), converted_rows(vertices, "<f4", checks.vertices),
                                  counted_triangles(faces, checks.faces, "u1", "<i4")])
        return
    checks.whole()
    decimals = _text.choose_decimals(vertices)
    with open(path, "xb") as handle:
        handle.write(header.encode("ascii"))
        _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], len(vertices))
        _text.write_text(handle, [b"3 "] + _text.int_columns(faces) + [b"\n"], len(faces))


register(
    Writer(
        name="ply",
        extensions=(".ply",),
        write=write_ply,
        checks_values=True,
        modes=("binary", "ascii"),
        description="Stanford polygon format; Blender, MeshLab, CloudCompare",
    )
)
