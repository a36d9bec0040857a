"""Operations on plain vertex/face arrays that several layers share (fetch, readers, info, steps, preview)."""

from __future__ import annotations

import threading

import numpy as np


_FACE_CHUNK = 1 << 16  # faces per chunk of the edge keys (temporaries stay in cache)


def edge_keys(faces: np.ndarray, directed: bool = False, threads: int = 1) -> np.ndarray:
    """Every face's three edges ``(a, b)`` as int64 keys ``min << 32 | max << 1``, plus
    ``a > b`` in the low bit when ``directed`` (indices below 2**31); edge ``k`` of face ``f``
    at ``k * len(faces) + f``. Sorted, the uses of one edge are neighbours. ``threads=2``
    computes alternate chunks on a second thread (numpy releases the GIL)."""
    count = len(faces)
    keys = np.empty(3 * count, dtype=np.int64)

    def chunks(first: int, step: int) -> None:
        for start in range(first * _FACE_CHUNK, count, step * _FACE_CHUNK):
            chunk = faces[start : start + _FACE_CHUNK].astype(np.int64)
            for k, (i, j) in enumerate(((0, 1), (1, 2), (2, 0))):
                a, b = chunk[:, i], chunk[:, j]
                out = keys[k * count + start : k * count + start + len(chunk)]
                np.minimum(a, b, out=out)
                out <<= 31
                out |= np.maximum(a, b)
                out <<= 1
                if directed:
                    out |= a > b

    if threads > 1 and count > 4 * _FACE_CHUNK:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mesh-export-edges") as pool:
            odd = pool.submit(chunks, 1, 2)
            chunks(0, 2)
            odd.result()  # its error, if any, is raised here: its chunks would be left unwritten
    else:
        chunks(0, 1)
    return keys


_WIDE = 1024  # vertices per wide row of column_extremes


