"""Object File Format: text (written and read) and Geomview's binary variant (read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesh_export.writers import _text
from mesh_export.writers._mesh import provenance_line, triangles
from mesh_export.writers._read import (BadText, Damaged, Lines, NotNative, after_binary_body, check_declared, current,
                                       fan, located, open_text_source, read_into, size_of, text_numbers, text_polygons)
from mesh_export.writers.registry import Writer, register_builtin


def write_off(mesh, path) -> None:
    vertices, faces = triangles(mesh)
    decimals = _text.choose_decimals(vertices)
    with open(path, "xb") as handle:
        handle.write(f"OFF\n# {provenance_line(mesh)}\n{len(vertices)} {len(faces)} 0\n".encode())
        _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], len(vertices))
        _text.write_text(handle, [b"3 "] + _text.int_columns(faces) + [b"\n"], len(faces))


# ---------------------------------------------------------------------------- reading
#
# The native reader (shared machinery in _read).

def read_off(path: Path):
    handle = open_text_source(path)
    with handle:
        size = size_of(handle)
        keyword, counts, number = _off_header(handle)
        if keyword == b"BINARY":
            return _off_binary(handle, counts, size - handle.tell())
        vertex_count, face_count = counts
        # A vertex line is at least "0 0 0\n", a face line "3 0 1 2\n".
        check_declared(f"{vertex_count:,} vertices and {face_count:,} faces", 6 * vertex_count + 8 * face_count,
                       size - handle.tell())
        lines = Lines(handle, first_number=number + 1, comment=b"#")
        lines.skip_blank()
        notes = current()
        first_vertex_line = lines.number()
        notes.vertex_place = lambda i: f"line {first_vertex_line + i:,}"
        first_vertex = None
        vertices = np.empty((vertex_count, 3))
        done = 0
        try:
            for text, count in lines.take(vertex_count):
                numbers = text_numbers(text)
                width = numbers.size // count if count else 3
                if first_vertex is None:
                    first_vertex = width
                if numbers.size != count * width or width != first_vertex or width < 3:
                    raise BadText("vertex lines of different lengths")
                vertices[done : done + count] = numbers.reshape(count, width)[:, :3]
                done += count
            # A face line: its vertex count, the indices, maybe a colour.
            lines.skip_blank()
            first_face_line = lines.number()
            faces = text_polygons(lines.take(face_count), ["list"], 0, np.int32, trailing=True)
        except BadText as exc:
            raise located(exc, lines) from None
        if len(faces) == face_count:
            notes.face_place = lambda i: f"line {first_face_line + i:,}"
        lines.after_body("vertices or faces")
    return vertices, faces


def _off_header(handle) -> tuple[bytes, tuple[int, ...], int]:
    """``(b"" or b"BINARY", counts, lines read)``: the header, comments and blank lines skipped."""
    first = handle.readline().split(b"#", 1)[0].split()
    if not first or first[0] != b"OFF":
        raise NotNative("not plain OFF (COFF, NOFF, ...)")
    keyword = b""
    if len(first) > 1 and first[1] == b"BINARY":
        keyword, first = b"BINARY", first[1:]
    if keyword:
        return keyword, (), 1
    counts, number = first[1:], 1
    while not counts:
        line = handle.readline()
        number += 1
        if not line:
            raise Damaged("OFF file without its vertex and face counts")
        counts = line.split(b"#", 1)[0].split()
    try:
        vertex_count, face_count = int(counts[0]), int(counts[1])
    except (IndexError, ValueError):
        raise Damaged(f"line {number}: bad OFF counts {b' '.join(counts)[:40]!r}") from None
    if vertex_count < 0 or face_count < 0:
        raise Damaged(f"line {number}: negative OFF counts {vertex_count} {face_count}")
    return keyword, (vertex_count, face_count), number


_BIG_INT = np.dtype(">i4")


def _off_binary(handle, _, available: int):
    """Geomview's binary OFF: big-endian int32 counts (vertices, faces, edges), float32 x y z
    per vertex, then per face an int32 corner count, the int32 indices, an int32 colour count
    and that many float32s. Neither trimesh nor meshio reads it."""
    start = handle.tell()
    head = np.frombuffer(handle.read(12), dtype=_BIG_INT)
    if len(head) < 3:
        raise Damaged("binary OFF without its three counts")
    vertex_count, face_count = int(head[0]), int(head[1])
    if vertex_count < 0 or face_count < 0:
        raise Damaged(f"byte {start:,}: negative binary OFF counts {vertex_count} {face_count}")
    check_declared(f"{vertex_count:,} vertices and {face_count:,} faces", 12 * vertex_count + 12 * face_count,
                   available - 12)
    vertices = np.empty((vertex_count, 3), dtype=">f4")
    if read_into(handle, vertices) < vertices.nbytes:
        raise Damaged(f"byte {start + 12:,}: truncated in its vertices")
    first_vertex = start + 12
    notes = current()
    notes.vertex_place = lambda i: f"byte {first_vertex + 12 * i:,}"
    face_start = handle.tell()
    words = np.frombuffer(handle.read(), dtype=np.uint8)
    words = words[: len(words) // 4 * 4].view(_BIG_INT)
    if len(words) >= 5 * face_count and face_count and (words[: 5 * face_count : 5] == 3).all() and (
            words[4 : 5 * face_count : 5] == 0).all():
        # Triangles without colours, the common case: records of five words.
        faces = words[: 5 * face_count].reshape(face_count, 5)[:, 1:4].astype(np.int32)
        notes.face_place = lambda i: f"byte {face_start + 20 * i:,}"
        at = 5 * face_count
    else:
        starts, counts, at = [], [], 0
        for face in range(face_count):
            if at + 1 > len(words):
                raise Damaged(f"byte {face_start + 4 * at:,}: truncated in face {face:,} of {face_count:,}")
            corners = int(words[at])
            if corners < 0 or at + corners + 2 > len(words):
                raise Damaged(f"byte {face_start + 4 * at:,}: face {face:,} declares {corners:,} corners, "
                              "more than the file holds")
            starts.append(at + 1)
            counts.append(corners)
            colours = int(words[at + 1 + corners])
            if colours < 0 or colours > 4:
                raise Damaged(f"byte {face_start + 4 * (at + 1 + corners):,}: face {face:,} declares "
                              f"{colours} colour components (0 to 4)")
            at += 2 + corners + colours
        if at > len(words):
            raise Damaged(f"byte {face_start + 4 * len(words):,}: truncated in its faces")
        faces = fan(words.astype(np.int64), counts, np.asarray(starts, dtype=np.int64), dtype=np.int32)
    end = start + 12 + vertices.nbytes + 4 * at
    if end < start + available:
        after_binary_body(handle, end, start + available, 20, "face")
    return vertices.astype(np.float32), faces


register_builtin(
    Writer(
        name="off",
        extensions=(".off",),
        write=write_off,
        modes=("ascii",),
        description="Object File Format; CGAL, Geomview, MeshLab",
    )
)
