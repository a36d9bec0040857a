"""Reading mesh files: trimesh for the formats it knows well, meshio for the rest."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InputError
from .units import normalize_units, set_mesh_units

_TRIMESH_FORMATS = {".stl", ".ply", ".obj", ".off", ".glb", ".gltf", ".3mf"}
_UNITS_IN_HEADER = re.compile(rb"units[= ]([A-Za-z]+)")
_TRIMESH_UNIT_NAMES = {"millimeters": "mm", "millimeter": "mm", "meters": "m", "microns": "um",
                       "micron": "um", "inches": None, "inch": None}


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


def load(path: str | os.PathLike, units: str | None = None):
    """Read a surface mesh file into a ``trimesh.Trimesh`` (no processing, vertex order kept).

    ``units`` declares the file's units; without it they come from the file where it
    records them (mesh-export's own headers, 3MF) and are otherwise unknown (None).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input file is not readable: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in _TRIMESH_FORMATS:
            mesh = _load_trimesh(path)
        else:
            mesh = _load_meshio(path)
    except InputError:
        raise
    except Exception as exc:  # the libraries raise anything from ValueError to KeyError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read {path} as a mesh: {reason}") from exc

    declared = normalize_units(units) if units else None
    set_mesh_units(mesh, declared or _units_from_header(path) or _trimesh_units(mesh))
    mesh.metadata["source"] = {"file": str(path)}
    return mesh


def _trimesh_units(mesh) -> str | None:
    units = mesh.metadata.get("units")
    if units is None:
        return None
    units = str(units).lower()
    return _TRIMESH_UNIT_NAMES.get(units, units if units in ("nm", "um", "mm", "m") else None)


def _load_trimesh(path: Path):
    import trimesh

    loaded = trimesh.load(path, process=False, force="mesh")
    if not isinstance(loaded, trimesh.Trimesh):
        raise InputError(f"{path} holds no triangle mesh")
    units = loaded.metadata.get("units")
    mesh = trimesh.Trimesh(vertices=loaded.vertices, faces=loaded.faces, process=False)
    if units is not None:
        mesh.metadata["units"] = units
    return mesh


def _load_meshio(path: Path):
    import trimesh
    from meshio._helpers import _filetypes_from_path, reader_map

    # Not meshio.read(): on a file it cannot parse, it prints and calls sys.exit(1).
    try:
        candidates = _filetypes_from_path(path)
    except Exception as exc:
        raise InputError(f"unknown mesh file type: {path}") from exc
    errors = []
    for file_format in candidates:
        try:
            data = reader_map[file_format](str(path))
            break
        except (Exception, SystemExit) as exc:
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    else:
        if path.suffix.lower() == ".vtk" and any("POLYDATA" in e for e in errors):
            return _load_vtk_polydata(path)
        raise InputError(f"cannot read {path} as a mesh: {errors[-1] if errors else 'unknown format'}")
    faces = _triangulate_meshio(data)
    return trimesh.Trimesh(vertices=data.points[:, :3], faces=faces, process=False)


def _load_vtk_polydata(path: Path):
    """Legacy VTK POLYDATA, which meshio cannot read, through VTK itself (optional extra)."""
    try:
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkFiltersCore import vtkTriangleFilter
        from vtkmodules.vtkIOLegacy import vtkPolyDataReader
    except ImportError:
        raise InputError(f"{path} is legacy VTK POLYDATA, which needs the optional 'vtk' package "
                         "(pip install 'mesh-export[vtk]')") from None
    import trimesh

    reader = vtkPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    triangulate = vtkTriangleFilter()
    triangulate.SetInputConnection(reader.GetOutputPort())
    triangulate.PassLinesOff()
    triangulate.PassVertsOff()
    triangulate.Update()
    polydata = triangulate.GetOutput()
    if polydata.GetPoints() is None:
        raise InputError(f"{path} holds no points")
    vertices = vtk_to_numpy(polydata.GetPoints().GetData())
    faces = vtk_to_numpy(polydata.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
