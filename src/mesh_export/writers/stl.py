"""STL, binary (default) and ASCII. Binary fills 50-byte facet records a chunk at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesh_export.writers import _text
from mesh_export.core.validate import SurfaceValues
from mesh_export.errors import InvalidMeshError
from mesh_export.writers._layout import Rows, pwrite_all, scratch_array, write_in_order, write_layout
from mesh_export.writers._mesh import (face_normals32, float32_vertices, gather_corners32, normals_and_degenerate,
                                      provenance_line, triangles)
from mesh_export.writers._read import BLOCK_BYTES, BadText, Damaged, NotNative, current, read_into, text_numbers
from mesh_export.writers.registry import Writer, register_builtin

_FACET = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attributes", "<u2")])
_V12 = np.dtype((np.void, 12))
_V36 = np.dtype((np.void, 36))


def write_stl(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    checks = SurfaceValues(vertices, faces)
    if ascii:
        checks.whole()
        normals = face_normals32(vertices, faces)
        _write_ascii(path, vertices, faces, normals, provenance_line(mesh))
        return
    with open(path, "xb") as handle:
        write_layout(handle, [_header(provenance_line(mesh)) + np.uint32(len(faces)).tobytes(),
                              _facets(vertices, faces, checks)])


def _facets(vertices, faces, checks: SurfaceValues) -> Rows:
    """Binary facet records (the attribute count stays 0)."""
    vertices32 = float32_vertices(vertices, checks.vertices)

    def fill(start: int, stop: int, scratch) -> memoryview:
        chunk = faces[start:stop]
        checks.faces(chunk)
        return _records(gather_corners32(vertices32, chunk, scratch), scratch)

    return Rows(len(faces), _FACET.itemsize, fill, chunk_rows=_CHUNK_ROWS)


_CHUNK_ROWS = 1 << 15


def _records(corners: np.ndarray, scratch) -> memoryview:
    """Facet records of (n, 9) float32 ``corners``, in a scratch buffer."""
    return memoryview(_record_rows(corners, scratch)[0]).cast("B")


def _record_rows(corners: np.ndarray, scratch) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Facet records of ``corners`` as (n, 50) bytes in a scratch buffer, their normals, and which
    facets have no area (None: none)."""
    n = len(corners)
    records = scratch_array(scratch, "stl.facets", _FACET, n)[:n]
    normals = scratch_array(scratch, "stl.normals", (np.float32, 3), n)
    # Whole records moved as opaque bytes: field-wise float assignment is 2-3x slower.
    raw = records.view(np.uint8).reshape(n, _FACET.itemsize)
    raw[:, 12:48].view(_V36)[:, 0] = corners.view(_V36)[:, 0]
    normals, no_area = normals_and_degenerate(corners, out=normals)
    raw[:, 0:12].view(_V12)[:, 0] = normals.view(_V12)[:, 0]
    return raw, normals, no_area


def write_stl_pieces(pieces: list, path, title: str) -> int:
    """A binary STL of a mesh given as pieces (a fetch's fragments, ``(vertices, faces)`` each,
    the faces indexing their own piece's vertices), without merging them; returns the facets.

    An STL is a list of triangles, so merging the pieces' shared vertices changes nothing in it
    but the faces that collapse (two corners on one point), and those are found here by
    comparing corners bit for bit, as the exact merge compares vertices. Given the pieces a
    fetch gives the merge (values checked, -0.0 made 0.0), the file is the one ``write_stl``
    writes from the merged mesh, byte for byte, without the merge's cost (0.8 s at 9M faces)."""
    batches, batch, size = [], [], 0
    for vertices, faces in pieces:
        vertices = np.ascontiguousarray(vertices, dtype=np.float32)
        for start in range(0, len(faces), _PIECES_BATCH_FACES):  # a large piece is split
            part = faces[start:start + _PIECES_BATCH_FACES]
            batch.append((vertices, part))
            size += len(part)
            if size >= _PIECES_BATCH_FACES:
                batches.append(batch)
                batch, size = [], 0
    if batch:
        batches.append(batch)

    def make(number: int, scratch) -> memoryview:
        return _batch_records(batches[number], scratch)

    with open(path, "xb") as handle:
        handle.write(bytes(84))  # the header and the count, known once the facets are written
        handle.flush()
        count = write_in_order(handle.fileno(), 84, len(batches), make) // _FACET.itemsize
        if count == 0:
            raise InvalidMeshError("mesh is empty (no faces): nothing to write")
        pwrite_all(handle.fileno(), _header(title) + np.uint32(count).tobytes(), 0)
    return count


#: Faces made into records at a time. Their temporaries (a float32 per face) then stay within
#: glibc's first mmap threshold (128 KiB): larger batches made every temporary a fresh mapping,
#: and the page faults cost more than the batch saved (1.4-1.7 against 0.8-1.1 s of system time
#: for the whole 9M-face export).
_PIECES_BATCH_FACES = 1 << 15


def _batch_records(batch: list, scratch) -> memoryview:
    """Facet records of a batch of pieces' faces, without the faces that collapse."""
    n = sum(len(faces) for _, faces in batch)
    corners = scratch_array(scratch, "stl.pieces.corners", (np.float32, 9), n)[:n]
    at = 0
    for vertices, faces in batch:
        gather_corners32(vertices, faces, scratch, out=corners[at:at + len(faces)])
        at += len(faces)
    raw, normals, no_area = _record_rows(corners, scratch)
    # A face that collapses has two corners on one point: its cross product is zero, or NaN
    # where it overflowed (0 * inf, inf - inf). Only those faces are compared.
    suspect = np.isnan(normals[:, 0])
    if no_area is not None:
        suspect |= no_area
    suspects = np.flatnonzero(suspect)
    if len(suspects):
        bits = corners[suspects].view(np.uint32)
        distinct = _distinct(bits, 0, 3)
        distinct &= _distinct(bits, 3, 6)
        distinct &= _distinct(bits, 0, 6)
        if not distinct.all():
            keep = np.ones(n, dtype=bool)
            keep[suspects[~distinct]] = False
            raw = np.compress(keep, raw, axis=0)
    return memoryview(raw.reshape(-1))