def column_extremes(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``vertices.min(axis=0)``, ``vertices.max(axis=0)`` of an (n, 3) array, exactly, 13x faster
    on a 4M-vertex array (6 vs 82 ms): the rows are read as wide rows of 1024 vertices, so the
    reduction's inner loop runs along 3072 contiguous values instead of 3."""
    vertices = np.asarray(vertices)
    whole = len(vertices) - len(vertices) % _WIDE if vertices.flags.c_contiguous else 0
    lows, highs = [], []
    if whole:
        wide = vertices[:whole].reshape(-1, 3 * _WIDE)
        lows.append(wide.min(axis=0).reshape(_WIDE, 3).min(axis=0))
        highs.append(wide.max(axis=0).reshape(_WIDE, 3).max(axis=0))
    if whole < len(vertices):
        lows.append(vertices[whole:].min(axis=0))
        highs.append(vertices[whole:].max(axis=0))
    return np.min(lows, axis=0).astype(vertices.dtype), np.max(highs, axis=0).astype(vertices.dtype)


def _vertex_keys(vertices: np.ndarray) -> np.ndarray:
    """One uint64 per vertex from its float bit patterns; equal vertices get equal keys."""
    # Multiply-xor mixing: sorting 8-byte keys is several times faster than 12-byte voids.
    if vertices.dtype.itemsize == 4 and vertices.flags.c_contiguous:
        # x and y read as one 8-byte word in place (a strided view, no copy), z widened: 2.7x
        # faster than widening all three (0.09 vs 0.24 s for 5M vertices).
        n = len(vertices)
        bits = vertices.view(np.uint32)
        keys = np.ndarray((n,), dtype=np.uint64, buffer=bits, offset=0, strides=(12,)) * np.uint64(0x9E3779B97F4A7C15)
        z = bits[:, 2].astype(np.uint64)
        z *= np.uint64(0xC2B2AE3D27D4EB4F)
        keys ^= z
        return keys
    bits = vertices.view(np.uint32 if vertices.dtype.itemsize == 4 else np.uint64).astype(np.uint64)
    keys = bits[:, 0] * np.uint64(0x9E3779B97F4A7C15)
    keys ^= bits[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)
    keys ^= bits[:, 2] * np.uint64(0x165667B19E3779F9)
    return keys


def merge_keys(vertices: np.ndarray) -> np.ndarray:
    """Prepare float32 ``vertices`` for :func:`merge_duplicate_vertices` in place (-0.0 becomes
    0.0) and return their merge keys. A fetch calls this on each fragment as it is decoded, on
    the thread that fetched it, so the keys of a 10M-face mesh cost no time after the download."""
    prepare_for_merge(vertices)
    return _vertex_keys(vertices)


def prepare_for_merge(vertices: np.ndarray) -> None:
    """-0.0 made 0.0 in place: the two are one point, and the merge compares bits."""
    np.add(vertices, vertices.dtype.type(0.0), out=vertices)


#: Faces per task when the face remap runs on two threads (numpy's take and compress release the GIL).
_FACE_BLOCK = 1 << 18


def merge_duplicate_vertices(vertices: np.ndarray, faces: np.ndarray, *,
                             keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Merge bit-identical vertices (fragment borders, Draco splits), keeping first-seen order.

    Faces that collapse to a line or point after merging are dropped. Returns the new
    vertices, faces (int32 when the vertex count allows) and how many vertices were merged.
    ``keys``: :func:`merge_keys` of ``vertices``, which it has already prepared (then
    ``vertices`` is used as it is, not copied).

    At 10M faces the ``np.unique(return_index, return_inverse)`` this replaces took 4.5 s: a
    stable argsort plus a second argsort to restore first-seen order. Here a hash of each
    vertex and its position share one uint64, so a plain ``sort`` (twice as fast as
    ``argsort``) groups equal hashes with the first-seen position leading each group; hash
    collisions are found by comparing coordinates and resolved exactly.
    """
    return merge_pieces([(vertices, faces)], keys=keys)


def merge_pieces(pieces: list, *, keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`merge_duplicate_vertices` of the pieces' concatenation (``(vertices, faces)`` each,
    the faces indexing the piece's own vertices), written straight from the pieces: a fetch's
    fragments are never copied into one array first (at 9M faces that copy alone cost 0.45 s of
    fresh memory). ``pieces`` is emptied as each piece is used, so its memory goes back early.

    ``keys``: :func:`merge_keys` of every piece's vertices, concatenated (the pieces already
    prepared by it); without them each piece is prepared on a copy."""
    if keys is None:
        # float32 (decoded meshes) or float64 (files) kept as they are, one type for all the
        # pieces (their rows are compared across pieces); -0.0 becomes 0.0.
        dtype = np.dtype(np.float32 if all(v.dtype == np.float32 for v, _ in pieces) else np.float64)
        pieces[:] = [(np.ascontiguousarray(vertices, dtype=dtype) + dtype.type(0.0), faces)
                     for vertices, faces in pieces]
        keys = (_vertex_keys(pieces[0][0]) if len(pieces) == 1
                else np.concatenate([_vertex_keys(vertices) for vertices, _ in pieces]))
    elif len({vertices.dtype for vertices, _ in pieces}) > 1:
        raise ValueError("pieces prepared by merge_keys must share one vertex type")
    sizes = [len(vertices) for vertices, _ in pieces]
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    n = int(offsets[-1])
    if len(keys) != n:
        raise ValueError(f"{len(keys)} merge keys for {n} vertices")
    dtype = pieces[0][0].dtype if pieces else np.dtype(np.float32)
    if n == 0:  # no vertices, so no faces either (each piece's were checked against its own)
        pieces.clear()
        return np.zeros((0, 3), dtype), np.zeros((0, 3), np.int32), 0
    index = np.int32 if n < 2**31 else np.int64
    representative = _representatives(keys, index)
    del keys
    _resolve_collisions(_row_taker(pieces, offsets), representative)
    is_first = representative == np.arange(n, dtype=index)
    kept_before = np.zeros(n + 1, dtype=index)
    np.cumsum(is_first, dtype=index, out=kept_before[1:])
    remap = (kept_before[1:] - 1).take(representative)  # every vertex's index among the kept ones
    del representative
    merged = np.empty((int(kept_before[-1]), 3), dtype=dtype)
    kept_at = kept_before[offsets]
    del kept_before

    def keep_vertices(k: int) -> None:
        lo, hi = offsets[k], offsets[k + 1]
        # 3x faster than vertices[mask] on (n, 3)
        np.compress(is_first[lo:hi], pieces[k][0], axis=0, out=merged[kept_at[k]:kept_at[k + 1]])

    blocks = [(k, start) for k, (_, faces) in enumerate(pieces) for start in range(0, max(len(faces), 1), _FACE_BLOCK)]
    face_count = sum(len(faces) for _, faces in pieces)
    faces_out = _remap_faces(remap, offsets, pieces, blocks, keep_vertices, threads=2 if face_count > 2 * _FACE_BLOCK else 1)
    return merged, faces_out, n - len(merged)


def _row_taker(pieces: list, offsets: np.ndarray):
    """Rows of the pieces' concatenated vertices by global index, without the concatenation."""
    if len(pieces) == 1:
        return lambda rows: pieces[0][0].take(rows, axis=0)

    def take(rows: np.ndarray) -> np.ndarray:
        order = np.argsort(rows)
        ordered = rows[order]
        bounds = np.searchsorted(ordered, offsets)  # rows of piece k: ordered[bounds[k]:bounds[k + 1]]
        out = np.empty((len(rows), 3), dtype=pieces[0][0].dtype)
        for k in np.flatnonzero(np.diff(bounds)):
            at = order[bounds[k]:bounds[k + 1]]
            out[at] = pieces[k][0].take(ordered[bounds[k]:bounds[k + 1]] - offsets[k], axis=0)
        return out

    return take


def _remap_faces(remap: np.ndarray, offsets: np.ndarray, pieces: list, blocks: list, keep_vertices,
                 threads: int) -> np.ndarray:
    """Every piece's faces through ``remap`` (offset to the piece's vertices), without the faces
    that collapse to a line or a point; ``keep_vertices(k)`` runs once per piece before the
    piece is dropped. Blocks of faces run on two threads for large meshes (the gather and the
    compress are memory-bound random access, and numpy releases the GIL in both).

    Each block is gathered straight into its place in one array, and the collapsed faces are
    then squeezed out in place, a block at a time: no second array of faces. Fresh memory is
    what a 9M-face merge waits on (on a VM each new page is a host fault), and blocks gathered
    apart and then joined wrote every face into two fresh arrays."""
    pending = [0] * len(pieces)
    for k, _ in blocks:
        pending[k] += 1
    sizes = [min(_FACE_BLOCK, len(pieces[k][1]) - start) for k, start in blocks]
    block_at = np.zeros(len(blocks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=block_at[1:])
    result = np.empty((int(block_at[-1]), 3), dtype=remap.dtype)

    def block(task: int) -> np.ndarray | None:
        k, start = blocks[task]
        out = result[block_at[task]:block_at[task + 1]]
        remap[offsets[k]:offsets[k + 1]].take(pieces[k][1][start:start + _FACE_BLOCK], out=out)
        a, b, c = out[:, 0], out[:, 1], out[:, 2]
        keep = a != b
        keep &= b != c
        keep &= a != c
        return None if keep.all() else keep

    def piece_done(k: int) -> None:
        keep_vertices(k)
        pieces[k] = None  # its memory goes back as soon as both its parts are written

    if threads == 1:
        keeps = [block(task) for task in range(len(blocks))]
        for k in range(len(pieces)):
            piece_done(k)
    else:
        from concurrent.futures import ThreadPoolExecutor

        lock = threading.Lock()

        def run(task: int) -> np.ndarray | None:
            keep = block(task)
            k = blocks[task][0]
            with lock:
                pending[k] -= 1
                last = pending[k] == 0
            if last:
                piece_done(k)
            return keep

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mesh-export-merge") as pool:
            keeps = list(pool.map(run, range(len(blocks))))
    pieces.clear()
    # Squeezed forwards: a block only ever moves towards the front, onto faces already moved.
    kept = 0
    for task, keep in enumerate(keeps):
        source = result[block_at[task]:block_at[task + 1]]
        if keep is not None:
            source = np.compress(keep, source, axis=0)  # a block-sized copy, still in cache
        if kept != block_at[task] or keep is not None:
            result[kept:kept + len(source)] = source
        kept += len(source)
    return result[:kept] if kept < len(result) else result


def first_equal_rows(rows: np.ndarray) -> np.ndarray:
    """For each row of an (n, 3) array of 4- or 8-byte values (ints, floats), the index of the first
    row equal to it (itself when it is the first): duplicates grouped by one sort of a hash, in
    first-seen order, as ``merge_duplicate_vertices`` does."""
    rows = np.ascontiguousarray(rows)
    representative = _representatives(_vertex_keys(rows), np.int32 if len(rows) < 2**31 else np.int64)
    _resolve_collisions(lambda at: rows.take(at, axis=0), representative)
    return representative


def _representatives(keys: np.ndarray, index) -> np.ndarray:
    """For every element, the position of the first element with an equal key (position bits
    share the key's word, so a collision of the remaining hash bits is possible: see
    :func:`_resolve_collisions`)."""
    n = len(keys)
    position_bits = max(1, (n - 1).bit_length())
    low = np.uint64((1 << position_bits) - 1)
    packed = keys & ~low
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    order = (packed & low).astype(index)
    packed >>= np.uint64(position_bits)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(packed[1:], packed[:-1], out=starts[1:])
    del packed
    group = np.cumsum(starts, dtype=index)
    group -= 1
    representative = np.empty(n, dtype=index)
    representative[order] = order[starts][group]
    return representative


def _resolve_collisions(take, representative: np.ndarray) -> None:
    """Where a vertex was joined to a different one (equal hash bits), regroup exactly, in place;
    ``take(indices)`` gives the vertices' rows."""
    joined = np.flatnonzero(representative != np.arange(len(representative), dtype=representative.dtype))
    wrong = joined[(take(joined) != take(representative[joined])).any(axis=1)]
    if len(wrong) == 0:
        return
    members = np.flatnonzero(np.isin(representative, np.unique(representative[wrong])))  # ascending
    rows = np.ascontiguousarray(take(members))
    rows = rows.view(np.dtype((np.void, rows.dtype.itemsize * 3))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    representative[members] = members[first[inverse.ravel()]]


def quadric_decimate(vertices: np.ndarray, faces: np.ndarray, **target) -> tuple[np.ndarray, np.ndarray]:
    """fast-simplification's quadric decimation (``target_count=`` or ``target_reduction=``),
    run on coordinates scaled into the unit cube and scaled back: on nanometre-scale values it
    stalls (one test stopped at ~24% of the faces when asked for 10%)."""
    import fast_simplification

    lo = vertices.min(axis=0)
    extent = float((vertices.max(axis=0) - lo).max()) or 1.0
    # int32 faces go in as they are (it loads either width): no 64-bit copy of a 9M-face array.
    faces = faces if faces.dtype in (np.int32, np.int64) else faces.astype(np.int64)
    points, tris = fast_simplification.simplify((vertices - lo) / extent, faces, **target)
    return points * extent + lo, tris
