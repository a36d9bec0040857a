"""Shared helpers for writers: the arrays to write, the provenance line for headers, normals
and chunked output."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .. import __version__

# Rows per chunk for the binary writers: a chunk's scratch arrays stay in the CPU cache.
CHUNK_ROWS = 1 << 14


def triangles(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (float) and faces (int) of a validated trimesh.Trimesh, without copies."""
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def units_of(mesh) -> str:
    return getattr(mesh, "units", None) or "unknown"


def provenance_line(mesh) -> str:
    """One line naming the tool and the units, for formats with a comment or title field."""
    return f"mesh-export {__version__} units={units_of(mesh)}"


def _void(nbytes: int) -> np.dtype:
    return np.dtype((np.void, nbytes))


def gather_corners32(vertices32: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``vertices32[faces]`` as a contiguous (n, 9) float32 array.

    One 12-byte record per corner (a 1-D ``take`` over a void view) is about 4x faster than
    numpy's (n, 3)-row fancy indexing.
    """
    rows = vertices32.view(_void(12)).reshape(-1)  # needs C-contiguous float32 (n, 3)
    indices = faces.reshape(-1)
    if len(rows) < 2**31:
        indices = indices.astype(np.int32)  # numpy's take is ~1.6x faster with int32 indices
    return rows.take(indices).view(np.float32).reshape(len(faces), 9)


def normals_from_corners(corners: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Unit normals (n, 3) float32 of triangles given as (n, 9) float32 corners; zero for
    degenerate faces. Works on 1-D component columns: numpy's (n, 3)-shaped arithmetic runs
    an inner loop of length 3 and is several times slower."""
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
    return normals


def face_normals32(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals in float32 (zero for degenerate faces), computed without trimesh's caches."""
    vertices32 = np.ascontiguousarray(vertices, dtype=np.float32)
    normals = np.empty((len(faces), 3), dtype=np.float32)
    for start in range(0, len(faces), CHUNK_ROWS):
        stop = min(len(faces), start + CHUNK_ROWS)
        normals_from_corners(gather_corners32(vertices32, faces[start:stop]), out=normals[start:stop])
    return normals


def write_chunks(handle, chunks: Iterable) -> None:
    """Write every chunk of ``chunks`` to ``handle`` in order (a generator may reuse its
    buffers: each chunk is written before the next is computed).

    Writing on a helper thread while the next chunk is computed was tried and measured no
    faster on the 2-core machines here (the copy into the page cache and the numpy passes
    compete for memory bandwidth), so this stays serial.
    """
    for chunk in chunks:
        handle.write(chunk)


def double_buffer(dtype, rows: int) -> list[np.ndarray]:
    """Two zeroed scratch buffers a generator can alternate between, so a chunk it yielded
    stays valid while it computes the next."""
    return [np.zeros(rows, dtype=dtype), np.zeros(rows, dtype=dtype)]


def converted_chunks(array: np.ndarray, dtype, rows: int = 4 * CHUNK_ROWS):
    """``array.astype(dtype)`` as a sequence of byte chunks, converted ``rows`` at a time into
    two alternating buffers (no full-size copy); an array already in ``dtype`` is not copied."""
    dtype = np.dtype(dtype)
    if array.dtype == dtype and array.flags.c_contiguous:
        yield memoryview(array).cast("B")
        return
    buffers = double_buffer((dtype, array.shape[1:]) if array.ndim > 1 else dtype, min(len(array), rows))
    for i, start in enumerate(range(0, len(array), rows)):
        chunk = array[start : start + rows]
        out = buffers[i % 2][: len(chunk)]
        np.copyto(out, chunk, casting="unsafe")
        yield memoryview(out).cast("B")

