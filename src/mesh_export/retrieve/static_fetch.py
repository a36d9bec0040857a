"""Static precomputed meshes (multi-resolution Draco, sharded or not, and legacy), fetched
and decoded here; CloudVolume supplies the formats.

CloudVolume's ``mesh.get(id, lod=k)`` on a 9M-face multi-LOD mesh spends its time after the
download: each fragment decoded into a ``Mesh`` (two copies), moved to nanometres in float64,
``Mesh.concatenate`` (two more copies), all on one thread; and every request runs inside
CloudFiles' own retries (7 attempts, backoff up to 60 s), so under our retries a permanent 503
took minutes. Here:

- the layer's ``info`` and mesh ``info`` are read once per process and layer;
- the shard index, minishard index and manifest are read by byte range through
  :class:`~mesh_export.retrieve.remote.Remote` (our single layer of retries, within ``--timeout``) and
  decoded by CloudVolume's own ``ShardReader.decode_index``/``decode_minishard_index`` and
  ``MultiLevelPrecomputedMeshManifest.from_binary``; shard and minishard indices are kept for
  the next id of a batch;
- the lod's bytes are requested as a few ranges of whole fragments at once, each decoded with
  DracoPy on the thread that fetched it (DracoPy lets a second core decode), so decoding
  overlaps the downloads still in flight;
- each fragment goes from stored model space to nanometres with CloudVolume's exact arithmetic
  (``from_stored_model_space``, then ``apply_transform``: the same operand types in the same
  order, so the float32 vertices are bit for bit the ones ``mesh.get`` returns) and gets its
  merge keys on the same thread; :func:`mesh_export.retrieve.fetch.fetch_mesh` then merges
  the fragments once, writing the merged arrays straight from them
  (:func:`mesh_export.core.mesh_ops.merge_pieces`).

Legacy (single-resolution) layers go through the same fetcher: the ``<id>:0`` manifest, then
every fragment it lists, a missing one recorded (``--allow-missing``) rather than hidden.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import numpy as np

from mesh_export.errors import IncompleteMeshError, InvalidMeshError, NotFoundError, SourceError
from mesh_export.retrieve.fetched import Fetched, decoded_piece, from_pieces, single_lod
from mesh_export.retrieve.politeness import Retrier
from mesh_export.retrieve.remote import Missing, Remote, join

#: The lod's bytes are requested in about this many ranges (whole fragments each), so that
#: decoding starts with the first and two cores decode at once; ranges are never smaller than
#: ``_MIN_RANGE`` bytes (a request costs a round trip, and a token of the shared rate limit).
_RANGES = 8
_MIN_RANGE = 256 * 1024
#: A range whose bytes arrive complete but do not decode is fetched again this many times.
_DECODE_ATTEMPTS = 2
_MULTIRES = "neuroglancer_multilod_draco"
_SHARDED = "neuroglancer_uint64_sharded_v1"
_INDEX_CACHE = 256
T = TypeVar("T")


@dataclass
class StaticLayer:
    """What a precomputed cloudpath's ``info`` and mesh ``info`` say about its meshes."""

    cloudpath: str
    mesh_dir: str
    multires: bool
    transform: np.ndarray  # 4 x 4, stored model space -> nm
    quantization_bits: int = 0
    sharding: Any = None  # cloudvolume ShardingSpecification, for sharded multires layers
    _indices: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def remember(self, key, read: Callable[[], Any]):
        """A shard or minishard index, read once and kept (the layer is static)."""
        with self._lock:
            if key in self._indices:
                self._indices.move_to_end(key)
                return self._indices[key]
        value = read()
        with self._lock:
            self._indices[key] = value
            while len(self._indices) > _INDEX_CACHE:
                self._indices.popitem(last=False)
        return value


_LAYERS: dict[str, StaticLayer] = {}
_LAYERS_LOCK = threading.Lock()


def _json(remote: Remote, path: str, cloudpath: str) -> dict | None:
    try:
        raw = remote.get(path)
    except Missing:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise SourceError(f"{cloudpath}: {path} is not JSON") from None


