"""Every other triangle-capable format meshio writes, registered from meshio's own tables.

The list follows the installed meshio; formats that cannot hold a triangle surface, or that
meshio cannot read back what it wrote, are left out with the reason beside them.
"""

from __future__ import annotations

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
# Formats that hold surface triangles only (no tetrahedra).
_SURFACE_ONLY = {"wkt", "neuroglancer"}
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

        if not isinstance(mesh, meshio.Mesh):  # a surface; volume meshes already are meshio's
            mesh = meshio.Mesh(np.asarray(mesh.vertices), [("triangle", np.asarray(mesh.faces))])
        meshio.write(path, mesh, file_format=file_format)

    return write


def register_all(registry: dict[str, Writer]) -> None:
    import meshio
    from meshio._helpers import _writer_map

    extensions: dict[str, list[str]] = {}
    for extension, owners in meshio.extension_to_filetypes.items():
        owner = _EXTENSION_OWNER.get(extension, owners[0])
        extensions.setdefault(owner, []).append(extension)

    for name in sorted(_writer_map):
        if name in _NATIVE or name in _UNSUITABLE or name in registry:
            continue
        needed = _OPTIONAL_MODULES.get(name)
        if needed and not _module_available(needed):
            continue
        registry[name] = Writer(
            name=name,
            extensions=tuple(extensions.get(name, ())),
            write=_make_write(name),
            accepts=(SURFACE,) if name in _SURFACE_ONLY else (SURFACE, VOLUME),
            backend="meshio",
            description=_DESCRIPTIONS.get(name, f"meshio's {name} writer"),
        )
