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
    """Write ``mesh`` (a trimesh.Trimesh) to ``path``; the format from ``format`` or the extension.

    The file appears under its name only once complete; an existing file is replaced only
    with ``overwrite=True``. Returns the path written.
    """
    writer = writer_for_path(path, format)
    if SURFACE not in writer.accepts:
        raise InvalidArgumentError(f"format {writer.name!r} does not take a surface mesh")
    options = check_options(writer, options)
    check_surface(mesh)
    target = check_target(path, overwrite)
    suffix = next((ext for ext in writer.extensions if target.name.lower().endswith(ext)), "")
    try:
        with atomic_output(target, overwrite, suffix=suffix) as tmp:
            writer.write(mesh, str(tmp), **options)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except MeshExportError:
        raise
    except Exception as exc:  # a third-party writer failing on this mesh
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OutputError(f"the {writer.name} writer ({writer.backend}) failed: {detail}") from exc
    return target


def convert(source: str | os.PathLike, target: str | os.PathLike, format: str | None = None,
            units_in: str | None = None, units: str | None = None, scale: float | None = None,
            overwrite: bool = False, **options: Any) -> Path:
    """Read ``source``, optionally convert units and scale, write ``target``."""
    from . import steps

    writer = writer_for_path(target, format)  # fail on a bad format before reading anything
    check_options(writer, options)
    check_target(target, overwrite)
    mesh = load(source, units=units_in)
    if units:
        mesh = steps.convert_units(mesh, units)
    if scale is not None:
        mesh = steps.scale(mesh, scale)
    return write(mesh, target, format=writer.name, overwrite=overwrite, **options)