def open_layer(cloudpath: str, retry: Retrier, token: str | None = None) -> StaticLayer:
    """Read (once per process) the ``info`` and mesh ``info`` of a precomputed cloudpath.

    Mirrors CloudVolume's ``PrecomputedMeshMetadata``: the mesh directory is ``info["mesh"]``
    (default ``mesh``), and no or an empty mesh ``info`` means legacy meshes."""
    with _LAYERS_LOCK:
        if cloudpath in _LAYERS:
            return _LAYERS[cloudpath]
    remote = Remote(cloudpath, retry, threads=1, token=_storage_token(cloudpath, token))
    info = _json(remote, "info", cloudpath)
    if info is None:
        raise SourceError(f"{cloudpath} has no info file: not a precomputed layer")
    mesh_dir = info.get("mesh") or "mesh"
    mesh_info = (_json(remote, join(mesh_dir, "info"), cloudpath) if info.get("mesh") else None) or {}
    multires = mesh_info.get("@type") == _MULTIRES
    transform = (np.array(list(mesh_info["transform"]) + [0, 0, 0, 1], dtype=np.float64).reshape(4, 4)
                 if "transform" in mesh_info else np.eye(4))
    layer = StaticLayer(cloudpath, mesh_dir, multires, transform)
    if multires:
        layer.quantization_bits = int(mesh_info["vertex_quantization_bits"])
        sharding = mesh_info.get("sharding")
        if sharding and sharding.get("@type") == _SHARDED:
            from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

            layer.sharding = ShardingSpecification.from_dict(sharding)
    with _LAYERS_LOCK:
        return _LAYERS.setdefault(cloudpath, layer)


def _storage_token(cloudpath: str, token: str | None) -> str | None:
    """The CAVE token goes only to ``middleauth+`` storage; public buckets must not get it."""
    return token if "middleauth+" in cloudpath else None


def fetch_static(cloudpath: str, root_id: int, *, lod: int | None, retry: Retrier,
                 allow_missing: bool = False, token: str | None = None, threads: int = 8,
                 opened: Callable[[], None] | None = None, merge_keys: bool = True) -> Fetched:
    """``root_id``'s mesh at ``cloudpath`` (``precomputed://...``), its fragments decoded for
    the merge (``Fetched.pieces``: float32 nm, not yet merged; ``merge_keys=False``: their merge
    keys not computed, for a mesh that is not merged)."""
    layer = open_layer(cloudpath, retry, token)
    if opened is not None:
        opened()
    remote = Remote(cloudpath, retry, threads=threads, token=_storage_token(cloudpath, token))
    if layer.multires:
        return _fetch_multires(layer, remote, root_id, lod, merge_keys)
    return _fetch_legacy(layer, remote, root_id, lod, allow_missing, merge_keys)


# ---------------------------------------------------------------------- multi-resolution


def _not_found(root_id: int) -> NotFoundError:
    return NotFoundError(f"root id {root_id} has no mesh at this source")


def _read_manifest(layer: StaticLayer, remote: Remote, root_id: int):
    """The id's manifest, the file holding its fragments and where lod 0's bytes start."""
    from cloudvolume.datasource.precomputed.mesh.multilod import MultiLevelPrecomputedMeshManifest

    if layer.sharding is None:
        try:
            binary = remote.get(join(layer.mesh_dir, f"{root_id}.index"))
        except Missing:
            raise _not_found(root_id) from None
        manifest = MultiLevelPrecomputedMeshManifest.from_binary(binary, segment_id=root_id)
        return manifest, join(layer.mesh_dir, str(root_id)), 0

    from cloudvolume import compression
    from cloudvolume.datasource.precomputed.sharding import ShardReader

    spec = layer.sharding
    reader = ShardReader(None, None, spec)
    filename, minishard = reader.compute_shard_location(root_id)
    path = join(layer.mesh_dir, filename)

    def shard_index():
        try:
            return reader.decode_index(remote.get(path, 0, spec.index_length()), path)
        except Missing:
            return None  # no such shard: none of its ids has a mesh

    index = layer.remember(path, shard_index)
    if index is None:
        raise _not_found(root_id)
    start, end = (int(x) for x in index[int(minishard)])
    if start == end:
        raise _not_found(root_id)

    def minishard_index():
        return reader.decode_minishard_index(remote.get(path, start, end - start), path)

    try:
        entries = layer.remember((path, start, end), minishard_index)
    except Missing:
        raise _not_found(root_id) from None
    rows = entries[entries[:, 0] == np.uint64(root_id)]
    if len(rows) == 0:
        raise _not_found(root_id)
    offset, size = int(rows[0, 1]), int(rows[0, 2])
    try:
        binary = remote.get(path, offset, size)
    except Missing:
        raise _not_found(root_id) from None
    if spec.data_encoding != "raw":
        binary = compression.decompress(binary, encoding=spec.data_encoding, filename=path)
    manifest = MultiLevelPrecomputedMeshManifest.from_binary(binary, segment_id=root_id, shard_offset=offset,
                                                             path=path)
    # The fragment data of every lod lies just before the manifest in the shard.
    total = sum(int(np.sum(sizes, dtype=np.int64)) for sizes in manifest.fragment_offsets)
    return manifest, path, offset - total


