"""A plate of neurons: several root ids printed at one scale, laid out on a build plate.

Each cell is made print-ready on its own (pose, contact, thickening: ``remesh.printable``),
then all are rescaled by one factor (``same_scale``: the largest cell's longest side is the
print size, so sizes compare) and packed by their footprints' bounding boxes in shelves with
a margin. Cells that do not fit go on the next plate. Each plate is one 3MF with one named
object per root id (and PrusaSlicer's config: the bed, supports when any cell needs them)
and one STL of the whole plate, plus a JSON sidecar of where each cell went.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.parsing import parse_length, parse_plate_size
from ..errors import InvalidArgumentError

MARGIN_MM = 5.0


@dataclass
class Placed:
    root_id: str
    mesh: Any  # trimesh.Trimesh, mm, on z = 0, footprint from (0, 0)
    footprint: tuple[float, float]
    at: tuple[float, float] = (0.0, 0.0)
    turned: bool = False  # rotated 90 degrees about z to fit


@dataclass
class Plate:
    cells: list[Placed] = field(default_factory=list)


def _footprint_origin(mesh) -> None:
    lo = np.asarray(mesh.vertices)[:, :2].min(axis=0)
    mesh.vertices[:, :2] -= lo


def layout(cells: list[Placed], plate: tuple[float, float], margin: float = MARGIN_MM) -> list[Plate]:
    """Shelf packing of footprints (tallest first), a 90-degree turn when that fits better;
    a new plate when one is full. A footprint too large for an empty plate is an error."""
    width, depth = plate
    usable = (width - 2 * margin, depth - 2 * margin)
    for cell in cells:
        w, d = cell.footprint
        if not ((w <= usable[0] and d <= usable[1]) or (d <= usable[0] and w <= usable[1])):
            raise InvalidArgumentError(
                f"plate {width:g}x{depth:g} mm is too small for {cell.root_id}: its footprint is "
                f"{w:.1f}x{d:.1f} mm (with {margin:g} mm margins); use a smaller --print or a larger --plate")
        # Long side along x when it fits: shelves of lower height pack tighter.
        if d > w and d <= usable[0] and w <= usable[1]:
            cell.turned, cell.footprint = True, (d, w)
    plates: list[Plate] = []
    pending = sorted(cells, key=lambda c: -c.footprint[1])
    while pending:
        current, x, y, shelf, rest = Plate(), margin, margin, 0.0, []
        for cell in pending:
            w, d = cell.footprint
            if x + w > width - margin:  # next shelf
                x, y, shelf = margin, y + shelf + margin, 0.0
            if y + d > depth - margin:
                rest.append(cell)
                continue
            cell.at = (x, y)
            current.cells.append(cell)
            x += w + margin
            shelf = max(shelf, d)
        plates.append(current)
        pending = rest
    return plates


def _placed_vertices(cell: Placed) -> np.ndarray:
    vertices = np.array(cell.mesh.vertices, dtype=np.float64)
    if cell.turned:
        vertices = vertices[:, [1, 0, 2]] * [-1, 1, 1]
        vertices[:, 0] -= vertices[:, 0].min()
    vertices[:, :2] += cell.at
    return vertices


def print_plate(meshes: dict[str, Any], *, size="60mm", plate="250x210mm", same_scale: bool = True,
                min_feature=None, max_memory=None, keep_orientation: bool = False, base: bool = False):
    """Print-ready meshes for ``meshes`` (root id -> mesh), rescaled and laid out: the plates."""
    from ..process.derived import derived_mesh
    from ..process.remesh import printable

    size_mm = parse_length(size)
    bed = parse_plate_size(plate)
    if not meshes:
        raise InvalidArgumentError("a plate needs at least one root id")
    extents = {key: float(np.ptp(np.asarray(m.vertices), axis=0).max()) for key, m in meshes.items()}
    largest = max(extents.values())
    printed = {}
    for key, mesh in meshes.items():
        # One scale for all: each cell's size is its share of the largest one's.
        own = size_mm * extents[key] / largest if same_scale else size_mm
        printed[key] = printable(mesh, size=f"{own}mm", min_feature=min_feature, max_memory=max_memory,
                                 keep_orientation=keep_orientation, base=base)
    if same_scale:
        # Each print's exact-size step fixed its longest side after its pose: bring all back
        # to the one scale the largest cell has.
        scales = {k: m.metadata["steps"][-1]["transform"]["scale"] for k, m in printed.items()}
        common = scales[max(extents, key=extents.get)]
        for key, mesh in printed.items():
            factor = common / scales[key]
            printed[key] = derived_mesh(mesh, np.asarray(mesh.vertices) * factor,
                                        {"step": "same_scale", "factor": factor, "scale": common})
    cells = []
    for key, mesh in printed.items():
        _footprint_origin(mesh)
        w, d = np.ptp(np.asarray(mesh.vertices)[:, :2], axis=0)
        cells.append(Placed(key, mesh, (float(w), float(d))))
    return layout(cells, bed), bed


def write_plates(plates: list[Plate], bed: tuple[float, float], out_dir, *, name: str = "plate",
                 overwrite: bool = False) -> list[dict[str, Any]]:
    """Each plate as ``<name>[_k].3mf`` (one object per root id), ``.stl`` and ``.json``."""
    import trimesh

    from ..core.atomic import atomic_output, check_target, make_output_dir
    from ..writers.gltf import slicer_config
    from ..writers.gltf import _with_unit

    out_dir = make_output_dir(out_dir)
    many = len(plates) > 1
    summaries = []
    for k, plate in enumerate(plates, start=1):
        stem = f"{name}_{k}" if many else name
        targets = [check_target(out_dir / f"{stem}.{ext}", overwrite) for ext in ("3mf", "stl", "3mf.json")]
        scene = trimesh.Scene()
        parts, records, supports = [], [], False
        for cell in plate.cells:
            vertices = _placed_vertices(cell)
            part = trimesh.Trimesh(vertices, cell.mesh.faces, process=False)
            scene.add_geometry(part, geom_name=str(cell.root_id), node_name=str(cell.root_id))
            parts.append(part)
            print_step = next(s for s in cell.mesh.metadata["steps"] if s.get("step") == "print")
            supports |= bool(print_step["supports"]["needed"])
            records.append({"root_id": cell.root_id, "at_mm": [float(v) for v in cell.at],
                            "footprint_mm": [float(v) for v in cell.footprint], "turned_90": cell.turned,
                            "steps": cell.mesh.metadata["steps"]})
        from trimesh.exchange.threemf import export_3MF

        config = {"Metadata/Slic3r_PE.config": slicer_config(supports=supports, bed=bed)}
        with atomic_output(targets[0], overwrite=overwrite) as tmp:
            tmp.write_bytes(_with_unit(export_3MF(scene), "millimeter", config))
        whole = trimesh.util.concatenate(parts)
        with atomic_output(targets[1], overwrite=overwrite) as tmp:
            whole.export(str(tmp), file_type="stl")
        summary = {"plate": k, "of": len(plates), "plate_mm": list(bed), "units": "mm",
                   "files": [t.name for t in targets[:2]], "supports": supports,
                   "root_ids": [c.root_id for c in plate.cells], "cells": records}
        with atomic_output(targets[2], overwrite=True) as tmp:
            tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        summaries.append({**{k2: v for k2, v in summary.items() if k2 != "cells"},
                          "output": str(targets[0]), "stl": str(targets[1])})
    return summaries


def export_plate(root_ids, *, plate: str, steps, out_dir=".", name: str = "plate", same_scale: bool = True,
                 overwrite: bool = False, **fetch: Any) -> list[dict[str, Any]]:
    """Fetch each root id (through the cache), apply the steps before --print, print them all
    on plates: the plate summaries (files, root ids per plate)."""
    from dataclasses import replace

    import trimesh

    from ..core.parsing import parse_root_id
    from ..retrieve.cached import fetch_cached
    from ..process.steps import apply_steps
    from ..core.units import set_mesh_units

    if steps is None or steps.print_size is None:
        raise InvalidArgumentError("--plate lays out prints: give --print SIZE too")
    parse_plate_size(plate)  # before any download
    ids = [str(parse_root_id(r)) for r in root_ids]
    before = replace(steps, print_size=None)
    meshes = {}
    for root_id in ids:
        vertices, faces, meta, _ = fetch_cached(root_id, **fetch)
        mesh = trimesh.Trimesh(vertices, faces, process=False)
        set_mesh_units(mesh, "nm")
        mesh.metadata.update({"units": "nm", "root_id": root_id, "lod": meta.get("lod")})
        meshes[root_id] = apply_steps(mesh, before) if before.changes_mesh() else mesh
    plates, bed = print_plate(meshes, size=steps.print_size, plate=plate, same_scale=same_scale,
                              min_feature=steps.min_feature, max_memory=steps.max_memory,
                              keep_orientation=steps.keep_orientation, base=steps.base)
    return write_plates(plates, bed, out_dir, name=name, overwrite=overwrite)
