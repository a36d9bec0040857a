"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .atomic import atomic_output, check_target
from .errors import InvalidArgumentError, MeshExportError, OutputError
from .readers import load
from .validate import check_surface
from .writers.registry import SURFACE, all_writers, check_options, writer_for_path

__all__ = ["load", "write", "formats", "convert"]


def formats() -> list[dict[str, Any]]:
    """Every registered writer: name, extensions, what it accepts, modes, options."""
    return [writer.describe() for writer in all_writers()]


def write(mesh, path: str | os.PathLike, format: str | None = None, overwrite: bool = False,
          **options: Any) -> Path:
    """Write ``mesh`` (a trimesh.Trimesh, or a mesh_export.skeleton.Skeleton for morphology
    formats) to ``path``; the format from ``format`` or the extension. A surface mesh written
    to a morphology format (swc, hoc, neuroml) is skeletonized first with default settings.

    The file appears under its name only once complete; an existing file is replaced only
    with ``overwrite=True``. Returns the path written.
    """
    writer = writer_for_path(path, format)
    options = check_options(writer, options)
    mesh = _prepare(mesh, writer)
    target = check_target(path, overwrite)
    suffix = next((ext for ext in writer.extensions if target.name.lower().endswith(ext)), "")
    try:
        with atomic_output(target, overwrite, suffix=suffix, checked=True) as tmp:
            writer.write(mesh, str(tmp), **options)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except MeshExportError:
        raise
    except Exception as exc:  # a third-party writer failing on this mesh
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OutputError(f"the {writer.name} writer ({writer.backend}) failed: {detail}") from exc
    return target


def _prepare(data, writer):
    """Check ``data`` against what ``writer`` accepts. A Skeleton is validated; a surface mesh
    given to a skeleton-only format is skeletonized with the default settings."""
    from .volume import check_volume, is_volume_mesh
    from .writers.registry import SKELETON, VOLUME

    if is_volume_mesh(data):
        if VOLUME not in writer.accepts:
            raise InvalidArgumentError(f"format {writer.name!r} cannot hold a tetrahedral mesh")
        check_volume(data)
        return data
    from_skeleton_module = type(data).__module__ == "mesh_export.skeleton"
    if SKELETON in writer.accepts:
        if from_skeleton_module:
            data.validate()
            return data
        if SURFACE not in writer.accepts:
            from .skeleton import skeletonize

            check_surface(data)
            return skeletonize(data)
    elif from_skeleton_module:
        raise InvalidArgumentError(f"format {writer.name!r} does not take a skeleton")
    if SURFACE not in writer.accepts:
        raise InvalidArgumentError(f"format {writer.name!r} does not take a surface mesh")
    check_surface(data, values=not writer.checks_values)
    return data


def convert(source: str | os.PathLike, target: str | os.PathLike, format: str | None = None,
            units_in: str | None = None, units: str | None = None, scale: float | None = None,
            overwrite: bool = False, steps=None, return_mesh: bool = False, **options: Any):
    """Read ``source``, apply ``steps`` (a ``StepOptions``; ``units``/``scale`` are shortcuts),
    write ``target``. Returns the path written (and the mesh written, with ``return_mesh``: a
    trimesh.Trimesh, or without steps to a binary native format the arrays as read, in an
    ``export.CachedSurface``)."""
    from .export import CachedSurface, units_for_writer
    from .readers import read_surface, to_trimesh
    from .steps import apply_steps, plan_for_writer

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
