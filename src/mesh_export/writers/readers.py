"""Reading mesh files: which reader reads a file. The native numpy readers for PLY, STL, OBJ
and OFF sit beside their writers (``ply.read_ply``, ...); trimesh reads the other formats it
knows well (and the variants the native readers leave to it), meshio the rest, and VTK the
legacy POLYDATA meshio cannot (``vtk_legacy.read_polydata``).
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
from mesh_export.writers._read import NotNative, noting

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


def _triangulate_meshio(mesh):
    import numpy as np

    pieces = []
    for block in mesh.cells:
        data = np.asarray(block.data)
        if block.type == "triangle":
            pieces.append(data)
        elif block.type == "quad":
            pieces.append(data[:, [0, 1, 2]])
            pieces.append(data[:, [0, 2, 3]])
        elif block.type == "polygon" and data.shape[1] >= 3:
            for k in range(1, data.shape[1] - 1):
                pieces.append(data[:, [0, k, k + 1]])
    if not pieces:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(pieces)


def is_morphology_file(path: str | os.PathLike) -> bool:
    """Is ``path`` a morphology (SWC) rather than a surface mesh file."""
    return Path(path).suffix.lower() == ".swc"


def load(path: str | os.PathLike, units: str | None = None):
    """Read a surface mesh file into a ``trimesh.Trimesh`` (no processing, vertex order kept;
    an STL's corners merged where bit-identical), or an SWC file into a
    :class:`mesh_export.model.Skeleton` (micrometres, as :func:`read_swc` reads it: what it
    repaired in ``metadata["repairs"]``).

    ``units`` declares the file's units; without it they come from the file where it
    records them (mesh-export's own headers, 3MF) and are otherwise unknown (None).
    """
    if is_morphology_file(path):
        skeleton = read_swc(path)
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
        if arrays is None:
            mesh = _load_trimesh(path) if suffix in _TRIMESH_FORMATS else _load_meshio(path)
            arrays = (np.asarray(mesh.vertices), np.asarray(mesh.faces))
            library_arrays = mesh.metadata.get(VERTEX_ATTRIBUTES)
            library_units = _threemf_units(path) if suffix == ".3mf" else _trimesh_units(mesh)
    except (InputError, InvalidMeshError):
        raise
    except MemoryError:
        raise InputError(f"cannot read {path} as a mesh: it needs more memory than there is") from None
    except Exception as exc:  # the libraries raise anything from ValueError to KeyError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read {path} as a mesh: {reason}") from exc

    declared = normalize_units(units) if units else None
    metadata: dict = {"source": {"file": str(path)}}
    found = declared or _units_from_header(path) or library_units
    if found:
        metadata["units"] = normalize_units(found)
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
    if len(vertices) and not np.isfinite(vertices.sum(dtype=np.float64)):
        first = int(np.flatnonzero(~np.isfinite(vertices).all(axis=1))[0])
        place = notes.vertex_place(first) if notes.vertex_place else f"vertex {first:,}"
        raise InvalidMeshError(f"{path}: {place}: NaN or infinite coordinate (vertex {first:,})")
    unsigned = faces.view(np.uint32 if faces.dtype.itemsize == 4 else np.uint64) if faces.dtype.kind == "i" else faces
    if len(faces) and int(unsigned.max()) >= len(vertices):
        first = int(np.flatnonzero(((faces < 0) | (faces >= len(vertices))).any(axis=1))[0])
        place = notes.face_place(first) if notes.face_place else f"triangle {first:,}"
        raise InvalidMeshError(f"{path}: {place}: a face index outside the {len(vertices):,} vertices "
                               f"(0 to {len(vertices) - 1:,})")


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
    mesh = trimesh.Trimesh(vertices=loaded.vertices, faces=loaded.faces, process=False)
    if units is not None:
        mesh.metadata["units"] = units
    arrays = _trimesh_vertex_arrays(loaded)
    if arrays:
        mesh.metadata[VERTEX_ATTRIBUTES] = arrays
    return mesh


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
    import trimesh

    candidates = _meshio_formats_for(meshio, path)
    if not candidates:
        raise InputError(f"unknown mesh file type: {path}")
    errors = []
    for file_format in candidates:
        try:
            data = _meshio_read(meshio, path, file_format)
            break
        except Exception as exc:
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    else:
        if path.suffix.lower() == ".vtk" and any("POLYDATA" in e for e in errors):
            from mesh_export.writers.vtk_legacy import read_polydata

            return read_polydata(path)
        raise InputError(f"cannot read {path} as a mesh: {errors[-1] if errors else 'unknown format'}")
    faces = _triangulate_meshio(data)
    return trimesh.Trimesh(vertices=data.points[:, :3], faces=faces, process=False)


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
