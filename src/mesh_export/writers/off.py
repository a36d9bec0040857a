"""Object File Format (text)."""

from __future__ import annotations

from mesh_export.writers import _text
from mesh_export.writers._mesh import provenance_line, triangles
from mesh_export.writers.registry import Writer, register


def write_off(mesh, path) -> None:
    vertices, faces = triangles(mesh)
    decimals = _text.choose_decimals(vertices)
    with open(path, "xb") as handle:
        handle.write(f"OFF\n# {provenance_line(mesh)}\n{len(vertices)} {len(faces)} 0\n".encode())
        _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], len(vertices))
        _text.write_text(handle, [b"3 "] + _text.int_columns(faces) + [b"\n"], len(faces))


register(
    Writer(
        name="off",
        extensions=(".off",),
        write=write_off,
        modes=("ascii",),
        description="Object File Format; CGAL, Geomview, MeshLab",
    )
)
