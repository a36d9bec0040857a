"""Reading mesh files: which reader reads a file. The native numpy readers for PLY, STL, OBJ
and OFF sit beside their writers (``ply.read_ply``, ...), and so do those of VTK XML and
legacy VTK (``vtk_xml.read_vtk_xml``, ``vtk_legacy.read_legacy``; VTK itself reads the variants
they leave, when installed); trimesh reads the other formats it knows well (and the variants
the native readers leave to it), meshio the rest.

Files of cells (VTK's, meshio's) go through ``core.cells``: a file with volume cells is a
volume mesh (:func:`read_volume`, or :func:`read_any` when either will do), whose surface
(``read_surface``) is its boundary, recorded as a step; otherwise its surface cells are
triangulated and its lines and points dropped, counted in ``metadata["dropped_cells"]``.
SWC morphologies: :func:`read_swc` (from the model, where processing can reach it too)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from pathlib import Path

import numpy as np

from mesh_export.errors import InputError, InvalidMeshError, UnitsError
from mesh_export.core.units import normalize_units, set_mesh_units
from mesh_export.model import read_swc  # noqa: F401  (re-exported)
from mesh_export.model import VERTEX_ATTRIBUTES
from mesh_export.writers._read import NotNative, memory_bounded_by_file, noting

_VTK_FORMATS = {".vtp", ".vtu", ".vtk", ".vtm"}
_TRIMESH_FORMATS = {".stl", ".ply", ".obj", ".off", ".glb", ".gltf", ".3mf"}
_UNITS_IN_HEADER = re.compile(rb"units[= ]([A-Za-z]+)")
_TRIMESH_UNIT_NAMES = {"millimeters": "mm", "millimeter": "mm", "meters": "m", "microns": "um",
                       "micron": "um", "inches": None, "inch": None}


def native_reader(suffix: str):
    """The native reader for files ending in ``suffix`` (".ply"), or None. Imported here, on
    first use, because a format module brings its writer's imports along."""
    if suffix == ".ply":
        from mesh_export.writers.ply import read_ply as read
    elif suffix == ".stl":
        from mesh_export.writers.stl import read_stl as read
    elif suffix == ".obj":
        from mesh_export.writers.obj import read_obj as read
    elif suffix == ".off":
        from mesh_export.writers.off import read_off as read
    else:
        return None
    return read


