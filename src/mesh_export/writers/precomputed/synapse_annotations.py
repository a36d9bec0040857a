"""A cell's synapses as a Neuroglancer precomputed annotation layer of points
(``neuroglancer_annotations_v1``; neuroglancer's ``src/datasource/precomputed/annotations.md``).

Each synapse is listed once per cell of the layer it belongs to: its annotation id is twice the
synapse id, plus one for an output of the cell, so a synapse between two cells of the layer
has one entry for each (what the row says about it, direction and partner, is the cell's view).
Properties: ``size`` (float32, NaN when not known), ``direction`` and ``tag`` (uint8 enums).
Relationships (uint64 segment ids, what the viewer filters by): ``cell`` (the exported cell)
and ``partner`` (the other cell; properties cannot hold a 64-bit id). Indices, all unsharded:
``by_id/<id>``, ``rel_cell/<root id>``, ``rel_partner/<root id>``, and one spatial level
``spatial0/0_0_0`` holding every annotation (rebuilt from the cells' entries on each add).
"""

from __future__ import annotations

import struct

import numpy as np

DIRECTIONS = ("input", "output", "unknown")
TAGS = ("none", "soma", "shaft", "spine")
#: One record: position (3 x float32), then the properties in the info's order, padded to 4 bytes.
RECORD = np.dtype([("position", "<f4", (3,)), ("size", "<f4"), ("direction", "u1"), ("tag", "u1"),
                   ("pad", "u1", (2,))])
RELATIONSHIPS = ("cell", "partner")


def info(lower, upper, count: int) -> dict:
    return {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": {"x": [1e-9, "m"], "y": [1e-9, "m"], "z": [1e-9, "m"]},
        "lower_bound": [float(v) for v in lower], "upper_bound": [float(v) for v in upper],
        "annotation_type": "POINT",
        "properties": [
            {"id": "size", "type": "float32", "description": "synapse size as the table gives it"},
            {"id": "direction", "type": "uint8", "description": "input or output of the cell",
             "enum_values": list(range(len(DIRECTIONS))), "enum_labels": list(DIRECTIONS)},
            {"id": "tag", "type": "uint8", "description": "predicted target: soma, shaft or spine",
             "enum_values": list(range(len(TAGS))), "enum_labels": list(TAGS)},
        ],
        "relationships": [{"id": name, "key": f"rel_{name}"} for name in RELATIONSHIPS],
        "by_id": {"key": "by_id"},
        # One cell holding everything: the viewer shows every synapse at any zoom.
        "spatial": [{"key": "spatial0", "grid_shape": [1, 1, 1],
                     "chunk_size": [max(float(h - l), 1.0) for l, h in zip(lower, upper)],
                     "limit": max(int(count), 1)}],
    }


def cell_annotations(table, root_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(annotation ids uint64, records, partner ids uint64)`` of a SynapseTable."""
    rows = table.rows
    n = len(rows)
    directions = np.asarray(table.direction, dtype=str)
    direction = np.full(n, DIRECTIONS.index("unknown"), dtype=np.uint8)
    for k, name in enumerate(DIRECTIONS):
        direction[directions == name] = k
    tags = np.asarray(table.tag, dtype=str)
    tag = np.zeros(n, dtype=np.uint8)
    for k, name in enumerate(TAGS[1:], start=1):
        tag[tags == name] = k
    synapse_ids = np.asarray(rows.ids, dtype=np.int64)
    if n and (np.unique(synapse_ids).size != n or (synapse_ids <= 0).any()):
        # A table without usable ids: number the rows after the cell, stable across re-runs.
        synapse_ids = (np.int64(root_id % (1 << 40)) << 20) + np.arange(1, n + 1, dtype=np.int64)
    ids = synapse_ids.astype(np.uint64) * np.uint64(2) + (direction == DIRECTIONS.index("output")).astype(np.uint64)
    records = np.zeros(n, dtype=RECORD)
    records["position"] = rows.positions
    records["size"] = rows.size
    records["direction"] = direction
    records["tag"] = tag
    partners = np.asarray(table.partner, dtype=np.int64).astype(np.uint64)
    return ids, records, partners


def encode_one(record: np.ndarray, related: list[list[int]]) -> bytes:
    """A by_id entry: the record, then per relationship a uint32 count and uint64 ids."""
    out = [record.tobytes()]
    for ids in related:
        out.append(struct.pack("<I", len(ids)))
        out.append(np.asarray(ids, dtype="<u8").tobytes())
    return b"".join(out)


def encode_many(ids: np.ndarray, records: np.ndarray) -> bytes:
    """A spatial or relationship entry: uint64 count, the records, then their uint64 ids."""
    return struct.pack("<Q", len(ids)) + records.tobytes() + np.asarray(ids, dtype="<u8").tobytes()


def decode_many(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    count = struct.unpack_from("<Q", blob)[0]
    records = np.frombuffer(blob, dtype=RECORD, count=count, offset=8)
    ids = np.frombuffer(blob, dtype="<u8", count=count, offset=8 + count * RECORD.itemsize)
    return ids, records
