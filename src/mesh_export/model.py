"""The types every layer shares: what a writer accepts, and the mesh as fetched or cached.

Surfaces are trimesh.Trimesh (or a CachedSurface of the arrays as read); volume meshes are
meshio.Mesh; skeletons are mesh_export.process.skeleton.Skeleton (it moves here when
skeleton.py is split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What a writer can take.
SURFACE = "surface"
SKELETON = "skeleton"
VOLUME = "volume"


@dataclass
class CachedSurface:
    """A mesh as fetched or cached (nm), handed as it is to a binary native writer.

    Those writers write float32 vertices and int32 indices whatever they are given, and read
    only ``vertices``, ``faces`` and the units; a trimesh.Trimesh would first widen both arrays
    to 64 bits (~50 MB of copies for a 1.3M-face mesh) only for the writer to narrow them again.
    """

    vertices: Any
    faces: Any
    metadata: dict[str, Any]

    @property
    def units(self) -> str | None:
        return self.metadata.get("units")
