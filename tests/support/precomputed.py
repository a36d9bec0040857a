"""Write real Neuroglancer precomputed mesh layers that CloudVolume reads unchanged.

Three layer kinds, all built from ``{root_id: trimesh.Trimesh}`` in nanometres
(see :mod:`support.neurons`):

- :func:`write_legacy_mesh_layer`: unsharded legacy meshes
  (``neuroglancer_legacy_mesh``): a ``<id>:0`` JSON manifest listing fragment
  files, each fragment a chunk of the mesh, gzipped as ``<name>.gz`` the way
  CloudFiles stores them.
- :func:`write_multires_layer`: ``neuroglancer_multilod_draco`` meshes, sharded
  (or not), several levels of detail, Draco-encoded octree fragments.
- :func:`write_graphene_layer`: the storage half of a graphene (PyChunkedGraph)
  segmentation -- level-2 fragments in "initial" shards and "dynamic" files --
  plus ``chunkedgraph.json``, the server half (chunkedgraph ``info`` and the
  per-root fragment lists the meshing ``manifest`` route answers with), which
  ``tests/support/server.py`` serves.

:func:`cave_datastack_info` builds the InfoService payload that makes
``caveclient.CAVEclient`` resolve a datastack to a graphene source. The offline sample the
package ships is written with :func:`write_multires_layer` by ``tools/build_sample.py``.

Only the encoding helpers of cloudvolume are used (manifest serialisation,
sharding), so what is on disk is exactly what its readers expect. zmesh (LGPL)
is imported lazily, inside the functions that cut meshes into chunks (legacy and
graphene fragments) and simplify them; multi-resolution fragments are cut exactly on
their octree by :func:`_cut_on_grid`, so quantizing them per cell opens no seams.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import trimesh

__all__ = [
    "LayerGeometry",
    "write_legacy_mesh_layer",
    "write_multires_layer",
    "write_graphene_layer",
    "cave_datastack_info",
    "GRAPHENE_SERVER_FILE",
]

#: Server-side description of a graphene dataset, written next to its data.
GRAPHENE_SERVER_FILE = "chunkedgraph.json"

Meshes = Mapping[int, "trimesh.Trimesh"]


# --------------------------------------------------------------------------
# geometry shared by all layers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerGeometry:
    """Voxel grid of a segmentation layer: what goes into its root ``info``.

    ``chunk_size`` (voxels) is also the grid meshes are cut on: legacy fragment
    files and graphene level-2 chunks.
    """

    resolution: tuple[float, float, float] = (8.0, 8.0, 40.0)
    voxel_offset: tuple[int, int, int] = (0, 0, 0)
    size: tuple[int, int, int] | None = None
    chunk_size: tuple[int, int, int] = (64, 64, 16)

    @classmethod
    def covering(cls, meshes: Meshes, resolution=(8.0, 8.0, 40.0), chunk_size=(64, 64, 16),
                 voxel_offset=None, size=None) -> "LayerGeometry":
        """Geometry for ``meshes``; missing offset/size are derived from their bounds."""
        res = np.asarray(resolution, dtype=float)
        lo = np.min([m.bounds[0] for m in meshes.values()], axis=0) / res
        hi = np.max([m.bounds[1] for m in meshes.values()], axis=0) / res
        if voxel_offset is None:
            voxel_offset = np.floor(lo).astype(int) - 1
        if size is None:
            size = np.ceil(hi).astype(int) + 1 - np.asarray(voxel_offset)
        return cls(
            resolution=tuple(float(r) for r in res),
            voxel_offset=tuple(int(v) for v in voxel_offset),
            size=tuple(int(s) for s in size),
            chunk_size=tuple(int(c) for c in chunk_size),
        )

    @property
    def chunk_nm(self) -> np.ndarray:
        return np.asarray(self.chunk_size, dtype=float) * np.asarray(self.resolution)

    @property
    def offset_nm(self) -> np.ndarray:
        return np.asarray(self.voxel_offset, dtype=float) * np.asarray(self.resolution)

    def segmentation_info(self, mesh_dir: str = "mesh", **extra) -> dict:
        """Root ``info`` of a one-scale ``uint64`` segmentation layer."""
        res = [float(r) for r in self.resolution]
        info = {
            "type": "segmentation",
            "data_type": "uint64",
            "num_channels": 1,
            "mesh": mesh_dir,
            "scales": [
                {
                    "key": "_".join(f"{r:g}" for r in res),
                    "resolution": res,
                    "voxel_offset": list(self.voxel_offset),
                    "size": list(self.size or (1, 1, 1)),
                    "chunk_sizes": [list(self.chunk_size)],
                    "encoding": "raw",
                }
            ],
        }
        info.update(extra)
        return info


def _json_default(value):
    # cloudvolume's ShardingSpecification.to_dict() holds numpy integers.
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")


def _geometry(meshes: Meshes, geometry: LayerGeometry | None, resolution) -> LayerGeometry:
    if not meshes:
        raise ValueError("no meshes to write")
    if geometry is None:
        return LayerGeometry.covering(meshes, resolution=resolution)
    if geometry.size is None:
        return LayerGeometry.covering(
            meshes, resolution=geometry.resolution, chunk_size=geometry.chunk_size,
            voxel_offset=geometry.voxel_offset,
        )
    return geometry


def _cut_into_chunks(vertices, faces, chunk_size, grid_origin) -> dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]]:
    """Cut a mesh on a regular grid; returns ``{grid index: (vertices, faces)}``.

    zmesh splits triangles that cross a plane, so both neighbours hold the same
    cut vertices: exactly the duplication at chunk borders that real datasets
    have and that readers deduplicate. Vertices within float32 noise of a plane
    are snapped onto it so that deduplication by exact comparison works.
    """
    import zmesh

    verts = np.ascontiguousarray(vertices, dtype=np.float32)
    chunk_size = np.asarray(chunk_size, dtype=np.float64)
    grid_origin = np.asarray(grid_origin, dtype=np.float64)
    zm = zmesh.Mesh(verts, np.ascontiguousarray(faces, dtype=np.uint32), None)
    out = {}
    for key, piece in zmesh.chunk_mesh(zm, chunk_size, grid_origin=grid_origin).items():
        if len(piece.faces) == 0:
            continue
        v = piece.vertices.astype(np.float64)
        rel = (v - grid_origin) / chunk_size
        nearest = np.round(rel)
        snap = np.abs(rel - nearest) * chunk_size < 1e-2
        v[snap] = (nearest * chunk_size + grid_origin)[snap]
        # chunk_mesh returns a triangle soup (three vertices per face); index
        # it so that a border vertex occurs once per fragment, as in meshes
        # from real pipelines (readers' border deduplication counts on that).
        v, inverse = np.unique(v.astype(np.float32), axis=0, return_inverse=True)
        faces = inverse.reshape(-1)[piece.faces].astype(np.uint32)
        faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
        if len(faces):
            out[tuple(int(k) for k in key)] = (v.astype(np.float64), faces)
    return out


def _split_at_plane(vertices: list[np.ndarray], faces: np.ndarray, axis: int, plane: float) -> np.ndarray:
    """Split the triangles of ``faces`` that cross ``plane`` (coordinate ``axis``) along it: the
    product writer's split (mesh_export.writers.precomputed.mesh), on ``vertices``, a list of
    arrays extended in place with the new points."""
    from mesh_export.writers.precomputed.mesh import _Points
    from mesh_export.writers.precomputed.mesh import _split_at_plane as split

    points = _Points(np.concatenate(vertices) if len(vertices) > 1 else vertices[0])
    faces = split(points, faces, axis, plane)
    vertices.extend(points.extra)
    return faces


def _cut_on_grid(vertices, faces, cell, grid_origin, snap=None) -> dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]]:
    """Cut a mesh exactly on a regular grid; returns ``{grid index: (vertices, faces)}``.

    Every triangle crossing a grid plane is split on it, so each piece lies inside its cell
    and the pieces either side of a plane share the cut vertices exactly: after quantizing
    each fragment within its own cell (what multi-resolution meshes do) the border vertices
    still meet, and no seam opens. (zmesh's ``chunk_mesh`` leaves triangles that spill up to
    a fifth of a cell into the next one, which the quantization then clips: visible gaps.)
    """
    cell = np.asarray(cell, dtype=np.float64)
    origin = np.asarray(grid_origin, dtype=np.float64)
    verts = [np.array(vertices, dtype=np.float64)]
    faces = np.asarray(faces, dtype=np.int64)
    for axis in range(3):
        allv = np.concatenate(verts)
        # Vertices closer to a plane than ``snap`` (per axis; default a rounding error) go
        # onto it, or the cut would make slivers whose corners coincide once quantized.
        rel = (allv[:, axis] - origin[axis]) / cell[axis]
        tolerance = 1e-9 if snap is None else float(np.broadcast_to(snap, (3,))[axis]) / cell[axis]
        near = np.abs(rel - np.round(rel)) < tolerance
        allv[near, axis] = origin[axis] + np.round(rel[near]) * cell[axis]
        verts = [allv]
        # Only triangles spanning a plane can be cut: split those, keep the rest aside.
        cells = np.floor((allv[faces, axis] - origin[axis]) / cell[axis])
        spanning = cells.max(axis=1) > cells.min(axis=1)
        kept, work = faces[~spanning], faces[spanning]
        if len(work):
            for k in range(int(cells.min()) + 1, int(cells.max()) + 1):
                work = _split_at_plane(verts, work, axis, float(origin[axis] + k * cell[axis]))
        faces = np.concatenate([kept, work])
    allv = np.concatenate(verts)
    centroids = allv[faces].mean(axis=1)
    keys = np.floor((centroids - origin) / cell).astype(np.int64)
    order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))
    keys, faces = keys[order], faces[order]
    cuts = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    out = {}
    for start, end in zip(np.r_[0, cuts], np.r_[cuts, len(faces)]):
        used, local = np.unique(faces[start:end], return_inverse=True)
        out[tuple(int(k) for k in keys[start])] = (allv[used], local.reshape(-1, 3).astype(np.uint32))
    return out


def _drop_folds(mesh):
    """Remove triangles that occur twice (folds a simplifier leaves), and unused vertices.

    Both copies go: each pair shares its edges with two other triangles, so the surface is
    closed again without them.
    """
    import trimesh

    faces = np.asarray(mesh.faces)
    _, inverse, counts = np.unique(np.sort(faces, axis=1), axis=0, return_inverse=True, return_counts=True)
    keep = counts[inverse.reshape(-1)] == 1
    if keep.all():
        return mesh
    used, local = np.unique(faces[keep], return_inverse=True)
    out = trimesh.Trimesh(np.asarray(mesh.vertices)[used], local.reshape(-1, 3), process=False)
    out.units = mesh.units
    return out


def _bbox_filename(lo, hi) -> str:
    """CloudVolume's ``Bbox.to_filename`` form: ``x0-x1_y0-y1_z0-z1``."""
    return "_".join(f"{int(a)}-{int(b)}" for a, b in zip(lo, hi))


