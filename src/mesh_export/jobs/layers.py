"""--format precomputed: a processed cell added to a directory of Neuroglancer layers (its
surface, and its skeleton and synapses when a morphology is made), labelled in the segment
properties with where it came from and what made it. The export job fetches and processes;
this module names the cell and hands it to :mod:`mesh_export.writers.precomputed`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mesh_export.model import LAYERS


def writes_layers(writer) -> bool:
    return LAYERS in writer.accepts


def layer_options(options: dict[str, Any]):
    from mesh_export.writers.precomputed import LayerOptions

    given = options.get("layers")
    return (given if given is not None else LayerOptions()).checked()


def check_layers_target(out_dir: str | os.PathLike, root_id: int, options: dict[str, Any], overwrite: bool) -> Path:
    """Refuse before any download what adding the cell would refuse (DIR is the layers' directory)."""
    from mesh_export.core.atomic import make_output_dir
    from mesh_export.writers.precomputed import check_directory

    out_dir = Path(out_dir)
    make_output_dir(out_dir.absolute().parent)
    return check_directory(out_dir, [root_id], layer_options(options), overwrite)


def describe(root_id: int, surface, *, datastack: str | None, version: int | None, source: str | None) -> tuple[str, str]:
    """The segment properties' label and description of a cell."""
    steps = [s.get("step", "?") for s in surface.metadata.get("steps", []) if isinstance(s, dict)]
    where = f"{datastack} v{version}" if datastack and version is not None else (datastack or source or "")
    label = f"{root_id} ({where})" if where else str(root_id)
    description = (f"root id {root_id}; datastack {datastack or '-'}; version {version if version is not None else '-'}; "
                   f"source {source or '-'}; steps: {', '.join(steps) or 'none'}")
    return label, description


def add_cell(surface, skeleton, *, root_id: int, out_dir: str | os.PathLike, options: dict[str, Any], overwrite: bool,
             datastack: str | None, version: int | None, source: str | None, request: dict) -> dict:
    """Add one cell; returns its entry in the layers' registry."""
    from mesh_export.core.validate import check_surface
    from mesh_export.writers.precomputed import Cell, add_cells

    check_surface(surface)
    label, description = describe(root_id, surface, datastack=datastack, version=version, source=source)
    vertices = np.asarray(surface.vertices)
    if vertices.dtype != np.float32:
        vertices = vertices.astype(np.float32)
    faces = np.asarray(surface.faces)
    if faces.dtype != np.int32 and len(vertices) < 2**31:
        faces = faces.astype(np.int32)
    cell = Cell(int(root_id), vertices, faces, skeleton, label, description,
                {"request": request, "units": "nm",
                 "bbox": [vertices.min(axis=0).tolist(), vertices.max(axis=0).tolist()],
                 "steps": [s.get("step") for s in surface.metadata.get("steps", []) if isinstance(s, dict)]})
    registry = add_cells(out_dir, [cell], layer_options(options), overwrite=overwrite)
    return registry["cells"][str(root_id)]
