"""Processing steps: plain functions mesh -> mesh, each recorded in ``metadata["steps"]``.

Steps never modify their input; they return a new mesh with the step appended to the
provenance, so the order applied is always visible in the output's sidecar.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidArgumentError, UnitsError
from .units import conversion_factor, normalize_units, set_mesh_units


def _derived(mesh, vertices, step: dict[str, Any], units: str | None = None):
    import trimesh

    out = trimesh.Trimesh(vertices=vertices, faces=mesh.faces, process=False)
    out.metadata.update({k: v for k, v in mesh.metadata.items() if k != "steps"})
    out.metadata["steps"] = [*mesh.metadata.get("steps", []), step]
    set_mesh_units(out, units if units is not None else mesh.units)
    return out


def set_units(mesh, units: str):
    """Declare the units of a mesh whose file did not say (no coordinates change)."""
    return _derived(mesh, mesh.vertices, {"step": "set_units", "units": normalize_units(units)},
                    units=normalize_units(units))


def convert_units(mesh, units: str):
    """Scale coordinates from the mesh's units to ``units``."""
    target = normalize_units(units)
    if mesh.units is None:
        raise UnitsError(f"the mesh's units are unknown, so it cannot be converted to {target}; "
                         "say what they are with --units-in")
    source = normalize_units(mesh.units)
    if source == target:
        return mesh
    factor = conversion_factor(source, target)
    return _derived(mesh, mesh.vertices * factor,
                    {"step": "convert_units", "from": source, "to": target, "factor": factor},
                    units=target)


def scale(mesh, factor: float):
    """Multiply coordinates by ``factor`` (units are kept: a scale is a deliberate resize)."""
    factor = float(factor)
    if not (factor > 0 and factor < float("inf")):
        raise InvalidArgumentError(f"--scale must be a positive finite number, got {factor}")
    return _derived(mesh, mesh.vertices * factor, {"step": "scale", "factor": factor})
