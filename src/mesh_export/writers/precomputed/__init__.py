"""Neuroglancer precomputed layers (``--format precomputed --out DIR``): cells added to a
directory of mesh, skeleton, synapse and segment-property layers (:mod:`.layers`); the
encodings in :mod:`.mesh`, :mod:`.skeleton`, :mod:`.synapse_annotations`, :mod:`.sharding`."""

from __future__ import annotations

from mesh_export.errors import InvalidArgumentError
from mesh_export.model import LAYERS
from mesh_export.writers.precomputed.layers import Cell, LayerOptions, add_cells, check_directory
from mesh_export.writers.registry import Writer, register_builtin

__all__ = ["Cell", "LayerOptions", "add_cells", "check_directory"]


def _write(data, path, **options) -> None:
    raise InvalidArgumentError("precomputed writes a directory of layers that cells are added to: "
                               "export or convert with --format precomputed --out DIR")


register_builtin(Writer("precomputed", (), _write, accepts=(LAYERS,),
                options={"layers": "LayerOptions: lods (levels of detail, default 4), legacy (one unsharded fragment)"},
                description="Neuroglancer precomputed layers in a directory: multi-resolution Draco mesh, "
                            "skeleton, synapse annotations, segment properties"))
