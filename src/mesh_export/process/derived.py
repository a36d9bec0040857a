"""A step's output mesh: the input's metadata carried over, the step appended to its provenance.

Below every step implementation (steps, remesh, and jobs that rescale a result) so that each
of them records itself the same way without importing the step plan.
"""

from __future__ import annotations

from typing import Any

from mesh_export.core.units import set_mesh_units
from mesh_export.model import FACE_ATTRIBUTES, VERTEX_ATTRIBUTES


def derived_mesh(mesh, vertices, step: dict[str, Any], units: str | None = None, faces=None):
    """A new mesh of ``vertices`` (and ``faces``, else the input's) with ``step`` appended to
    ``metadata["steps"]``; ``units`` default to the input's.

    Per-vertex and per-face arrays (colours, labels) are kept only while the vertices / faces are
    the input's own: after a step that moves, merges or drops elements they would describe the
    wrong ones, so they are dropped and the step says which.
    """
    import trimesh

    out = trimesh.Trimesh(vertices=vertices, faces=mesh.faces if faces is None else faces, process=False)
    out.metadata.update({k: v for k, v in mesh.metadata.items()
                         if k not in ("steps", VERTEX_ATTRIBUTES, FACE_ATTRIBUTES)})
    same_vertices = len(vertices) == len(mesh.vertices) and faces is None
    dropped = []
    for which, kept in ((VERTEX_ATTRIBUTES, same_vertices), (FACE_ATTRIBUTES, faces is None)):
        arrays = mesh.metadata.get(which) or {}
        if arrays and kept:
            out.metadata[which] = dict(arrays)
        else:
            dropped += sorted(arrays)
    if dropped:
        step = {**step, "dropped_attributes": dropped}
    out.metadata["steps"] = [*mesh.metadata.get("steps", []), step]
    set_mesh_units(out, units if units is not None else mesh.units)
    return out
