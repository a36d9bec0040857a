"""Writing one mesh, skeleton or volume mesh to a file, atomically, checked against its writer."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mesh_export.core.atomic import atomic_output, check_target
from mesh_export.core.options import check_options
from mesh_export.core.validate import check_surface, check_volume
from mesh_export.errors import InvalidArgumentError, MeshExportError, OutputError
from mesh_export.model import SCENE, SKELETON, SURFACE, VERTEX_ATTRIBUTES, VOLUME, element_attributes, kind_of
from mesh_export.writers.catalog import writer_for_path


def write(mesh, path: str | os.PathLike, format: str | None = None, overwrite: bool = False,
          **options: Any) -> Path:
    """Write ``mesh`` (a mesh_export.model.Surface such as a trimesh.Trimesh, a Skeleton for
    morphology formats, a tetrahedral meshio.Mesh for volume formats) to ``path``; the format from ``format`` or the extension. A morphology format
    (swc, hoc, neuroml) takes a Skeleton: ``mesh_export.write`` skeletonizes a surface first.

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
    _say_not_written(mesh, writer)
    return target


def write_pieces(pieces: list, target: Path, writer, overwrite: bool, units: str) -> tuple[Path, int]:
    """A mesh given as the unmerged pieces a fetch decoded (``(vertices, faces)`` each, checked)
    written by a writer that needs no merge (``Writer.write_pieces``: binary STL) to ``target``,
    atomically; returns the path and the faces written."""
    from mesh_export.writers._mesh import tool_line

    try:
        with atomic_output(target, overwrite, checked=True) as tmp:
            faces = writer.write_pieces(pieces, str(tmp), tool_line(units))
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except MeshExportError:
        raise
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OutputError(f"the {writer.name} writer ({writer.backend}) failed: {detail}") from exc
    return target, faces


# The per-vertex arrays each built-in format holds (model.VERTEX_ATTRIBUTES); a mesh's others are
# left out of its file, which is said once on stderr and recorded in metadata["not_written"]
# (convert --json and an export's sidecar list it).
VERTEX_ARRAYS_WRITTEN = {"ply": ("color", "uv"), "obj": ("color", "uv"), "glb": ("color", "uv"),
                         "gltf": ("color", "uv"), "vtp": ("color",), "vtu": ("color",)}


def _say_not_written(mesh, writer) -> None:
    if kind_of(mesh) != SURFACE:
        return
    arrays = element_attributes(mesh, VERTEX_ATTRIBUTES)
    held = VERTEX_ARRAYS_WRITTEN.get(writer.name, ())
    if writer.name in ("glb", "gltf") and arrays:
        from mesh_export.writers.gltf_scene import is_scene_data

        # trimesh's exporter writes a visual: uv or colours, not both; our labelled glTF neither.
        held = () if is_scene_data(mesh) else (("uv",) if "uv" in arrays else ("color",))
    lost = sorted(set(arrays) - set(held))
    said = []
    if lost:
        said.append(f"per-vertex {' and '.join(lost)} not written: {writer.name} "
                    + (f"holds only {', '.join(held)}" if held else "holds none"))
    colour = arrays.get("color")
    if writer.name == "obj" and colour is not None and colour.shape[1] == 4 and (colour[:, 3] != 255).any():
        said.append("the per-vertex colours' alpha not written: obj's v lines hold r g b")
    if said:
        mesh.metadata["not_written"] = said
        print(f"mesh-export: {'; '.join(said)}", file=sys.stderr)


def _prepare(data, writer):
    """Check ``data`` against what ``writer`` accepts. A Skeleton is validated."""
    kind = kind_of(data)
    if kind == SCENE:
        if SCENE not in writer.accepts:
            raise InvalidArgumentError(f"format {writer.name!r} cannot hold a scene of several cells; "
                                       "use glb, gltf or vtm")
        if not data.cells:
            raise InvalidArgumentError("the scene has no cells")
        for cell in data.cells:  # values: by the writer, after it has checked the size from the counts
            check_surface(cell, values=False)
        return data
    if kind == VOLUME:
        if VOLUME not in writer.accepts:
            raise InvalidArgumentError(f"format {writer.name!r} cannot hold a tetrahedral mesh")
        check_volume(data)
        return data
    is_skeleton = kind == SKELETON
    if SKELETON in writer.accepts:
        if is_skeleton:
            data.validate()
            return data
        if SURFACE not in writer.accepts:
            # Skeletonizing is processing, a layer above: mesh_export.write does it first.
            raise InvalidArgumentError(f"format {writer.name!r} takes a skeleton: skeletonize the surface first "
                                       "(mesh_export.write does, with the default settings)")
    elif is_skeleton:
        raise InvalidArgumentError(f"format {writer.name!r} does not take a skeleton")
    if SURFACE not in writer.accepts:
        raise InvalidArgumentError(f"format {writer.name!r} does not take a surface mesh")
    check_surface(data, values=not writer.checks_values)
    return data