def _legacy_fragment_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """Legacy precomputed fragment: uint32 vertex count, float32 xyz, uint32 faces."""
    vertices = np.asarray(vertices, dtype="<f4")
    return (
        np.uint32(len(vertices)).astype("<u4").tobytes()
        + vertices.tobytes(order="C")
        + np.asarray(faces, dtype="<u4").tobytes(order="C")
    )


# --------------------------------------------------------------------------
# legacy (single resolution, unsharded)
# --------------------------------------------------------------------------


def write_legacy_mesh_layer(
    path: str | os.PathLike,
    meshes: Meshes,
    *,
    geometry: LayerGeometry | None = None,
    resolution=(8.0, 8.0, 40.0),
    compress: bool = True,
    mesh_dir: str = "mesh",
) -> dict[int, list[str]]:
    """Write an unsharded legacy precomputed mesh layer; returns fragment names per id.

    Each mesh is cut on the layer's chunk grid (``geometry.chunk_size`` voxels
    from ``voxel_offset``) into fragment files named like igneous does,
    ``<id>:0:<x0>-<x1>_<y0>-<y1>_<z0>-<z1>``, listed by the manifest ``<id>:0``.
    Vertices are nanometres (no ``transform``). With ``compress`` the fragments
    are stored as ``<name>.gz``, as CloudFiles does; a static server must map a
    request for ``<name>`` to that file with ``Content-Encoding: gzip``.
    """
    geometry = _geometry(meshes, geometry, resolution)
    root = Path(path)
    mesh_root = root / mesh_dir
    mesh_root.mkdir(parents=True, exist_ok=True)
    _write_json(root / "info", geometry.segmentation_info(mesh_dir=mesh_dir))
    # ``mip`` and ``chunk_size`` let ``mesh.get(..., chunk_size=...)`` find the
    # grid that fragment borders lie on.
    _write_json(
        mesh_root / "info",
        {"@type": "neuroglancer_legacy_mesh", "mip": 0,
         "chunk_size": list(geometry.chunk_size), "spatial_index": None},
    )

    chunk_vx = np.asarray(geometry.chunk_size)
    fragments: dict[int, list[str]] = {}
    for segid, mesh in sorted(meshes.items()):
        pieces = _cut_into_chunks(mesh.vertices, mesh.faces, geometry.chunk_nm, geometry.offset_nm)
        if len(pieces) < 2:
            raise ValueError(
                f"mesh {segid} fits in one chunk; use a smaller chunk_size so that "
                "fragment borders exist"
            )
        names = []
        for key, (verts, faces) in sorted(pieces.items()):
            lo = np.asarray(geometry.voxel_offset) + np.asarray(key) * chunk_vx
            name = f"{segid}:0:{_bbox_filename(lo, lo + chunk_vx)}"
            data = _legacy_fragment_bytes(verts, faces)
            if compress:
                (mesh_root / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (mesh_root / name).write_bytes(data)
            names.append(name)
        # Manifests are plain JSON (CloudFiles' put_json does not compress).
        _write_json(mesh_root / f"{segid}:0", {"fragments": names})
        fragments[int(segid)] = names
    return fragments


# --------------------------------------------------------------------------
# multi-resolution Draco (sharded or not)
# --------------------------------------------------------------------------


def _morton_order(positions: np.ndarray) -> np.ndarray:
    """Indices sorting integer grid positions in Z-order (Neuroglancer's fragment order)."""
    from mesh_export.writers.precomputed.mesh import _morton_order as morton

    return morton(positions)


def _lod_meshes(mesh, resolution, num_lods: int, reduction: float = 4) -> list:
    """LOD 0 is the mesh itself; each further LOD has about ``1/reduction`` the faces."""
    from support.neurons import simplify_mesh

    lods = [mesh]
    for lod in range(1, num_lods):
        target = max(int(len(lods[-1].faces) / reduction), 12)
        coarser = _drop_folds(simplify_mesh(lods[-1], target, scale=float(min(resolution))))
        if len(coarser.faces) >= len(lods[-1].faces):
            raise ValueError(f"LOD {lod} did not simplify ({len(coarser.faces)} faces)")
        lods.append(coarser)
    return lods


def _encode_multires(mesh, resolution, num_lods: int, quantization_bits: int,
                     draco_compression_level: int, lod_reduction: float = 4):
    """Fragment data and manifest of one multi-resolution mesh.

    "Stored model" space is voxels (the layer ``transform`` scales by the
    resolution). The octree has ``chunk_shape`` cells at LOD 0, doubling per
    LOD, so the coarsest LOD is a single cell covering the whole mesh. Each
    fragment's vertices are quantized to ``quantization_bits`` within its cell
    and Draco-encoded with an identity quantization, so Draco stores exactly
    those integers (what the format requires).
    """
    import DracoPy
    from cloudvolume.datasource.precomputed.mesh.multilod import MultiLevelPrecomputedMeshManifest

    res = np.asarray(resolution, dtype=float)
    lods = _lod_meshes(mesh, resolution, num_lods, lod_reduction)
    # The octree covers every lod: a simplifier can move vertices out of the mesh's own box.
    lo = np.floor(np.min([np.min(m.vertices, axis=0) for m in lods], axis=0) / res) - 1
    hi = np.ceil(np.max([np.max(m.vertices, axis=0) for m in lods], axis=0) / res) + 1
    chunk_shape = np.ceil((hi - lo) / 2 ** (num_lods - 1))
    qmax = 2**quantization_bits - 1

    positions_per_lod, sizes_per_lod, blobs = [], [], []
    child_positions: set[tuple[int, int, int]] = set()
    for lod, lod_mesh in enumerate(lods):
        cell = chunk_shape * 2**lod
        # Snap within one quantization step of a plane: invisible once quantized.
        pieces = _cut_on_grid(lod_mesh.vertices / res, lod_mesh.faces, cell, lo, snap=cell / qmax)
        # Every fragment's parent must exist at the next LOD; a cell that ends
        # up without triangles is stored as an empty fragment (size 0).
        parents = {tuple(p // 2 for p in pos) for pos in child_positions}
        keys = sorted(set(pieces) | parents)
        positions = np.asarray(keys, dtype=np.int64).reshape(-1, 3)
        order = _morton_order(positions)
        positions = positions[order]
        sizes = []
        for pos in map(tuple, positions):
            if pos not in pieces:
                sizes.append(0)
                continue
            verts, faces = pieces[pos]
            local = (verts - lo - np.asarray(pos) * cell) / cell * qmax
            local = np.clip(np.round(local), 0, qmax)
            blob = DracoPy.encode(
                local.astype(np.float32), faces,
                quantization_bits=quantization_bits, quantization_range=qmax,
                quantization_origin=(0.0, 0.0, 0.0),
                compression_level=draco_compression_level,
            )
            blobs.append(blob)
            sizes.append(len(blob))
        positions_per_lod.append(positions.astype(np.uint32))
        sizes_per_lod.append(sizes)
        child_positions = set(map(tuple, positions))

    manifest = MultiLevelPrecomputedMeshManifest(
        segment_id=0,
        chunk_shape=chunk_shape,
        grid_origin=lo,
        num_lods=num_lods,
        lod_scales=[float(2**lod) for lod in range(num_lods)],
        vertex_offsets=np.zeros((num_lods, 3)),
        num_fragments_per_lod=[len(p) for p in positions_per_lod],
        fragment_positions=positions_per_lod,
        # to_binary() wants the sizes of all LODs as one flat list.
        fragment_offsets=[s for sizes in sizes_per_lod for s in sizes],
    )
    face_counts = [int(len(m.faces)) for m in lods]
    return b"".join(blobs), manifest.to_binary(), face_counts


def write_multires_layer(
    path: str | os.PathLike,
    meshes: Meshes,
    *,
    num_lods: int = 3,
    sharded: bool = True,
    geometry: LayerGeometry | None = None,
    resolution=(8.0, 8.0, 40.0),
    vertex_quantization_bits: int = 16,
    draco_compression_level: int = 7,
    shard_bits: int | None = None,
    minishard_bits: int | None = None,
    mesh_dir: str = "mesh",
    lod_reduction: float = 4,
) -> dict[int, list[int]]:
    """Write a ``neuroglancer_multilod_draco`` layer; returns face counts per LOD per id.

    LOD 0 is the finest (the given mesh), each further LOD has ``1/lod_reduction`` the faces.
    Sharded layers put ``fragment data + manifest`` of each id into
    ``<shard>.shard`` files (the minishard index points at the manifest, as the
    format requires), built with cloudvolume's ``synthesize_shard_files``.
    ``shard_bits``/``minishard_bits`` default to what cloudvolume computes for
    this many labels. Unsharded layers write ``<id>`` and ``<id>.index``.
    """
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        compute_shard_params_for_hashed,
        synthesize_shard_files,
    )

    if num_lods < 1:
        raise ValueError("num_lods must be >= 1")
    if vertex_quantization_bits not in (10, 16):
        raise ValueError("vertex_quantization_bits must be 10 or 16 (Neuroglancer's choices)")
    geometry = _geometry(meshes, geometry, resolution)
    root = Path(path)
    mesh_root = root / mesh_dir
    mesh_root.mkdir(parents=True, exist_ok=True)
    _write_json(root / "info", geometry.segmentation_info(mesh_dir=mesh_dir))

    res = geometry.resolution
    mesh_info = {
        "@type": "neuroglancer_multilod_draco",
        "mip": 0,
        "vertex_quantization_bits": vertex_quantization_bits,
        "transform": [res[0], 0, 0, 0, 0, res[1], 0, 0, 0, 0, res[2], 0],
        "lod_scale_multiplier": 1.0,
    }

    payloads, manifest_sizes, face_counts = {}, {}, {}
    for segid, mesh in sorted(meshes.items()):
        data, manifest, counts = _encode_multires(
            mesh, res, num_lods, vertex_quantization_bits, draco_compression_level, lod_reduction
        )
        face_counts[int(segid)] = counts
        if sharded:
            payloads[int(segid)] = data + manifest
            manifest_sizes[int(segid)] = len(manifest)
        else:
            (mesh_root / str(segid)).write_bytes(data)
            (mesh_root / f"{segid}.index").write_bytes(manifest)

    if sharded:
        computed = compute_shard_params_for_hashed(num_labels=len(payloads))
        spec = ShardingSpecification(
            type="neuroglancer_uint64_sharded_v1",
            preshift_bits=0,
            hash="murmurhash3_x86_128",
            shard_bits=computed[0] if shard_bits is None else shard_bits,
            minishard_bits=computed[1] if minishard_bits is None else minishard_bits,
            minishard_index_encoding="gzip",
            # Must be raw: readers fetch the fragment data by byte range,
            # relative to the manifest's position in the shard.
            data_encoding="raw",
        )
        for filename, blob in synthesize_shard_files(spec, payloads, manifest_sizes).items():
            (mesh_root / filename).write_bytes(blob)
        mesh_info["sharding"] = spec.to_dict()

    _write_json(mesh_root / "info", mesh_info)
    return face_counts


# --------------------------------------------------------------------------
# graphene (PyChunkedGraph) layer
# --------------------------------------------------------------------------

#: Bits per chunk coordinate for each graph layer, as in MICrONS minnie65.
_SPATIAL_BITS = {"1": 10, "2": 10, "3": 9, "4": 8, "5": 7, "6": 6,
                 "7": 5, "8": 4, "9": 3, "10": 2, "11": 1, "12": 1}
_LAYER_ID_BITS = 8


def _graphene_label(layer: int, x: int, y: int, z: int, segid: int, spatial_bits: int) -> int:
    """Pack a graphene label: layer | x | y | z | segment id, high bits first."""
    segid_bits = 64 - _LAYER_ID_BITS - 3 * spatial_bits
    if max(x, y, z) >= 2**spatial_bits or segid >= 2**segid_bits:
        raise ValueError("chunk position or segment id out of range for this graph")
    return (
        (layer << (64 - _LAYER_ID_BITS))
        | (x << (segid_bits + 2 * spatial_bits))
        | (y << (segid_bits + spatial_bits))
        | (z << segid_bits)
        | segid
    )


def _graphene_byte_ranges(spec, shard: bytes) -> dict[int, tuple[int, int]]:
    """``{label: (byte start, size)}`` of the entries of one synthesized shard.

    Uses cloudvolume's own index decoders, so the offsets the manifest route
    hands out are what its ShardReader would compute.
    """
    from cloudvolume.datasource.precomputed.sharding import ShardReader

    reader = ShardReader(None, None, spec)
    ranges = {}
    index = reader.decode_index(shard[: spec.index_length()])
    for start, end in index:
        if start == end:
            continue
        for label, offset, size in reader.decode_minishard_index(shard[int(start):int(end)]):
            ranges[int(label)] = (int(offset), int(size))
    return ranges


def write_graphene_layer(
    path: str | os.PathLike,
    meshes: Meshes,
    *,
    table: str = "test_graph",
    geometry: LayerGeometry | None = None,
    resolution=(8.0, 8.0, 40.0),
    n_layers: int = 12,
    max_meshed_layer: int = 6,
    draco_grid_size: float = 8.0,
    dynamic_every: int = 3,
) -> dict:
    """Write a graphene segmentation's mesh storage and its server-side description.

    Root ids must be valid layer-``n_layers`` graphene labels (the ids from
    :func:`support.neurons.make_root_ids` are). Each root mesh is
    cut on the graph's chunk grid (``geometry.chunk_size`` voxels from the
    dataset origin); each piece becomes a level-2 fragment with its own label.
    Every ``dynamic_every``-th fragment is stored "dynamic" (an unsharded file
    ``mesh/dynamic/<l2id>:0:<bbox>``, as after a proofreading edit); the rest go
    into "initial" shards ``mesh/initial/2/<chunk>-<shard>.shard``. Fragments
    are Draco-encoded in nanometres on a grid of ``draco_grid_size`` nm anchored
    at chunk origins, so border vertices of neighbouring chunks decode to the
    same point (what CloudVolume's stitching relies on).

    Layout under ``path``: ``data/`` (the bucket; ``info``, ``mesh/...``) and
    ``chunkedgraph.json`` with ``info`` (the chunkedgraph ``info``; its
    ``data_dir`` is relative, the server makes it a URL) and ``manifests``
    (``{root id: {"fragments": [...], "seg_ids": [...]}}``, what the meshing
    manifest route returns with ``verify=True``). Returns that description.
    """
    import DracoPy
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, synthesize_shard_files

    geometry = _geometry(meshes, geometry, resolution)
    root = Path(path)
    data_root = root / "data"
    mesh_root = data_root / "mesh"
    (mesh_root / "dynamic").mkdir(parents=True, exist_ok=True)
    (mesh_root / "initial" / "2").mkdir(parents=True, exist_ok=True)

    chunk_nm = geometry.chunk_nm
    if np.any(np.mod(chunk_nm, draco_grid_size) != 0):
        raise ValueError("chunk size in nm must be a multiple of draco_grid_size")
    # Smallest bit depth whose Draco grid spans a whole chunk.
    draco_bits = int(np.ceil(np.log2(chunk_nm.max() / draco_grid_size + 2)))
    draco_range = draco_grid_size * (2**draco_bits - 1)
    l2_bits = _SPATIAL_BITS["2"]
    segid_bits = 64 - _LAYER_ID_BITS - 3 * l2_bits

    # Small, fixed shard parameters: few labels per chunk, and more than one
    # minishard so the index decoding is exercised.
    spec = ShardingSpecification(
        type="neuroglancer_uint64_sharded_v1", preshift_bits=0, hash="murmurhash3_x86_128",
        minishard_bits=1, shard_bits=0, minishard_index_encoding="gzip", data_encoding="raw",
    )

    initial: dict[int, dict[int, bytes]] = {}  # chunk position number -> {l2id: draco}
    fragments_of: dict[int, list[tuple[int, str | None]]] = {}
    next_segid: dict[tuple[int, int, int], int] = {}
    counter = 0
    for root_id, mesh in sorted(meshes.items()):
        root_id = int(root_id)
        if (root_id >> (64 - _LAYER_ID_BITS)) != n_layers:
            raise ValueError(f"{root_id} is not a layer-{n_layers} graphene label")
        entries = []
        pieces = _cut_into_chunks(mesh.vertices, mesh.faces, chunk_nm, (0.0, 0.0, 0.0))
        for pos, (verts, faces) in sorted(pieces.items()):
            seg = next_segid.get(pos, 1)
            next_segid[pos] = seg + 1
            l2id = _graphene_label(2, *pos, seg, l2_bits)
            blob = DracoPy.encode(
                verts.astype(np.float32), faces, quantization_bits=draco_bits,
                quantization_range=draco_range,
                quantization_origin=tuple(float(c) for c in np.asarray(pos) * chunk_nm),
                compression_level=7,
            )
            if dynamic_every and counter % dynamic_every == dynamic_every - 1:
                lo = np.asarray(pos) * np.asarray(geometry.chunk_size)
                name = f"{l2id}:0:{_bbox_filename(lo, lo + np.asarray(geometry.chunk_size))}"
                (mesh_root / "dynamic" / name).write_bytes(blob)
                entries.append((l2id, name))
            else:
                initial.setdefault(l2id >> segid_bits & ((1 << 3 * l2_bits) - 1), {})[l2id] = blob
                entries.append((l2id, None))
            counter += 1
        fragments_of[root_id] = entries

    # Initial shards are per chunk: "<chunk position number>-<shard>.shard".
    located: dict[int, str] = {}
    for chunk_number, blobs in initial.items():
        for shard_name, shard in synthesize_shard_files(spec, blobs).items():
            filename = f"{chunk_number}-{shard_name}"
            (mesh_root / "initial" / "2" / filename).write_bytes(shard)
            for l2id, (start, size) in _graphene_byte_ranges(spec, shard).items():
                located[l2id] = f"~2/{filename}:{start}:{size}"

    manifests = {}
    for root_id, entries in fragments_of.items():
        names = [name if name is not None else located[l2id] for l2id, name in entries]
        manifests[str(root_id)] = {"fragments": names, "seg_ids": [l2id for l2id, _ in entries]}

    mesh_info = {
        "@type": "neuroglancer_legacy_mesh",
        "mip": 0,
        "chunk_size": list(geometry.chunk_size),
        "spatial_index": None,
        # CloudVolume makes one shard reader per level it may be asked for.
        "sharding": {str(level): spec.to_dict() for level in range(2, max_meshed_layer + 1)},
    }
    _write_json(mesh_root / "info", mesh_info)
    seg_info = geometry.segmentation_info(mesh_dir="mesh")
    _write_json(data_root / "info", seg_info)

    cg_info = dict(seg_info)
    cg_info.update({
        "data_dir": "data",  # relative: the serving code turns it into a URL
        "app": {"supported_api_versions": [0, 1]},
        "chunks_start_at_voxel_offset": False,
        "graph": {
            "chunk_size": list(geometry.chunk_size),
            "bounding_box": list(geometry.size or ()),
            "n_layers": n_layers,
            "n_bits_for_layer_id": _LAYER_ID_BITS,
            "spatial_bit_masks": {k: v for k, v in _SPATIAL_BITS.items() if int(k) <= n_layers},
            "cv_mip": 0,
            "fan_out": 2,
        },
        "mesh_metadata": {
            "uniform_draco_grid_size": draco_grid_size,
            "unsharded_mesh_dir": "dynamic",
            "max_meshed_layer": max_meshed_layer,
        },
    })
    description = {"table": table, "info": cg_info, "manifests": manifests}
    _write_json(root / GRAPHENE_SERVER_FILE, description)
    return description


# --------------------------------------------------------------------------
# CAVE InfoService
# --------------------------------------------------------------------------


def cave_datastack_info(
    datastack: str,
    *,
    server_url: str,
    segmentation_source: str,
    image_source: str | None = None,
    aligned_volume: str = "test_volume",
    aligned_volume_id: int = 1,
    resolution=(8.0, 8.0, 40.0),
    extra: Mapping | None = None,
) -> dict:
    """Payload of ``GET /info/api/v2/datastack/full/<datastack>`` for caveclient.

    ``segmentation_source`` is typically ``graphene://<server_url>/segmentation/table/<table>``.
    caveclient needs at least ``aligned_volume.{name,id}``, ``local_server``
    and ``segmentation_source``; the rest mirrors a real InfoService answer.
    """
    image_source = image_source or f"precomputed://{server_url}/{aligned_volume}/image"
    payload = {
        "datastack_name": datastack,
        "description": f"{datastack}: synthetic neurons for tests",
        "local_server": server_url,
        "segmentation_source": segmentation_source,
        "aligned_volume": {
            "name": aligned_volume,
            "id": aligned_volume_id,
            "image_source": image_source,
            "description": "synthetic aligned volume",
            "display_name": aligned_volume,
        },
        "analysis_database": None,
        "synapse_table": None,
        "soma_table": None,
        "viewer_site": None,
        "skeleton_source": None,
        "proofreading_status_table": None,
        "proofreading_review_table": None,
        "cell_identification_table": None,
        "viewer_resolution_x": float(resolution[0]),
        "viewer_resolution_y": float(resolution[1]),
        "viewer_resolution_z": float(resolution[2]),
    }
    if extra:
        payload.update(extra)
    return payload
