"""Printability report: is the surface closed, manifold, one body, the right size, thick enough?"""

from __future__ import annotations

from typing import Any

import numpy as np

from mesh_export.errors import CheckFailedError, MeshExportError  # noqa: F401  (re-exported)


def thinnest_feature(mesh, pitch: float, max_memory=None) -> float:
    """Estimate of the thinnest part's thickness (mesh units), from the distance transform of
    the voxelised solid along its ridge (medial) voxels; resolution is about one ``pitch``."""
    from scipy import ndimage

    from mesh_export.process.remesh import _solid, plan_pitch

    pitch = plan_pitch(mesh, pitch, max_memory)
    solid, _, _ = _solid(mesh, pitch, None)
    distance = ndimage.distance_transform_edt(solid).astype(np.float32)
    del solid
    ridge = (distance > 0) & (distance >= ndimage.maximum_filter(distance, size=3))
    # (2d - 1) voxels: a 1-voxel line has d = 1; a tube of D voxels has d ~ D/2 + 1/2 on its axis.
    thickness = (2 * distance[ridge] - 1) * pitch
    # A low percentile rather than the minimum: branch tips taper to a point on any shape.
    return float(np.percentile(thickness, 2)) if thickness.size else 0.0


def check_mesh(mesh, *, size=None, min_feature=None, max_memory=None) -> dict[str, Any]:
    """Facts about ``mesh`` and, when ``size``/``min_feature`` are given (mm), whether it can be
    printed at that size. ``report["failures"]`` lists what fails; empty means printable."""
    import trimesh

    from mesh_export.process.remesh import parse_length
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
        if feature is not None and mesh.units == "mm":
            pitch = feature / 4
            report["thinnest_feature"] = thinnest_feature(mesh, pitch, max_memory)
            report["thinnest_feature_resolution"] = pitch
            if report["thinnest_feature"] < feature - pitch:
                failures.append(f"thinnest feature ~{report['thinnest_feature']:.2f} mm is under {feature:g} mm")
    report["failures"] = failures
    report["printable"] = not failures if (size is not None or min_feature is not None) else None
    return report
