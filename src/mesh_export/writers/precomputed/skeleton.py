"""A morphology as a Neuroglancer precomputed skeleton (unsharded: one file per id), with the
per-node ``radius`` (nm) and ``compartment`` (the SWC type: 1 soma, 2 axon, 3 basal, 4 apical)
that Neuroglancer's skeleton shader can draw and colour by. Both float32: the viewer draws no
uint8 attribute ("Data type not supported by WebGL: UINT8")."""

from __future__ import annotations

import struct

import numpy as np

INFO = {
    "@type": "neuroglancer_skeletons",
    "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
    "vertex_attributes": [{"id": "radius", "data_type": "float32", "num_components": 1},
                          {"id": "compartment", "data_type": "float32", "num_components": 1}],
    "segment_properties": "../segment_properties",
}


def skeleton_bytes(skeleton) -> bytes:
    """Vertex and edge counts (uint32), positions (float32 nm), edges (child, parent; uint32),
    then the attributes in the info's order."""
    from mesh_export.core.units import conversion_factor

    factor = conversion_factor(skeleton.units, "nm") if skeleton.units else 1.0
    nodes = np.asarray(skeleton.nodes, dtype=np.float64) * factor
    edges = skeleton.edges
    compartments = np.asarray(skeleton.types).astype("<f4")
    return b"".join([struct.pack("<II", len(nodes), len(edges)), nodes.astype("<f4").tobytes(),
                     edges.astype("<u4").tobytes(), (np.asarray(skeleton.radii) * factor).astype("<f4").tobytes(),
                     compartments.tobytes()])
