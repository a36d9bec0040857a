"""Shared helpers for writers: the arrays to write, the provenance line for headers, face
normals. Binary files are laid out and written by ``_layout``."""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from mesh_export._version import __version__
from mesh_export.writers._layout import Rows, Scratch, scratch_array

# Rows per chunk for whole-mesh helpers (float32 vertices, ASCII STL normals): a chunk's
# temporaries stay in the CPU cache. Binary files are chunked by _layout.CHUNK_BYTES.
CHUNK_ROWS = 1 << 14


def triangles(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (float) and faces (int) of a validated trimesh.Trimesh, without copies."""
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def units_of(mesh) -> str:
    return getattr(mesh, "units", None) or "unknown"


def provenance_line(mesh) -> str:
    """One line naming the tool and the units, for formats with a comment or title field."""
    return tool_line(units_of(mesh))


def tool_line(units: str) -> str:
    return f"mesh-export {__version__} units={units}"


def _void(nbytes: int) -> np.dtype:
    return np.dtype((np.void, nbytes))


def gather_corners32(vertices32: np.ndarray, faces: np.ndarray, scratch: Scratch | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
    """``vertices32[faces]`` as a contiguous (n, 9) float32 array, for faces whose indices
    were checked (validate) to lie inside ``vertices32``.

    One 12-byte record per corner (a 1-D ``take`` over a void view) is about 4x faster than
    numpy's (n, 3)-row fancy indexing; with ``scratch`` the result and the index copy reuse
    per-thread buffers; ``out``: an (n, 9) float32 array to gather into instead.
    """
    rows = vertices32.view(_void(12)).reshape(-1)  # needs C-contiguous float32 (n, 3)
    n = faces.size
    indices = faces.reshape(-1)
    if len(rows) < 2**31:  # numpy's take is ~1.6x faster with int32 indices
        narrow = np.empty(n, np.int32) if scratch is None else scratch_array(scratch, "gather.indices", np.int32, n)[:n]
        np.copyto(narrow, indices, casting="unsafe")
        indices = narrow
    if out is not None:
        corners = out.reshape(-1).view(_void(12))
    else:
        corners = np.empty(n, _void(12)) if scratch is None else scratch_array(scratch, "gather.corners", _void(12), n)[:n]
    # mode="clip" writes straight into ``corners`` ("raise" buffers a copy); the indices are
    # already known to be in range, so clipping never changes one.
    rows.take(indices, out=corners, mode="clip")
    return corners.view(np.float32).reshape(len(faces), 9)


def normals_from_corners(corners: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Unit normals (n, 3) float32 of triangles given as (n, 9) float32 corners; zero for
    degenerate faces. Works on 1-D component columns: numpy's (n, 3)-shaped arithmetic runs
    an inner loop of length 3 and is several times slower."""
    return normals_and_degenerate(corners, out)[0]


def normals_and_degenerate(corners: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`normals_from_corners` and which faces have no area (a bool mask; None if none has)."""
    n = len(corners)
    normals = np.empty((n, 3), dtype=np.float32) if out is None else out[:n]
    e1x, e1y, e1z = (corners[:, 3 + c] - corners[:, c] for c in range(3))
    e2x, e2y, e2z = (corners[:, 6 + c] - corners[:, c] for c in range(3))
    # Same products and order as np.cross, so the normals are bit-identical to it.
    nx = e1y * e2z
    nx -= e1z * e2y
    ny = e1z * e2x
    ny -= e1x * e2z
    nz = e1x * e2y
    nz -= e1y * e2x
    length = nx * nx
    length += ny * ny
    length += nz * nz
    np.sqrt(length, out=length)
    degenerate = not length.all()
    if degenerate:
        zero = length == 0
        length[zero] = 1.0
    for c, component in enumerate((nx, ny, nz)):
        np.divide(component, length, out=normals[:, c])
    if degenerate:
        normals[zero] = 0
        return normals, zero
    return normals, None


def float32_vertices(vertices: np.ndarray, check: Callable[[np.ndarray, np.ndarray], None]) -> np.ndarray:
    """``vertices`` as a C-contiguous float32 array (itself if it is one), converted and
    ``check``-ed a chunk at a time."""
    as_is = vertices.dtype == np.float32 and vertices.flags.c_contiguous
    vertices32 = vertices if as_is else np.empty(vertices.shape, dtype=np.float32)
    rows = 4 * CHUNK_ROWS
    for start in range(0, len(vertices), rows):
        out = vertices32[start : start + rows]
        if not as_is:
            with np.errstate(over="ignore"):  # overflow to inf is what check() looks for
                np.copyto(out, vertices[start : start + rows], casting="unsafe")
        check(vertices[start : start + rows], out)
    return vertices32


def face_normals32(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals in float32 (zero for degenerate faces), computed without trimesh's caches."""
    vertices32 = np.ascontiguousarray(vertices, dtype=np.float32)
    normals = np.empty((len(faces), 3), dtype=np.float32)
    for start in range(0, len(faces), CHUNK_ROWS):
        stop = min(len(faces), start + CHUNK_ROWS)
        normals_from_corners(gather_corners32(vertices32, faces[start:stop]), out=normals[start:stop])
    return normals


_V12 = _void(12)


def counted_triangles(faces: np.ndarray, check: Callable[[np.ndarray], None], count_type: str,
                      index_type: str) -> Rows:
    """Packed ``3 a b c`` records (a vertex count, then three indices), as PLY's face list
    and legacy VTK's POLYGONS store triangles. ``check`` runs on each chunk of faces."""
    record, indices_type = _counted_triangle_types(count_type, index_type)
    count_bytes = np.dtype(count_type).itemsize
    name = f"counted_triangles.{count_type}.{index_type}"

    def fill(start: int, stop: int, scratch: Scratch) -> memoryview:
        chunk = faces[start:stop]
        records = scratch_array(scratch, name, record, stop - start, _set_count)[: stop - start]
        # Cast (and byte-swap) contiguously, then move the 12-byte triples as opaque bytes:
        # assigning the (n, 3) field directly is several times slower.
        indices = scratch_array(scratch, name + ".indices", indices_type, stop - start)[: stop - start]
        np.copyto(indices, chunk, casting="unsafe")
        check(chunk)  # after the cast, which brought the chunk into cache
        records.view(np.uint8).reshape(len(chunk), record.itemsize)[:, count_bytes:].view(_V12)[:, 0] = (
            indices.view(_V12)[:, 0])
        return memoryview(records).cast("B")

    return Rows(len(faces), record.itemsize, fill)


@functools.lru_cache(maxsize=None)
def _counted_triangle_types(count_type: str, index_type: str) -> tuple[np.dtype, np.dtype]:
    return np.dtype([("count", count_type), ("indices", index_type, (3,))]), np.dtype((index_type, (3,)))


def _set_count(records: np.ndarray) -> None:
    records["count"] = 3
