"""A cell's surface as Neuroglancer precomputed meshes: multi-resolution Draco fragments on an
octree (``neuroglancer_multilod_draco``), or one legacy fragment (``neuroglancer_legacy_mesh``).

Vertices are nanometres in the dataset's frame and the layer's ``transform`` is the identity, so
the layer lies on the dataset. Lod 0 is cut on a grid of cubes ``LOD0_CHUNK_NM`` wide and each
fragment quantized to 16 bits within its cube: a step of 1 nm, so every vertex is within
sqrt(3)/2 nm of where it was (the format quantizes per fragment; a whole 260 um cell at 16 bits
would be a 4 nm grid). Coarser lods come from quadric decimation of the one before, each in
cubes twice as wide. Every triangle crossing a cube face is split on it, so the pieces either
side share their cut vertices exactly and no seam opens once quantized.
"""

from __future__ import annotations

import struct

import numpy as np

#: Bits per quantized coordinate (Neuroglancer takes 10 or 16).
QUANTIZATION_BITS = 16
_QMAX = 2**QUANTIZATION_BITS - 1
#: Lod-0 cube edge in nm: one quantization step is 1 nm.
LOD0_CHUNK_NM = float(_QMAX)
#: Each lod keeps about this fraction of the faces of the one before.
LOD_REDUCTION = 0.25
#: Draco's speed/size trade-off (0 fastest .. 10 smallest).
DRACO_COMPRESSION_LEVEL = 5


# ----------------------------------------------------------------------------- lods


