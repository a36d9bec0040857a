"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mesh_export.core.atomic import check_target
from mesh_export.writers import output
from mesh_export.writers.readers import load
from mesh_export.core.options import check_options
from mesh_export.writers.catalog import all_writers, writer_for_path

__all__ = ["load", "write", "formats", "convert"]


def write(mesh, path: str | os.PathLike, format: str | None = None, overwrite: bool = False,
          **options: Any) -> Path:
    """Write ``mesh`` (a trimesh.Trimesh, or a mesh_export.model.Skeleton for morphology
    formats) to ``path``; the format from ``format`` or the extension. A surface mesh written
    to a morphology format (swc, hoc, neuroml) is skeletonized first with default settings.

    The file appears under its name only once complete; an existing file is replaced only
    with ``overwrite=True``. Returns the path written.
    """
    from mesh_export.process.skeleton import skeleton_for_writer

    writer = writer_for_path(path, format)
    options = check_options(writer, options)  # a bad option fails before a skeletonization
    return output.write(skeleton_for_writer(mesh, writer), path, format, overwrite, **options)


def formats() -> list[dict[str, Any]]:
    """Every registered writer: name, extensions, what it accepts, modes, options."""
    return [writer.describe() for writer in all_writers()]


def convert(source: str | os.PathLike, target: str | os.PathLike, format: str | None = None,
            units_in: str | None = None, units: str | None = None, scale: float | None = None,
            overwrite: bool = False, steps=None, return_mesh: bool = False, **options: Any):
    """Read ``source``, apply ``steps`` (a ``StepOptions``; ``units``/``scale`` are shortcuts),
    write ``target``. Returns the path written (and the mesh written, with ``return_mesh``: a
    trimesh.Trimesh, or without steps to a binary native format the arrays as read, in an
    ``export.CachedSurface``)."""
    from mesh_export.jobs.export import units_for_writer
    from mesh_export.model import CachedSurface
    from mesh_export.writers.readers import read_surface, to_trimesh
    from mesh_export.process.steps import apply_steps, plan_for_writer

    writer = writer_for_path(target, format)  # fail on a bad format before reading anything
    steps, options = plan_for_writer(steps, writer, options, units=units, scale=scale)
    check_target(target, overwrite)
    vertices, faces, metadata = read_surface(source, units=units_in)
    # As for a cached mesh: a binary native writer takes the arrays as read (float32/int32);
    # a trimesh.Trimesh would widen both to 64 bits only for the writer to narrow them again.
    if writer.checks_values and not options.get("ascii") and not steps.changes_mesh():
        mesh = CachedSurface(vertices, faces, metadata)
    else:
        mesh = units_for_writer(apply_steps(to_trimesh(vertices, faces, metadata), steps), writer)
    written = write(mesh, target, format=writer.name, overwrite=overwrite, **options)
    return (written, mesh) if return_mesh else written