def _fetch_multires(layer: StaticLayer, remote: Remote, root_id: int, lod: int | None, keys: bool) -> Fetched:
    manifest, path, data_start = _read_manifest(layer, remote, root_id)
    levels = int(manifest.num_lods)
    wanted = 0 if lod is None else lod
    if not -levels <= wanted < levels:
        raise SourceError(f"root id {root_id} has lods 0..{levels - 1} (and -1 for the coarsest); "
                          f"--lod {wanted} is not one of them")
    wanted %= levels
    sizes = [np.asarray(s, dtype=np.int64) for s in manifest.fragment_offsets]
    start = data_start + sum(int(s.sum()) for s in sizes[:wanted])
    ranges = _ranges(sizes[wanted], start)

    def work(remote: Remote, job) -> list:
        return _decode_range(remote, path, job, manifest, wanted, layer, root_id, keys)

    pieces = [piece for decoded in remote.map(ranges, work) for piece in decoded]
    if not pieces:
        raise NotFoundError(f"root id {root_id}: lod {wanted} has no fragments")
    return from_pieces(pieces, wanted, levels, int(manifest.num_fragments_per_lod[wanted]))


def _ranges(sizes: np.ndarray, start: int) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
    """Cut one lod's fragments (``sizes`` bytes each, from byte ``start``) into a few ranges of
    whole fragments: ``(range start, range size, [(fragment, offset in range, size), ...])``."""
    total = int(sizes.sum())
    target = max(_MIN_RANGE, -(-total // _RANGES))
    ranges, fragments, begin, length = [], [], start, 0
    for fragment, size in enumerate(sizes.tolist()):
        fragments.append((fragment, length, size))
        length += size
        if length >= target:
            ranges.append((begin, length, fragments))
            fragments, begin, length = [], begin + length, 0
    if fragments:
        ranges.append((begin, length, fragments))
    return [r for r in ranges if r[1] > 0]


def _decode_range(remote: Remote, path: str, job, manifest, lod: int, layer: StaticLayer,
                  root_id: int, keys: bool = True) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Fetch one range of fragments and decode each to (float32 nm vertices, uint32 faces, merge
    keys or None: :func:`decoded_piece`)."""
    import DracoPy

    start, size, fragments = job

    def decode(data: bytes) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        pieces = []
        for fragment, offset, length in fragments:
            if length == 0:
                # Neuroglancer's writers leave empty fragments where a child has no parent.
                continue
            try:
                decoded = DracoPy.decode(data[offset:offset + length])
            except Exception as exc:  # DracoPy raises several types for bad bytes
                raise InvalidMeshError(f"root id {root_id}: lod {lod} fragment {fragment} cannot be decoded "
                                       f"({type(exc).__name__}: {exc})") from None
            vertices = stored_to_physical(np.asarray(decoded.points, dtype=np.float32).reshape(-1, 3),
                                          manifest, lod, layer.quantization_bits, fragment, layer.transform)
            pieces.append(decoded_piece(vertices, decoded.faces, f"root id {root_id}: lod {lod} fragment {fragment}",
                                        keys=keys))
        return pieces

    return _fetch_decoded(remote, lambda: remote.get(path, start, size), decode)


def _fetch_decoded(remote: Remote, fetch: Callable[[], bytes], decode: Callable[[bytes], T]) -> T:
    """``decode(fetch())``. Bytes that arrive whole but do not decode (``decode`` raises
    InvalidMeshError) are fetched again, up to ``_DECODE_ATTEMPTS`` more times within the budget."""
    for attempt in range(_DECODE_ATTEMPTS + 1):
        try:
            return decode(fetch())
        except InvalidMeshError:
            if attempt == _DECODE_ATTEMPTS or remote.retry.expired():
                raise
        with remote.retry._lock:
            remote.retry.retries += 1
    raise AssertionError("unreachable")  # pragma: no cover


def stored_to_physical(points: np.ndarray, manifest, lod: int, bits: int, fragment: int,
                       transform: np.ndarray) -> np.ndarray:
    """Decoded Draco positions of one fragment -> float32 nm, exactly as CloudVolume computes them.

    ``from_stored_model_space`` is ``grid_origin + vertex_offsets[lod] + chunk_shape * 2**lod *
    (fragment_position + x / (2**bits - 1))`` with float32 manifest fields and uint32 positions,
    which numpy evaluates in float64; then ``apply_transform`` and a float32 cast. The same
    operations on the same types, in the same order (some in place), give the same bits."""
    model = np.add(manifest.fragment_positions[lod][fragment, :], points / (2.0 ** bits - 1))
    np.multiply(manifest.chunk_shape * (2 ** lod), model, out=model)
    np.add(manifest.grid_origin + manifest.vertex_offsets[lod], model, out=model)
    return _to_nm(model, transform)


def _to_nm(vertices: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """CloudVolume's ``apply_transform`` (3 x 4 matrix times homogeneous float64 columns), then
    float32. A pure scaling (the usual resolution transform) is applied as one multiply per
    axis: each matrix product then has a single non-zero term, so the result is the same."""
    if (transform == np.eye(4)).all():
        return vertices.astype(np.float32)
    linear, shift = transform[:3, :3], transform[:3, 3]
    if not shift.any() and not (linear - np.diag(np.diag(linear))).any():
        np.multiply(vertices, np.diag(linear), out=vertices)
        return vertices.astype(np.float32)
    homogeneous = np.hstack([vertices, np.ones((len(vertices), 1))]).T
    return np.matmul(transform[:3, :], homogeneous).T.astype(np.float32)


# ---------------------------------------------------------------------- legacy


def _fetch_legacy(layer: StaticLayer, remote: Remote, root_id: int, lod: int | None,
                  allow_missing: bool, keys: bool = True) -> Fetched:
    """The ``<id>:0`` manifest, then every fragment it lists, in its order."""
    lod = single_lod(lod, "legacy precomputed")
    try:
        manifest = json.loads(remote.get(join(layer.mesh_dir, f"{root_id}:0")))
    except Missing:
        raise _not_found(root_id) from None
    except ValueError:
        raise InvalidMeshError(f"root id {root_id}: its mesh manifest is not JSON") from None
    names = list(manifest.get("fragments") or [])
    if not names:
        raise _not_found(root_id)

    def work(remote: Remote, name: str):
        return _legacy_fragment(remote, layer, name, root_id, keys)

    results = remote.map(names, work)
    missing = [name for name, result in zip(names, results) if result is None]
    if missing and not allow_missing:
        raise IncompleteMeshError(f"root id {root_id}: {len(missing)} of {len(names)} fragments listed in "
                                  "its manifest could not be fetched; pass --allow-missing to export the rest")
    pieces = [result for result in results if result is not None]
    if not pieces:
        raise NotFoundError(f"root id {root_id}: none of its {len(names)} fragments could be fetched")
    return from_pieces(pieces, lod, None, len(names), missing)


def _legacy_fragment(remote: Remote, layer: StaticLayer, name: str, root_id: int, keys: bool = True):
    """One legacy fragment (uint32 vertex count, float32 xyz, uint32 triangles) in nm, or
    None if it is missing."""

    def decode(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        count = int(np.frombuffer(data[:4], dtype="<u4")[0]) if len(data) >= 4 else -1
        rest = len(data) - 4 - 12 * count
        if count < 0 or rest < 0 or rest % 12:
            raise InvalidMeshError(f"root id {root_id}: fragment {name} is not a precomputed mesh "
                                   f"({len(data)} bytes)")
        vertices = np.frombuffer(data, dtype="<f4", count=3 * count, offset=4).reshape(-1, 3)
        faces = np.frombuffer(data, dtype="<u4", offset=4 + 12 * count).reshape(-1, 3)
        if not (layer.transform == np.eye(4)).all():
            vertices = _to_nm(vertices.astype(np.float64), layer.transform)
        return decoded_piece(vertices, faces, f"root id {root_id}: fragment {name}", keys=keys)

    try:
        return _fetch_decoded(remote, lambda: remote.get(join(layer.mesh_dir, name)), decode)
    except Missing:
        return None
