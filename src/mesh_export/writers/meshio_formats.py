"""Every other triangle-capable format meshio writes, registered from meshio's public table.

The list follows the installed meshio (``meshio.extension_to_filetypes``, plus the few writers
it registers without an extension); formats that cannot hold a triangle surface, or that
meshio cannot read back what it wrote, are left out with the reason beside them. A format
meshio only reads would be listed too: meshio 5.3 registers none.
"""

from __future__ import annotations

from mesh_export.errors import InvalidArgumentError
from mesh_export.model import kind_of
from mesh_export.writers.registry import SURFACE, VOLUME, Writer

# Formats the native writers own, or meshio aliases of them.
_NATIVE = {"obj", "off", "ply", "stl", "vtk", "vtk42", "vtk51", "vtu"}
_UNSUITABLE = {
    "svg": "2-D drawings only",
    "tetgen": "tetrahedra only; triangles are dropped",
    "flac3d": "3-D cells only; triangles are dropped",
    "su2": "meshio 5.3 fails on triangle cells",
    "ugrid": "meshio cannot read back what it writes",
    "cgns": "meshio cannot read back what it writes",
    "nastran": "meshio 5.3 asserts on negative coordinates of 1e5 and beyond (16-character fields)",
}
# Extensions shared by several meshio formats go to the one people mean.
_EXTENSION_OWNER = {".msh": "gmsh"}
_OPTIONAL_MODULES = {"exodus": "netCDF4"}
# meshio writers that register no extension, so its public table cannot list them (its list of
# writers, ``meshio._helpers._writer_map``, is private): the format -> the meshio module that
# writes it, offered while that module is there. Written, like the others, by the public
# ``meshio.write(..., file_format=name)``. (vtk42 and vtk51 are extension-less too: native.)
_WITHOUT_EXTENSION = {"gmsh22": "gmsh", "neuroglancer": "neuroglancer"}
# Formats that hold surface triangles only (no tetrahedra).
_SURFACE_ONLY = {"wkt", "neuroglancer"}
# Volume cells meshio's writer of a format holds, where not every kind (it fails on the others,
# or drops them without a word: h5m).
_VOLUME_CELLS_HELD = {"dolfin-xml": {"tetra"}, "h5m": {"tetra"}, "abaqus": {"tetra", "hexahedron", "wedge"},
                      "mdpa": {"tetra", "hexahedron", "wedge"}}
_DESCRIPTIONS = {
    "gmsh": "Gmsh 4.1 mesh; Gmsh, FEniCS, many FEM tools",
    "gmsh22": "Gmsh 2.2 mesh, for tools that predate 4.x",
    "xdmf": "XDMF (XML + HDF5); FEniCS, ParaView",
    "medit": "Medit mesh; MMG, FreeFEM",
    "abaqus": "Abaqus input file",
    "ansys": "ANSYS mesh (.msh: use --format ansys)",
}


def _module_available(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


def _make_write(file_format: str):
    def write(mesh, path) -> None:
        import meshio
        import numpy as np

        if kind_of(mesh) == SURFACE:  # volume meshes already are meshio's
            mesh = meshio.Mesh(np.asarray(mesh.vertices), [("triangle", np.asarray(mesh.faces))])
        else:
            mesh = _volume_for(mesh, file_format)
        meshio.write(path, mesh, file_format=file_format)

    return write


def _volume_for(mesh, file_format: str):
    """A volume mesh as meshio's writers take it: float64 points (Gmsh's binary writer warns and
    converts otherwise); refused where meshio's writer cannot take its cells."""
    import meshio
    import numpy as np

    types = {block.type for block in mesh.cells}
    held = _VOLUME_CELLS_HELD.get(file_format)
    if held and types - held:
        raise InvalidArgumentError(f"meshio's {file_format} writer holds only {', '.join(sorted(held))} cells; this "
                                   f"volume mesh has {', '.join(sorted(types - held))}: use vtu, xdmf or gmsh22")
    if file_format == "gmsh" and len(types) > 1:
        raise InvalidArgumentError(f"meshio writes Gmsh 4.1 with one cell type only, and this volume mesh has "
                                   f"{', '.join(sorted(types))}: use --format gmsh22 (Gmsh 2.2)")
    cell_data = {}
    if file_format == "gmsh22":  # else meshio warns that it writes zeros for the missing tags
        zeros = [np.zeros(len(block.data), dtype=np.int32) for block in mesh.cells]
        cell_data = {"gmsh:physical": zeros, "gmsh:geometrical": zeros}
    if np.asarray(mesh.points).dtype == np.float64 and not cell_data:
        return mesh
    return meshio.Mesh(np.asarray(mesh.points, dtype=np.float64), mesh.cells, cell_data=cell_data)


def _meshio_formats(meshio) -> tuple[set[str], dict[str, list[str]]]:
    """meshio's format names and each one's extensions, from its public table
    (``extension_to_filetypes``), plus the writers it registers with no extension."""
    names: set[str] = set()
    extensions: dict[str, list[str]] = {}
    for extension, owners in meshio.extension_to_filetypes.items():
        names.update(owners)
        if owners:
            extensions.setdefault(_EXTENSION_OWNER.get(extension, owners[0]), []).append(extension)
    names.update(name for name, module in _WITHOUT_EXTENSION.items() if hasattr(meshio, module))
    return names, extensions


def writers() -> list[Writer]:
    """A writer for each suitable meshio format, in name order (the catalogue registers those
    whose names no native writer took)."""
    import meshio

    names, extensions = _meshio_formats(meshio)
    found = []
    for name in sorted(names):
        if name in _NATIVE or name in _UNSUITABLE:
            continue
        needed = _OPTIONAL_MODULES.get(name)
        if needed and not _module_available(needed):
            continue
        found.append(Writer(
            name=name,
            extensions=tuple(extensions.get(name, ())),
            write=_make_write(name),
            accepts=(SURFACE,) if name in _SURFACE_ONLY else (SURFACE, VOLUME),
            backend="meshio",
            description=_DESCRIPTIONS.get(name, f"meshio's {name} writer"),
        ))
    return found