def _distinct(bits: np.ndarray, a: int, b: int) -> np.ndarray:
    """Whether corners at columns ``a`` and ``b`` of (n, 9) uint32 ``bits`` differ in any bit."""
    differ = bits[:, a] != bits[:, b]
    differ |= bits[:, a + 1] != bits[:, b + 1]
    differ |= bits[:, a + 2] != bits[:, b + 2]
    return differ


def _header(title: str) -> bytes:
    # The 80-byte header must not start with "solid": readers would take the file for ASCII.
    return title.encode("ascii", "replace")[:80].ljust(80, b" ")


def _write_ascii(path, vertices, faces, normals, title: str) -> None:
    corners = vertices[faces]  # (n, 3, 3)
    decimals = _text.choose_decimals(vertices)
    segments: list[_text.Segment] = [b"facet normal "]
    segments += _text.fixed_columns(normals, 6)
    segments.append(b"\n  outer loop\n")
    for corner in range(3):
        segments.append(b"    vertex ")
        segments += _text.fixed_columns(corners[:, corner, :], decimals)
        segments.append(b"\n")
    segments.append(b"  endloop\nendfacet\n")
    name = title.replace(" ", "_")
    with open(path, "xb") as handle:
        handle.write(f"solid {name}\n".encode())
        _text.write_text(handle, segments, len(faces))
        handle.write(f"endsolid {name}\n".encode())


# ---------------------------------------------------------------------------- reading
#
# The native reader (shared machinery in _read).

_STL_WORDS = (b"endfacet", b"endloop", b"outer loop", b"facet normal", b"vertex")


def read_stl(path: Path):
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(84)
        count = int.from_bytes(head[80:84], "little") if len(head) == 84 else -1
        if count >= 0 and 84 + 50 * count == size:
            corners = np.empty((3 * count, 3), dtype=np.float32)
            rows = BLOCK_BYTES // _FACET.itemsize
            chunk = np.empty(min(rows, count), dtype=_FACET)
            for start in range(0, count, rows):
                part = chunk[: min(rows, count - start)]
                read_into(handle, part)
                corners[3 * start : 3 * (start + len(part))] = part["corners"].reshape(-1, 3)
            return _index_corners(corners)
        mark = 3 if head.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte-order mark before "solid"
        if head[mark:].lstrip()[:5].lower() == b"solid":
            if mark:
                current().skip("its UTF-8 byte-order mark")
            handle.seek(mark + head[mark:].index(b"solid") + 5)
            return _stl_text(handle, path)
    if count < 0:
        raise Damaged(f"not an STL file: {size} bytes, shorter than a binary STL header")
    raise Damaged(f"binary STL of {count:,} facets should be {84 + 50 * count:,} bytes, "
                     f"the file has {size:,} (truncated, or not an STL file)")


def _stl_text(handle, path: Path):
    handle.readline()  # the rest of the "solid name" line
    corners, carry = [], b""
    while True:
        data = handle.read(BLOCK_BYTES)
        text = carry + data
        end = text.find(b"endsolid")
        if end >= 0:
            body, carry = text[:end], b""
            if b"facet" in text[end:] + handle.read():
                raise NotNative("several solids")
        elif not data:
            raise Damaged("ASCII STL without 'endsolid' (truncated?)")
        else:
            cut = text.rfind(b"endfacet") + 1
            cut = cut + len(b"endfacet") - 1 if cut else 0
            body, carry = text[:cut], text[cut:]
        if body.strip():
            corners.append(_stl_facets(body))
        if end >= 0:
            return _index_corners(np.concatenate(corners) if corners else np.zeros((0, 3)))


def _stl_facets(body: bytes) -> np.ndarray:
    """The corners (float64) of a run of whole ASCII STL facets."""
    count = body.count(b"endfacet")
    for word in _STL_WORDS:
        body = body.replace(word, b" ")
    numbers = text_numbers(body)
    if numbers.size != 12 * count:
        raise BadText("facets without a normal and 3 vertices")
    return numbers.reshape(count, 12)[:, 3:].reshape(-1, 3).astype(np.float64)



def _index_corners(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An indexed mesh from triangle corners (STL): bit-identical corners become one vertex
    (-0.0 and 0.0 too); every facet stays a face, also one with two identical corners."""
    from mesh_export.core.mesh_ops import merge_duplicate_vertices

    count = len(corners) // 3
    if count == 0:
        return corners.reshape(0, 3), np.zeros((0, 3), dtype=np.int32)
    vertices, faces, _ = merge_duplicate_vertices(corners, np.arange(3 * count).reshape(count, 3))
    if len(faces) < count:  # it dropped facets that collapse to a line: index them all instead
        exact = (corners + corners.dtype.type(0.0)).view(np.dtype((np.void, 3 * corners.itemsize)))
        unique, inverse = np.unique(exact.ravel(), return_inverse=True)
        vertices = unique.view(corners.dtype).reshape(-1, 3)
        faces = inverse.reshape(count, 3)
    return vertices, faces.astype(np.int32 if len(vertices) < 2**31 else np.int64)


register_builtin(
    Writer(
        name="stl",
        extensions=(".stl",),
        write=write_stl,
        checks_values=True,
        write_pieces=write_stl_pieces,
        modes=("binary", "ascii"),
        description="Stereolithography; the 3D-printing standard (no units field: see the header)",
    )
)
