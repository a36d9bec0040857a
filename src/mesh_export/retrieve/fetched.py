"""What a fetch returns, shared by every source kind's reader (fetch and static_fetch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mesh_export.errors import SourceError


@dataclass
class Fetched:
    """A decoded mesh (nm, float32 vertices merged across fragments) and how it was fetched."""

    vertices: np.ndarray
    faces: np.ndarray
    lod: int
    lods_available: int | None
    fragments: int
    missing_fragments: list[str] = field(default_factory=list)
    merged_vertices: int = 0
    retries: int = 0
    #: core.mesh_ops.merge_keys of ``vertices`` (already prepared by it), when the fetch computed
    #: them fragment by fragment; the merge then uses them instead of computing them again.
    merge_keys: Any = field(default=None, repr=False)

    def info(self) -> dict[str, Any]:
        return {"lod": self.lod, "lods_available": self.lods_available, "fragments": self.fragments,
                "missing_fragments": self.missing_fragments, "merged_vertices": self.merged_vertices,
                "retries": self.retries}


def single_lod(lod: int | None, what: str) -> int:
    """The only level of detail (0) of a ``what`` source, which has no others to ask for."""
    if lod not in (None, 0, -1):
        raise SourceError(f"{what} meshes have a single level of detail; --lod {lod} needs a "
                          "multi-resolution source (e.g. --static)")
    return 0
