"""Wavefront OBJ (text only), units and tool in a leading comment."""

from __future__ import annotations

from mesh_export.writers import _text
from mesh_export.writers._mesh import provenance_line, triangles
from mesh_export.writers.registry import Writer, register


def write_obj(mesh, path) -> None:
    vertices, faces = triangles(mesh)
    decimals = _text.choose_decimals(vertices)
    with open(path, "xb") as handle:
        handle.write(f"# {provenance_line(mesh)}\n".encode())
        _text.write_text(handle, [b"v "] + _text.fixed_columns(vertices, decimals) + [b"\n"], len(vertices))
        # OBJ indices are 1-based.
        _text.write_text(handle, [b"f "] + _text.int_columns(faces + 1) + [b"\n"], len(faces))


register(
    Writer(
        name="obj",
        extensions=(".obj",),
        write=write_obj,
        modes=("ascii",),
        description="Wavefront OBJ; Blender, Maya, most 3D tools",
    )
)
