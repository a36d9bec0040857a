"""A step's output mesh: the input's metadata carried over, the step appended to its provenance.

Below every step implementation (steps, remesh, and jobs that rescale a result) so that each
of them records itself the same way without importing the step plan.
"""

from __future__ import annotations

from typing import Any

from mesh_export.core.units import set_mesh_units


def derived_mesh(mesh, vertices, step: dict[str, Any], units: str | None = None, faces=None):
    """A new mesh of ``vertices`` (and ``faces``, else the input's) with ``step`` appended to
    ``metadata["steps"]``; ``units`` default to the input's."""
    import trimesh

    out = trimesh.Trimesh(vertices=vertices, faces=mesh.faces if faces is None else faces, process=False)
    out.metadata.update({k: v for k, v in mesh.metadata.items() if k != "steps"})
    out.metadata["steps"] = [*mesh.metadata.get("steps", []), step]
    set_mesh_units(out, units if units is not None else mesh.units)
    return out
