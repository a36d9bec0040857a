"""Printability report: is the surface closed, manifold, one body, the right size, thick enough?"""

from __future__ import annotations

from typing import Any

import numpy as np

from mesh_export.core.parsing import parse_length, parse_memory_budget
from mesh_export.errors import CheckFailedError, MeshExportError  # noqa: F401  (re-exported)


def thinnest_feature(mesh, pitch: float, max_memory=None) -> float:
    """Estimate of the thinnest part's thickness (mesh units) of a closed surface, from the
    distance transform of its inside along its ridge (medial) voxels, block by block (memory
    bounded by ``max_memory``); resolution is about one ``pitch``."""
    from .thickness import ridge_thickness

    thickness, _ = ridge_thickness(mesh.vertices, mesh.faces, pitch, budget=parse_memory_budget(max_memory))
    # A low percentile rather than the minimum: branch tips taper to a point on any shape.
    return float(np.percentile(thickness, 2)) if thickness.size else 0.0


#: More than this much overhang (mm^2) and the print needs supports.
SUPPORT_AREA_MM2 = 1.0


def needs_support(overhang_mm2: float) -> bool:
    return bool(overhang_mm2 > SUPPORT_AREA_MM2)


def check_mesh(mesh, *, size=None, min_feature=None, max_memory=None) -> dict[str, Any]:
    """Facts about ``mesh`` and, when ``size``/``min_feature`` are given (mm), whether it can be
    printed at that size. ``report["failures"]`` lists what fails; empty means printable."""
    import trimesh

    from mesh_export.core.units import set_mesh_units

    # Formats like STL store every triangle's corners separately: weld them before judging.
    units = mesh.units
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    mesh.merge_vertices()
    set_mesh_units(mesh, units)
    bounds = np.asarray(mesh.bounds, dtype=float)
    extents = bounds[1] - bounds[0]
    watertight = bool(mesh.is_watertight)
    report: dict[str, Any] = {
        "units": mesh.units,
        "vertices": int(len(mesh.vertices)),
        "faces": int(len(mesh.faces)),
        "watertight": watertight,
        "winding_consistent": bool(mesh.is_winding_consistent),
        "is_volume": bool(mesh.is_volume),
        "bodies": int(mesh.body_count),
        "volume": float(mesh.volume) if watertight else None,
        "area": float(mesh.area),
        "bbox": bounds.tolist(),
        "extents": extents.tolist(),
    }
    failures = []
    feature = parse_length(min_feature) if min_feature is not None else (0.8 if size is not None else None)
    if size is not None:
        size_mm = parse_length(size)
        if mesh.units != "mm":
            failures.append(f"units are {mesh.units or 'unknown'}, not mm")
        elif abs(extents.max() - size_mm) > 0.01 * size_mm:
            failures.append(f"longest side is {extents.max():.2f} mm, not {size_mm:g} mm (+-1%)")
        if bounds[0][2] < -1e-6 or bounds[0][2] > 1e-3 * size_mm:
            failures.append(f"not on the build plate: min z = {bounds[0][2]:.3f}")
    if size is not None or min_feature is not None:
        if not watertight:
            failures.append("not watertight")
        if not report["is_volume"]:
            failures.append("not a closed, consistently wound volume")
        if report["bodies"] != 1:
            failures.append(f"{report['bodies']} bodies, not 1")
        if mesh.units == "mm" and watertight:
            from .printing import MIN_CONTACT_MM2, first_layer_area, overhang_area

            # Measured on the mesh as it stands: what the slicer's first layer holds, and
            # what hangs in the air at more than 45 degrees (supports, or it sags).
            report["contact_area"] = first_layer_area(mesh.vertices, mesh.faces)
            report["overhang_area"] = overhang_area(mesh.vertices, mesh.faces)
            report["needs_support"] = needs_support(report["overhang_area"])
            if report["contact_area"] <= 0:
                failures.append("nothing rests on the plate: the first layer would be empty")
            elif report["contact_area"] < MIN_CONTACT_MM2:
                report.setdefault("warnings", []).append(
                    f"the first layer holds only {report['contact_area']:.2f} mm^2; --base adds a plate")
        if feature is not None and mesh.units == "mm" and watertight:
            pitch = feature / 4
            report["thinnest_feature"] = thinnest_feature(mesh, pitch, max_memory)
            report["thinnest_feature_resolution"] = pitch
            if report["thinnest_feature"] < feature - pitch:
                failures.append(f"thinnest feature ~{report['thinnest_feature']:.2f} mm is under {feature:g} mm")
    report["failures"] = failures
    report["printable"] = not failures if (size is not None or min_feature is not None) else None
    return report