def lod_surfaces(vertices: np.ndarray, faces: np.ndarray, lods: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lod 0 is the arrays as given (no copy); each further lod is decimated from the one
    before to about a quarter of its faces (never below a few hundred: the neurites must stay tubes)."""
    from mesh_export.core.mesh_ops import quadric_decimate

    levels = [(vertices, faces)]
    for _ in range(1, lods):
        v, f = levels[-1]
        target = max(int(len(f) * LOD_REDUCTION), min(len(f), 500))
        if target >= len(f):
            levels.append((v, f))
            continue
        dv, df = quadric_decimate(v, f, target_count=target)
        levels.append((np.asarray(dv, dtype=np.float32), np.asarray(df, dtype=np.int32)))
    return levels


# ----------------------------------------------------------------------------- cutting on a grid


class _Points:
    """The input vertices (never copied) plus the points cutting adds, indexed as one array."""

    def __init__(self, base: np.ndarray):
        self.base = base
        self.extra: list[np.ndarray] = []
        self.count = len(base)

    def take(self, index: np.ndarray) -> np.ndarray:
        n0 = len(self.base)
        out = np.empty(index.shape + (3,), dtype=np.float64)
        inside = index < n0
        out[inside] = self.base[index[inside]]
        if not inside.all():
            extra = np.concatenate(self.extra)
            out[~inside] = extra[index[~inside] - n0]
        return out

    def column(self, axis: int) -> np.ndarray:
        """One coordinate of every point (a column, not the whole array)."""
        parts = [self.base[:, axis]] + [e[:, axis] for e in self.extra]
        return np.concatenate(parts).astype(np.float64, copy=False)

    def add(self, points: np.ndarray) -> np.ndarray:
        start = self.count
        self.extra.append(points)
        self.count += len(points)
        return np.arange(start, self.count)


def _split_at_plane(points: _Points, faces: np.ndarray, axis: int, plane: float) -> np.ndarray:
    """The triangles of ``faces`` that cross ``plane`` split along it (winding kept); new
    vertices are made once per cut edge, so neighbours still share them."""
    coords = points.take(faces)[..., axis]
    side = np.sign(coords - plane)
    crossing = (side.min(axis=1) < 0) & (side.max(axis=1) > 0)
    if not crossing.any():
        return faces
    tri, sides = faces[crossing], side[crossing]
    # Rotate each crossing triangle so that vertex 0 is the special one: on the plane, or
    # alone on its side. Rolling keeps the winding.
    on_plane = sides == 0
    alone = (sides != np.roll(sides, 1, axis=1)) & (sides != np.roll(sides, -1, axis=1))
    touching = on_plane.any(axis=1)
    first = np.where(touching, on_plane.argmax(axis=1), alone.argmax(axis=1))
    tri = np.take_along_axis(tri, (first[:, None] + np.arange(3)[None, :]) % 3, axis=1)
    t, u = tri[touching], tri[~touching]
    ends = np.concatenate([np.column_stack([t[:, 1], t[:, 2]]), np.column_stack([u[:, 0], u[:, 1]]),
                           np.column_stack([u[:, 0], u[:, 2]])])
    edges, inverse = np.unique(np.sort(ends, axis=1), axis=0, return_inverse=True)
    va, vb = points.take(edges[:, 0]), points.take(edges[:, 1])
    cut = va + ((plane - va[:, axis]) / (vb[:, axis] - va[:, axis]))[:, None] * (vb - va)
    cut[:, axis] = plane
    index = points.add(cut)[inverse.reshape(-1)]
    p12, p01, p02 = np.split(index, [len(t), len(t) + len(u)])
    return np.concatenate([
        faces[~crossing],
        np.column_stack([t[:, 0], t[:, 1], p12]), np.column_stack([t[:, 0], p12, t[:, 2]]),
        np.column_stack([u[:, 0], p01, p02]), np.column_stack([p01, u[:, 1], u[:, 2]]),
        np.column_stack([p01, u[:, 2], p02]),
    ])


def cut_on_grid(vertices: np.ndarray, faces: np.ndarray, cell: float, origin: np.ndarray):
    """Cut a surface on cubes of edge ``cell`` from ``origin``: yields ``(cube index, vertices
    float64, faces uint32)`` per non-empty cube. Only triangles spanning a plane are touched."""
    points = _Points(vertices)
    faces = np.asarray(faces)
    for axis in range(3):
        slab = np.floor((points.column(axis) - origin[axis]) / cell).astype(np.int32)[faces]
        spanning = slab.max(axis=1) > slab.min(axis=1)
        if not spanning.any():
            continue
        work = faces[spanning].astype(np.int64)
        for k in range(int(slab[spanning].min()) + 1, int(slab[spanning].max()) + 1):
            work = _split_at_plane(points, work, axis, float(origin[axis] + k * cell))
        index = np.int32 if points.count < 2**31 else np.int64
        faces = np.concatenate([faces[~spanning].astype(index, copy=False), work.astype(index)])
        del slab, spanning, work
    # One sortable key per cube, from each face's centroid (cubes per axis stay far below 2^21).
    packed = np.zeros(len(faces), dtype=np.int64)
    for axis, shift in ((0, 42), (1, 21), (2, 0)):
        column = points.column(axis)
        centroid = column[faces[:, 0]] + column[faces[:, 1]] + column[faces[:, 2]]
        packed |= np.floor((centroid / 3 - origin[axis]) / cell).astype(np.int64) << shift
        del centroid
    order = np.argsort(packed, kind="stable")
    packed, faces = packed[order], faces[order]
    cuts = np.flatnonzero(packed[1:] != packed[:-1]) + 1
    for start, end in zip(np.r_[0, cuts], np.r_[cuts, len(faces)]):
        used, local = np.unique(faces[start:end], return_inverse=True)
        key = int(packed[start])
        cube = ((key >> 42) & 0x1FFFFF, (key >> 21) & 0x1FFFFF, key & 0x1FFFFF)
        yield cube, points.take(used), local.reshape(-1, 3).astype(np.uint32)


def _morton_order(positions: np.ndarray) -> np.ndarray:
    """Indices sorting grid positions in Z-order (x the lowest bit): Neuroglancer's required
    fragment order within a lod."""
    codes = np.zeros(len(positions), dtype=np.uint64)
    pos = positions.astype(np.uint64)
    for bit in range(21):
        for axis in range(3):
            codes |= ((pos[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(codes, kind="stable")


def _mean_edge(vertices: np.ndarray, faces: np.ndarray) -> float:
    sample = faces[:: max(1, len(faces) // 20000)]
    a, b = vertices[sample[:, 0]].astype(np.float64), vertices[sample[:, 1]].astype(np.float64)
    return float(np.linalg.norm(a - b, axis=1).mean()) if len(sample) else 1.0


# ----------------------------------------------------------------------------- encoding


def multires_payload(vertices: np.ndarray, faces: np.ndarray, lods: int) -> tuple[bytes, bytes, list[int]]:
    """``(fragment data, manifest, faces per lod)`` of one cell for a multi-resolution layer
    whose ``transform`` is the identity (stored coordinates are nm)."""
    import DracoPy

    levels = lod_surfaces(vertices, faces, lods)
    lo = np.floor(np.min([v.min(axis=0) for v, _ in levels], axis=0).astype(np.float64)) - 1.0
    positions_per_lod, sizes, blobs, scales = [], [], [], []
    child_positions: set[tuple[int, int, int]] = set()
    for lod, (v, f) in enumerate(levels):
        cell = LOD0_CHUNK_NM * 2**lod
        pieces = {}
        for cube, verts, local_faces in cut_on_grid(v, f, cell, lo):
            q = np.clip(np.round((verts - lo - np.asarray(cube) * cell) / cell * _QMAX), 0, _QMAX)
            # A sliver the cut made can collapse once quantized: drop what became a line.
            qf = local_faces
            same = ((q[qf[:, 0]] == q[qf[:, 1]]).all(axis=1) | (q[qf[:, 1]] == q[qf[:, 2]]).all(axis=1)
                    | (q[qf[:, 0]] == q[qf[:, 2]]).all(axis=1))
            if same.all():
                continue
            pieces[cube] = DracoPy.encode(q.astype(np.float32), qf[~same], quantization_bits=QUANTIZATION_BITS,
                                          quantization_range=_QMAX, quantization_origin=(0.0, 0.0, 0.0),
                                          compression_level=DRACO_COMPRESSION_LEVEL)
        # Every fragment's parent must exist at the next lod: an empty one (size 0) if need be.
        keys = sorted(set(pieces) | {tuple(p // 2 for p in pos) for pos in child_positions})
        positions = np.asarray(keys, dtype=np.int64).reshape(-1, 3)
        positions = positions[_morton_order(positions)]
        for pos in map(tuple, positions):
            blob = pieces.get(pos, b"")
            blobs.append(blob)
            sizes.append(len(blob))
        positions_per_lod.append(positions.astype(np.uint32))
        child_positions = set(map(tuple, positions))
        scales.append(max(_mean_edge(v, f), scales[-1] * 2 if scales else 0.0))
    manifest = _manifest(lo, positions_per_lod, sizes, scales)
    return b"".join(blobs), manifest, [int(len(f)) for _, f in levels]


def _manifest(origin, positions_per_lod, sizes, scales) -> bytes:
    """The format's manifest: chunk shape, grid origin, lod count, lod scales, vertex offsets,
    fragments per lod, then per lod the positions (3 x n, uint32) and sizes (uint32)."""
    num_lods = len(positions_per_lod)
    out = [np.full(3, LOD0_CHUNK_NM, dtype="<f4").tobytes(), np.asarray(origin, dtype="<f4").tobytes(),
           struct.pack("<I", num_lods), np.asarray(scales, dtype="<f4").tobytes(),
           np.zeros((num_lods, 3), dtype="<f4").tobytes(),
           np.asarray([len(p) for p in positions_per_lod], dtype="<u4").tobytes()]
    at = 0
    for positions in positions_per_lod:
        out.append(np.ascontiguousarray(positions.T, dtype="<u4").tobytes())
        out.append(np.asarray(sizes[at:at + len(positions)], dtype="<u4").tobytes())
        at += len(positions)
    return b"".join(out)


def manifest_data_length(manifest: bytes) -> int:
    """Bytes of fragment data a manifest describes (they precede it in a shard)."""
    num_lods = struct.unpack_from("<I", manifest, 24)[0]
    offset = 28 + 16 * num_lods
    counts = np.frombuffer(manifest, dtype="<u4", count=num_lods, offset=offset)
    offset += 4 * num_lods
    total = 0
    for n in counts:
        offset += 12 * int(n)
        total += int(np.frombuffer(manifest, dtype="<u4", count=int(n), offset=offset).sum(dtype=np.int64))
        offset += 4 * int(n)
    return total


def multires_info(sharding: dict | None) -> dict:
    info = {"@type": "neuroglancer_multilod_draco", "vertex_quantization_bits": QUANTIZATION_BITS,
            "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], "lod_scale_multiplier": 1.0,
            "segment_properties": "../segment_properties"}
    if sharding is not None:
        info["sharding"] = sharding
    return info


def legacy_fragment(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A legacy fragment: uint32 vertex count, float32 xyz, uint32 triangle indices."""
    return (struct.pack("<I", len(vertices)) + np.asarray(vertices, dtype="<f4").tobytes()
            + np.asarray(faces, dtype="<u4").tobytes())


LEGACY_INFO = {"@type": "neuroglancer_legacy_mesh", "segment_properties": "../segment_properties"}