def _units_from_header(path: Path) -> str | None:
    """Units recorded by mesh-export (or by a tool using the same ``units=`` convention)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    match = _UNITS_IN_HEADER.search(head)
    if not match:
        return None
    try:
        return normalize_units(match.group(1).decode())
    except Exception:
        return None


def is_morphology_file(path: str | os.PathLike) -> bool:
    """Is ``path`` a morphology (SWC, NeuroML2) rather than a surface mesh file."""
    return Path(path).suffix.lower() in (".swc", ".nml")


def read_morphology(path: str | os.PathLike):
    """An SWC (``read_swc``) or NeuroML2 (``neuroml.read_neuroml``) morphology as a Skeleton."""
    if Path(path).suffix.lower() == ".nml":
        from mesh_export.writers.neuroml import read_neuroml

        return read_neuroml(path)
    return read_swc(path)


def load(path: str | os.PathLike, units: str | None = None):
    """Read a surface mesh file into a ``trimesh.Trimesh`` (no processing, vertex order kept;
    an STL's corners merged where bit-identical), or an SWC file into a
    :class:`mesh_export.model.Skeleton` (micrometres, as :func:`read_swc` reads it: what it
    repaired in ``metadata["repairs"]``).

    ``units`` declares the file's units; without it they come from the file where it
    records them (mesh-export's own headers, 3MF) and are otherwise unknown (None).
    """
    if is_morphology_file(path):
        skeleton = read_morphology(path)
        if units:  # declared: the file's numbers are in these units
            skeleton.units = normalize_units(units)
        return skeleton
    return to_trimesh(*read_surface(path, units=units))


def read_surface(path: str | os.PathLike, units: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(vertices, faces, metadata)`` of a surface mesh file, as ``load`` reads it but without
    a trimesh.Trimesh: PLY, STL, OBJ and OFF come as the file stores them (float32 vertices
    stay float32, faces int32), for writers and figures that need no more. ``metadata`` has
    ``source`` and, when known, ``units``; ``vertex_attributes`` (model.VERTEX_ATTRIBUTES) the
    file's vertex colours and uv; ``read`` ``{"skipped": [sentences]}`` what a native reader left
    out or skipped (also said once on stderr).

    Refused: a damaged file (InputError naming the line or byte), NaN or infinite coordinates and
    face indices outside the vertices (InvalidMeshError naming the line or byte).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input file is not readable: {path}")
    suffix = path.suffix.lower()
    library_units = notes = library_arrays = None
    try:
        arrays = None
        native = native_reader(suffix)
        if native is not None:
            with noting() as noted:
                try:
                    arrays = native(path)
                except NotNative:
                    arrays = None  # a variant for trimesh
            if arrays is not None:
                notes = noted
                _check_read(path, *arrays, notes)
        if arrays is None and suffix in _TRIMESH_FORMATS:
            mesh = _load_trimesh(path)
            arrays = (np.asarray(mesh.vertices), np.asarray(mesh.faces))
            library_arrays = mesh.metadata.get(VERTEX_ATTRIBUTES)
            library_units = _threemf_units(path) if suffix == ".3mf" else _trimesh_units(mesh)
    except (InputError, InvalidMeshError):
        raise
    except MemoryError:
        raise InputError(f"cannot read {path} as a mesh: it needs more memory than there is") from None
    except Exception as exc:  # the libraries raise anything from ValueError to KeyError
        raise _unreadable(path, exc) from exc

    extra: dict = {}
    if arrays is None:
        cells = read_cells(path)
        if cells.is_volume():
            arrays, extra = _boundary_of(cells, str(path))
        else:
            arrays, extra = _surface_of(cells, str(path))
    metadata: dict = {"source": {"file": str(path)}, **extra}
    found = _units(path, units, library_units)
    if found:
        metadata["units"] = found
    if notes is not None and notes.vertex_attributes:
        metadata[VERTEX_ATTRIBUTES] = dict(notes.vertex_attributes)
    elif library_arrays:
        metadata[VERTEX_ATTRIBUTES] = dict(library_arrays)
    if notes is not None and notes.sentences():
        metadata["read"] = {"skipped": notes.sentences()}
        print(f"mesh-export: {path}: " + "; ".join(notes.sentences()), file=sys.stderr)
    return arrays[0], arrays[1], metadata


def _check_read(path: Path, vertices: np.ndarray, faces: np.ndarray, notes) -> None:
    """Refuse NaN or infinite coordinates and indices outside the vertices, naming the line or
    byte where the reader knows it; the slow search runs only for a file that fails."""
    # One pass each: a sum is NaN or infinite when a value is (float32 sums cannot overflow a
    # double), and negative indices are huge read as unsigned.
    # (A sum of finite float64 values can still overflow: then the rows themselves decide.)
    bad = (np.flatnonzero(~np.isfinite(vertices).all(axis=1))
           if len(vertices) and not np.isfinite(vertices.sum(dtype=np.float64)) else ())
    if len(bad):
        first = int(bad[0])
        place = notes.vertex_place(first) if notes.vertex_place else f"vertex {first:,}"
        raise InvalidMeshError(f"{path}: {place}: NaN or infinite coordinate (vertex {first:,})")
    unsigned = faces.view(np.uint32 if faces.dtype.itemsize == 4 else np.uint64) if faces.dtype.kind == "i" else faces
    if len(faces) and int(unsigned.max()) >= len(vertices):
        first = int(np.flatnonzero(((faces < 0) | (faces >= len(vertices))).any(axis=1))[0])
        place = notes.face_place(first) if notes.face_place else f"triangle {first:,}"
        raise InvalidMeshError(f"{path}: {place}: a face index outside the {len(vertices):,} vertices "
                               f"(0 to {len(vertices) - 1:,})")


def _units(path: Path, declared: str | None, library_units: str | None = None) -> str | None:
    declared = normalize_units(declared) if declared else None
    found = declared or _units_from_header(path) or library_units
    return normalize_units(found) if found else None


def _unreadable(path: Path, exc: Exception) -> InputError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(f"cannot read {path} as a mesh: {reason}")


def read_cells(path: str | os.PathLike):
    """The points and cells (``core.cells.Cells``) of a VTK file or of any format meshio reads."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in _VTK_FORMATS:
            if suffix == ".vtk":
                from mesh_export.writers.vtk_legacy import read_legacy as read
            elif suffix == ".vtm":
                from mesh_export.writers.vtk_scene import read_vtm as read
            else:
                from mesh_export.writers.vtk_xml import read_vtk_xml as read
            try:
                cells = read(path)
            except NotNative as exc:
                from mesh_export.writers._vtk_library import read_with_vtk

                cells = read_with_vtk(path, str(exc))
        else:
            from mesh_export.core.cells import Cells, blocks_of_meshio

            data = _load_meshio(path)
            cells = Cells(np.asarray(data.points)[:, :3], blocks_of_meshio(data))
        cells.check_indices(str(path))
        return cells
    except InputError:
        raise
    except Exception as exc:  # Damaged, and the libraries' anything from ValueError to KeyError
        raise _unreadable(path, exc) from exc


def _surface_of(cells, where: str) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    from mesh_export.core.cells import triangles_of
    from mesh_export.writers._vtk_library import vtk_polygon_triangles

    # Polygons of four corners and more as VTK cuts them where VTK is installed, else fanned.
    triangles, dropped = triangles_of(cells, where, polygons=vtk_polygon_triangles)
    if len(triangles) == 0 and dropped:
        listed = ", ".join(f"{count:,} {name.replace('_', ' ')}" for name, count in sorted(dropped.items()))
        raise InputError(f"{where} holds no surface or volume cells, only {listed}")
    return (cells.points, triangles), ({"dropped_cells": dropped} if dropped else {})


def boundary_surface(mesh):
    """The boundary of a volume mesh (``meshio.Mesh`` as :func:`read_volume` gives it) as a
    ``model.CachedSurface``, the step recorded in its metadata."""
    from mesh_export.core.cells import Cells, blocks_of_meshio
    from mesh_export.model import CachedSurface

    metadata = dict(getattr(mesh, "metadata", None) or {})
    where = str((metadata.get("source") or {}).get("file", "volume mesh"))
    (vertices, faces), extra = _boundary_of(Cells(np.asarray(mesh.points), blocks_of_meshio(mesh)), where)
    metadata["steps"] = [*metadata.get("steps", []), *extra["steps"]]
    return CachedSurface(vertices, faces, metadata)


def _boundary_of(cells, where: str) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """A volume mesh's boundary as the surface, its unused points left out; the step recorded."""
    from mesh_export.core.cells import boundary, cell_volumes, volume_blocks

    blocks, aside = volume_blocks(cells, where)
    triangles = boundary(cells.points, blocks)
    used = np.unique(triangles)
    remap = np.zeros(len(cells.points), dtype=triangles.dtype)
    remap[used] = np.arange(len(used), dtype=triangles.dtype)
    record = {"step": "boundary", "reason": "a volume mesh written to a surface format: its boundary",
              "cells": {name: int(len(data)) for name, data in blocks},
              "volume": float(sum(cell_volumes(cells.points, name, data).sum() for name, data in blocks)),
              "faces": int(len(triangles))}
    extra: dict = {"steps": [record]}
    if aside:
        extra["dropped_cells"] = aside
    return (cells.points[used], remap[triangles]), extra


def read_volume(path: str | os.PathLike, units: str | None = None):
    """A volume mesh file (tetrahedra, hexahedra, wedges, pyramids: any file with volume cells,
    quadratic ones by their corners) as a ``meshio.Mesh`` of linear cells; ``metadata`` has
    ``source``, ``units`` when known and ``dropped_cells`` (the surface, line and point cells
    left aside). Raises InputError for a file without volume cells."""
    data = read_any(path, units)
    if not hasattr(data, "points"):
        raise InputError(f"{path} holds no volume cells (a surface mesh)")
    return data


def read_any(path: str | os.PathLike, units: str | None = None):
    """A volume mesh (``meshio.Mesh``, as :func:`read_volume`) when the file holds volume cells,
    else the surface as ``model.CachedSurface`` (as :func:`read_surface` reads it)."""
    from mesh_export.model import CachedSurface

    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file() or suffix in _TRIMESH_FORMATS or native_reader(suffix) is not None:
        return CachedSurface(*read_surface(path, units=units))
    cells = read_cells(path)
    if not cells.is_volume():
        arrays, extra = _surface_of(cells, str(path))
        metadata = {"source": {"file": str(path)}, **extra}
        found = _units(path, units)
        if found:
            metadata["units"] = found
        return CachedSurface(arrays[0], arrays[1], metadata)
    import meshio

    from mesh_export.core.cells import volume_blocks

    blocks, aside = volume_blocks(cells, str(path))
    mesh = meshio.Mesh(cells.points, blocks)
    mesh.metadata = {"source": {"file": str(path)}, "units": _units(path, units), "steps": []}
    if aside:
        mesh.metadata["dropped_cells"] = aside
    return mesh


def to_trimesh(vertices, faces, metadata: dict):
    """A ``trimesh.Trimesh`` (no processing) of arrays and metadata from ``read_surface``."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    mesh.metadata.update({k: v for k, v in metadata.items() if k != "units"})
    set_mesh_units(mesh, metadata.get("units"))
    return mesh


_THREEMF_UNIT = re.compile(rb"<(?:\w+:)?model\b[^>]*?\sunit\s*=\s*[\"']([A-Za-z]+)[\"']")


def _threemf_units(path: Path) -> str:
    """The unit of a 3MF's model (core spec: micron, millimeter, centimeter, inch, foot, meter;
    millimeter when the model says none). trimesh reads the geometry but keeps no unit."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        models = [n for n in archive.namelist() if n.lower().endswith(".model")]
        name = next((n for n in models if n.lower() == "3d/3dmodel.model"), models[0] if models else None)
        if name is None:
            return "mm"
        with archive.open(name) as model:
            head = model.read(1 << 16)
    match = _THREEMF_UNIT.search(head)
    if not match:
        return "mm"
    try:
        return normalize_units(match.group(1).decode())
    except UnitsError:
        raise InputError(f"{path}: the 3MF model's unit {match.group(1).decode()!r} is none of micron, millimeter, "
                         "centimeter, inch, foot, meter") from None


def _trimesh_units(mesh) -> str | None:
    units = mesh.metadata.get("units")
    if units is None:
        return None
    units = str(units).lower()
    return _TRIMESH_UNIT_NAMES.get(units, units if units in ("nm", "um", "mm", "m") else None)


def _load_trimesh(path: Path):
    import trimesh

    if path.suffix.lower() == ".glb":
        from mesh_export.writers.gltf import check_glb

        check_glb(path)
    loaded = trimesh.load(path, process=False, force="mesh")
    if not isinstance(loaded, trimesh.Trimesh):
        raise InputError(f"{path} holds no triangle mesh")
    units = loaded.metadata.get("units")
    arrays = _trimesh_vertex_arrays(loaded)
    if path.suffix.lower() in (".glb", ".gltf"):
        stated, texture_coordinates = _gltf_facts(path)
        units = stated or units
        if not texture_coordinates:  # uv trimesh made up packing several materials into one atlas
            arrays.pop("uv", None)
    mesh = trimesh.Trimesh(vertices=loaded.vertices, faces=loaded.faces, process=False)
    if units is not None:
        mesh.metadata["units"] = units
    if arrays:
        mesh.metadata[VERTEX_ATTRIBUTES] = arrays
    return mesh


def _gltf_facts(path: Path) -> tuple[str | None, bool]:
    """A glTF's stated units (``asset.extras.units``, as mesh-export writes them: glTF's own unit
    is the metre, and a file of ours in mm says so) and whether any primitive has TEXCOORD_0."""
    import json
    import struct

    try:
        if path.suffix.lower() == ".glb":
            with open(path, "rb") as handle:
                head = handle.read(20)
                length = struct.unpack("<I", head[12:16])[0]  # the JSON chunk (check_glb bounded it)
                tree = json.loads(handle.read(length))
        else:
            with open(path, "rb") as handle:
                tree = json.load(handle)
    except (OSError, ValueError, struct.error):
        return None, True
    extras = (tree.get("asset") or {}).get("extras") or {}
    units = extras.get("units") if isinstance(extras, dict) else None
    try:
        units = normalize_units(units) if isinstance(units, str) else None
    except UnitsError:
        units = None
    texture = any("TEXCOORD_0" in (primitive.get("attributes") or {})
                  for mesh in tree.get("meshes") or [] for primitive in mesh.get("primitives") or [])
    return units, texture


def _trimesh_vertex_arrays(loaded) -> dict[str, np.ndarray]:
    """The vertex colours (uint8 RGBA) and uv (float32) trimesh read from a file (glTF, and the
    variants of the native formats it reads), under the model's names."""
    visual, arrays = loaded.visual, {}
    if visual.kind == "vertex":
        arrays["color"] = np.asarray(visual.vertex_colors, dtype=np.uint8)
    uv = getattr(visual, "uv", None)
    if visual.kind == "texture" and uv is not None and len(uv) == len(loaded.vertices):
        arrays["uv"] = np.asarray(uv, dtype=np.float32)
    return arrays


def _load_meshio(path: Path):
    import meshio

    candidates = _meshio_formats_for(meshio, path)
    if not candidates:
        raise InputError(f"unknown mesh file type: {path}")
    errors = []
    size = path.stat().st_size
    for file_format in candidates:
        try:
            with memory_bounded_by_file(size):
                return _meshio_read(meshio, path, file_format)
        except MemoryError:
            raise InputError(f"cannot read {path} as a mesh: it declares more than a file of {size:,} bytes "
                             "can hold (the reader asked for more memory than that)") from None
        except Exception as exc:
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    raise InputError(f"cannot read {path} as a mesh: {errors[-1] if errors else 'unknown format'}")


def _meshio_formats_for(meshio, path: Path) -> list[str]:
    """meshio's formats for ``path``'s extensions, the last suffix's first (".gz", then
    ".vol.gz"), as meshio itself tries them."""
    found, extension = [], ""
    for suffix in reversed(path.suffixes):
        extension = (suffix + extension).lower()
        found += meshio.extension_to_filetypes.get(extension, [])
    return found


# meshio.read reports a file it cannot parse by printing the reason to stdout, then an error
# to stderr, and calling sys.exit(1). The streams are swapped for the call so that the reason
# becomes the InputError and neither line shows (a .msh is tried as ANSYS before Gmsh);
# meshio's warnings still reach stderr. The lock keeps threads from swapping them over each
# other.
_QUIET = threading.Lock()
_MESHIO_ERROR = re.compile(r"^Error: ", re.MULTILINE)


def _meshio_read(meshio, path: Path, file_format: str):
    printed, warned = io.StringIO(), io.StringIO()
    failed = False
    with _QUIET:
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(warned):
                try:
                    return meshio.read(path, file_format=file_format)
                except SystemExit:
                    failed = True
        finally:
            said = warned.getvalue()
            if failed:  # meshio's closing error is the last thing it wrote there
                closing = list(_MESHIO_ERROR.finditer(said))
                said = said[: closing[-1].start()] if closing else said
            sys.stderr.write(said)
            if not failed:
                sys.stdout.write(printed.getvalue())
    reason = printed.getvalue()
    raise meshio.ReadError(reason[:-1] if reason.endswith("\n") else reason)
