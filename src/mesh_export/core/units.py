"""Length units: the mesh states its units, and conversion only happens when asked."""

from __future__ import annotations

from mesh_export.errors import UnitsError

# Metres per unit. Connectomics sources are nm; NEURON and SWC are um; printers want mm.
_METRES = {
    "nm": 1e-9,
    "um": 1e-6,
    "mm": 1e-3,
    "cm": 1e-2,
    "m": 1.0,
    # 3MF's imperial units (core spec); exact by definition
    "in": 0.0254,
    "ft": 0.3048,
}
_ALIASES = {
    "nanometer": "nm", "nanometers": "nm", "nanometre": "nm", "nanometres": "nm",
    "micrometer": "um", "micrometers": "um", "micrometre": "um", "micrometres": "um",
    "micron": "um", "microns": "um", "µm": "um", "μm": "um",
    "millimeter": "mm", "millimeters": "mm", "millimetre": "mm", "millimetres": "mm",
    "centimeter": "cm", "centimeters": "cm", "meter": "m", "meters": "m", "metre": "m",
    "metres": "m", "inch": "in", "inches": "in", "foot": "ft", "feet": "ft",
}

KNOWN_UNITS = tuple(_METRES)


def normalize_units(units: str | None) -> str | None:
    """Canonical short name of a unit ("micron" -> "um"), None stays None."""
    if units is None:
        return None
    key = str(units).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _METRES:
        raise UnitsError(f"unknown units {units!r}; use one of {', '.join(KNOWN_UNITS)}")
    return key


def conversion_factor(from_units: str, to_units: str) -> float:
    """Factor that multiplies coordinates in ``from_units`` to get ``to_units``."""
    src = normalize_units(from_units)
    dst = normalize_units(to_units)
    return _METRES[src] / _METRES[dst]


def set_mesh_units(mesh, units: str | None) -> None:
    """Record ``units`` on a trimesh object; None means unknown (trimesh would store "none")."""
    if units is None:
        mesh.metadata.pop("units", None)
    else:
        mesh.metadata["units"] = normalize_units(units)
