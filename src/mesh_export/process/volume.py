"""Tetrahedral volume meshes for mesh-based solvers (STEPS, FEniCS, ...).

The volume type is meshio's ``Mesh`` with one ``tetra`` cell block: the type every solver
reader already knows, rather than a class of our own. TetGen (through the ``tetgen`` wheel;
the bundled TetGen is AGPL, so it is the optional ``volume`` extra) meshes a closed
surface; a surface that is not watertight is first rebuilt by voxel remeshing.
"""

from __future__ import annotations

import numpy as np

from mesh_export.errors import InvalidMeshError, MeshExportError, VolumeMeshError  # noqa: F401
# Re-exported: writers check volumes too, and sit below process.
from mesh_export.core.validate import check_volume  # noqa: F401


def tet_volumes(points: np.ndarray, tetra: np.ndarray) -> np.ndarray:
    a, b, c, d = (points[tetra[:, k]] for k in range(4))
    return np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a) / 6.0


def tetrahedralize(mesh, *, max_volume: float | None = None, quality: bool = True,
                   max_memory=None, pitch: float | None = None):
    """A tetrahedral mesh of the inside of ``mesh`` (made watertight first if it is not).

    ``pitch`` is the voxel size of that rebuild (as ``--watertight``'s; None: chosen from the
    mesh's size). ``max_volume`` caps the element volume (in the mesh's units cubed); ``quality`` asks
    TetGen for a bounded radius-edge ratio. Units and provenance carry over in
    ``mesh_out.info``-style fields of the returned meshio.Mesh (``field_data`` is left for
    solver tags).
    """
    try:
        import tetgen
    except ImportError:
        raise VolumeMeshError("tetrahedral meshes need the optional 'volume' extra: "
                              "pip install 'mesh-export[volume]' (TetGen, AGPL)") from None
    import meshio

    from mesh_export.process.remesh import watertight

    steps = list(mesh.metadata.get("steps", []))
    surface = mesh
    if not mesh.is_watertight or not mesh.is_volume:
        surface = watertight(mesh, pitch=pitch, max_memory=max_memory)
        steps = list(surface.metadata.get("steps", []))
    if max_volume is not None and not max_volume > 0:
        raise InvalidMeshError(f"--max-tet-volume must be positive, got {max_volume}")
    generator = tetgen.TetGen(np.asarray(surface.vertices, dtype=np.float64),
                              np.asarray(surface.faces, dtype=np.int32))
    try:
        nodes, elements, *_ = generator.tetrahedralize(
            quality=quality, minratio=1.5 if quality else 2.0,
            maxvolume=float(max_volume) if max_volume else -1.0, quiet=True, nowarning=True)
    except RuntimeError as exc:
        raise VolumeMeshError(f"TetGen could not mesh this surface: {exc}") from None
    elements = np.asarray(elements, dtype=np.int64)
    volumes = tet_volumes(nodes, elements)
    flipped = volumes < 0
    if flipped.any():  # consistent positive orientation for every solver
        elements[flipped] = elements[flipped][:, [0, 2, 1, 3]]
        volumes = np.abs(volumes)
    out = meshio.Mesh(nodes, [("tetra", elements)])
    record = {"step": "tetrahedralize", "tool": "tetgen", "elements": int(len(elements)),
              "nodes": int(len(nodes)), "volume": float(volumes.sum()),
              "surface_volume": float(surface.volume), "max_volume": max_volume, "quality": quality}
    # meshio.Mesh has no metadata; carry ours alongside, as trimesh does.
    out.metadata = {**{k: v for k, v in mesh.metadata.items() if k != "steps"},
                    "units": mesh.units, "steps": [*steps, record]}
    return out
