"""Reading mesh files: native numpy readers for PLY, STL, OBJ and OFF, trimesh for the other
formats it knows well (and the variants the native readers leave to it), meshio for the rest.
SWC morphologies: :func:`read_swc` (from the model, where processing can reach it too)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from mesh_export.errors import InputError
from mesh_export.core.units import normalize_units, set_mesh_units
from mesh_export.model import read_swc  # noqa: F401  (re-exported)

_TRIMESH_FORMATS = {".stl", ".ply", ".obj", ".off", ".glb", ".gltf", ".3mf"}
_UNITS_IN_HEADER = re.compile(rb"units[= ]([A-Za-z]+)")
_TRIMESH_UNIT_NAMES = {"millimeters": "mm", "millimeter": "mm", "meters": "m", "microns": "um",
                       "micron": "um", "inches": None, "inch": None}


# ---------------------------------------------------------------------------- native readers
#
# PLY, STL, OBJ and OFF, the formats mesh-export writes natively, are read with numpy: binary
# records through structured dtypes, read a block at a time straight into the result arrays;
# text through numpy's integer parser (``_text_numbers``). Vertices keep the file's float type
# (float32 stays float32; text is float64, as float() reads it) and faces are int32 unless
# the file's indices are 64-bit. A variant these readers leave alone raises _NotNative and
# goes to trimesh; a damaged file raises _Damaged, which load() reports as an InputError.

_BLOCK_BYTES = 1 << 24  # binary records are converted, and text parsed, this much at a time


class _NotNative(Exception):
    """A variant of a native format left to trimesh (which may read it, or say why not)."""


class _BadText(_NotNative):
    """Text that is not the whitespace-separated numbers expected."""


class _Damaged(ValueError):
    """A file of a native format that is truncated or contradicts its own header."""


def _read_into(handle, array: np.ndarray) -> int:
    """Fill ``array`` from ``handle``; returns the bytes read (fewer at the end of the file)."""
    view = memoryview(array.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        count = handle.readinto(view[done:])
        if not count:
            break
        done += count
    return done


def _index_dtype(value_type: np.dtype) -> np.dtype:
    """int32 for indices stored in up to 4 bytes (uint32 too: a valid index is below 2**31)."""
    return np.dtype(np.int64) if value_type.itemsize > 4 else np.dtype(np.int32)


def _fan(indices: np.ndarray, counts: np.ndarray, starts: np.ndarray | None = None,
         dtype=np.int32) -> np.ndarray:
    """Triangles ``(first, j, j + 1)`` of polygons whose ``counts`` corners stand one after
    another in ``indices`` (from ``starts``)."""
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) and counts.min() < 3:  # also the sign of a header whose counts are wrong
        raise _Damaged("a face with fewer than 3 vertices")
    if starts is None:
        starts = np.cumsum(counts) - counts
    fans = counts - 2
    polygon = np.repeat(np.arange(len(counts)), fans)
    corner = np.arange(len(polygon)) - np.repeat(np.cumsum(fans) - fans, fans) + 1
    first = np.asarray(starts, dtype=np.int64)[polygon]
    triangles = np.empty((len(polygon), 3), dtype=dtype)
    triangles[:, 0] = indices[first]
    triangles[:, 1] = indices[first + corner]
    triangles[:, 2] = indices[first + corner + 1]
    return triangles


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


# -- numbers in text

_NUMBER_CHARS = b"0123456789+-."
_SPACE = b" \t\r\n\v\f"
_POW10 = 10.0 ** np.arange(23)


def _text_numbers(text: bytes) -> np.ndarray:
    """The whitespace-separated numbers in ``text``: int64 when all are integers, else
    float64, each the double ``float()`` reads. Raises _BadText on anything else.

    numpy's float parsers (np.fromstring, np.loadtxt) read ~50 MB/s here, its integer parser
    ~300 MB/s. Decimals with a fixed number of digits after the point, as mesh writers write
    them ("%.6f"), are read as integers with the point removed and divided by 10**digits: one
    correctly rounded division of two exact doubles, hence the same double as ``float()``.
    Anything else (exponents, nan, mixed digit counts) goes to numpy's float parser.
    """
    text = text.strip()  # numpy reads whitespace alone as a number
    if not text:
        return np.zeros(0, dtype=np.int64)
    if text.translate(None, _NUMBER_CHARS + _SPACE):
        return _parse(text, np.float64)  # words, exponents, nan: numpy's float parser decides
    chars = np.frombuffer(text + b" ", dtype=np.uint8)
    if (b"-" in text or b"+" in text) and _lone_signs(chars):
        raise _BadText("a sign without digits")  # numpy's integer parser would join it to the next number
    if b"." not in text:
        return _parse(text, np.int64)
    points = np.flatnonzero(chars == ord("."))
    digits = 0
    while 48 <= int(chars[points[0] + 1 + digits]) <= 57:
        digits += 1
    # Every point must be followed by exactly ``digits`` digits, then a space; "clip" reads
    # the final space for positions past the end, which fails the digit test.
    fixed = digits < len(_POW10) and bool((chars.take(points + digits + 1, mode="clip") <= 32).all())
    for offset in range(1, digits + 1):
        if not fixed:
            break
        fixed = bool(((chars.take(points + offset, mode="clip") - np.uint8(48)) <= 9).all())
    if not fixed:
        return _parse(text, np.float64)
    mantissas = _parse(text.replace(b".", b""), np.int64)
    if len(mantissas) != len(points) or int(np.abs(mantissas).max()) >= 2**53:
        return _parse(text, np.float64)  # numbers without a point, or too many digits
    values = mantissas / _POW10[digits]
    zeros = np.flatnonzero(mantissas == 0)
    if len(zeros):  # "-0.000" is -0.0: find the sign before each zero's digits
        at = points[zeros] - 1
        while True:
            digit = (at >= 0) & (chars[np.maximum(at, 0)] - np.uint8(48) <= 9)
            if not digit.any():
                break
            at[digit] -= 1
        values[zeros[(at >= 0) & (chars[np.maximum(at, 0)] == ord("-"))]] = -0.0
    return values


def _lone_signs(chars: np.ndarray) -> bool:
    """Whether a sign in ``chars`` (text and a final space) is not followed by a digit or by a
    point and a digit."""
    signs = np.flatnonzero((chars == ord("-")) | (chars == ord("+")))
    after = chars.take(signs + 1, mode="clip")
    point = after == ord(".")
    after[point] = chars.take(signs[point] + 2, mode="clip")
    return not bool((after - np.uint8(48) <= 9).all())


def _parse(text: bytes, dtype) -> np.ndarray:
    try:
        return np.fromstring(text, dtype=dtype, sep=" ")
    except ValueError as exc:
        raise _BadText(str(exc)) from None


class _Lines:
    """A text file from an offset on, handed out as pieces of whole lines."""

    def __init__(self, handle):
        self._handle = handle
        self._block, self._ends, self._line = b"", np.zeros(0, dtype=np.int64), 0
        self._carry = b""

    def _next_block(self) -> bool:
        data = self._handle.read(_BLOCK_BYTES)
        if not data:
            if not self._carry:
                return False
            data, self._carry = self._carry + b"\n", b""
        else:
            data = self._carry + data
            cut = data.rfind(b"\n") + 1
            data, self._carry = data[:cut], data[cut:]
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
        self._block, self._ends, self._line = data, ends, 0
        return True

    def take(self, count: int) -> Iterator[tuple[bytes, int]]:
        """Pieces ``(text, lines)`` holding the next ``count`` lines."""
        while count > 0:
            if self._line >= len(self._ends) and not self._next_block():
                raise _Damaged(f"it ends {count:,} lines early (truncated, or the header's counts are wrong)")
            if self._line >= len(self._ends):
                continue
            lines = min(count, len(self._ends) - self._line)
            start = int(self._ends[self._line - 1]) if self._line else 0
            stop = int(self._ends[self._line + lines - 1])
            self._line += lines
            count -= lines
            yield self._block[start:stop], lines

    def skip_blank(self) -> None:
        """Move past empty lines (OFF files have them between their sections)."""
        while self._line < len(self._ends) or self._next_block():
            if self._line >= len(self._ends):
                continue
            start = int(self._ends[self._line - 1]) if self._line else 0
            if self._block[start : int(self._ends[self._line])].strip():
                return
            self._line += 1

    def rest(self) -> Iterator[tuple[bytes, np.ndarray]]:
        """The remaining blocks, each with the offsets just past its newlines."""
        if self._line < len(self._ends):
            start = int(self._ends[self._line - 1]) if self._line else 0
            yield self._block[start:], self._ends[self._line:] - start
        while self._next_block():
            yield self._block, self._ends


# -- rows of numbers (text PLY and OFF elements)

def _rows(pieces: Iterator[tuple[bytes, int]], width: int) -> Iterator[np.ndarray]:
    """Each piece's numbers as ``(lines, width)`` rows; _BadText unless each line has ``width``."""
    for text, lines in pieces:
        numbers = _text_numbers(text)
        if numbers.size != lines * width:
            raise _BadText(f"expected {width} numbers a line")
        yield numbers.reshape(lines, width)


def _text_vertices(pieces, count: int, width: int, columns, dtype) -> np.ndarray:
    vertices = np.empty((count, 3), dtype=dtype)
    done = 0
    for rows in _rows(pieces, width):
        vertices[done : done + len(rows)] = rows[:, columns]
        done += len(rows)
    return vertices


def _text_polygons(pieces, layout: list, index_list: int, index_dtype, trailing: bool = False) -> np.ndarray:
    """Triangles of a text element whose lines hold ``layout`` (None for a number, "list" for a
    count and that many numbers); the list at position ``index_list`` holds vertex indices.
    ``trailing``: lines may end in more numbers (OFF's face colours), as many on every line."""
    out = []
    for text, lines in pieces:
        numbers = _text_numbers(text)
        counts, at = [], 0
        first = numbers[: 4 * len(layout) + 64].tolist()
        try:  # the first line's list lengths, assumed for every line
            for kind in layout:
                counts.append(int(first[at]) if kind else 0)
                at += 1 + counts[-1] if kind else 1
        except IndexError:
            raise _BadText("a line shorter than its lists say") from None
        width = at
        if trailing and lines and numbers.size % lines == 0:
            width = max(width, numbers.size // lines)
        rows = numbers.reshape(lines, width) if numbers.size == lines * width else None
        list_columns = np.cumsum([0] + [1 + c if k else 1 for k, c in zip(layout, counts)])[:-1]
        if rows is not None and all((rows[:, list_columns[i]] == counts[i]).all()
                                    for i, kind in enumerate(layout) if kind):
            start = list_columns[index_list] + 1
            polygons = rows[:, start : start + counts[index_list]]
            if counts[index_list] == 3:
                out.append(polygons.astype(index_dtype))
            else:
                out.append(_fan(polygons.ravel(), np.full(lines, counts[index_list]), dtype=index_dtype))
        else:
            out.append(_walk_polygons(numbers, lines, layout, index_list, index_dtype))
    return np.concatenate(out) if out else np.zeros((0, 3), dtype=index_dtype)


def _walk_polygons(numbers: np.ndarray, lines: int, layout: list, index_list: int, index_dtype) -> np.ndarray:
    """Lists of varying length: walked one element at a time (slow; polygon meshes only)."""
    values = numbers.tolist()
    starts, counts, at = [], [], 0
    try:
        for _ in range(lines):
            for position, kind in enumerate(layout):
                if not kind:
                    at += 1
                    continue
                count = int(values[at])
                if position == index_list:
                    starts.append(at + 1)
                    counts.append(count)
                at += 1 + count
    except IndexError:
        raise _BadText("lines shorter than their lists say") from None
    if at != len(values):
        raise _BadText("more numbers than the element's lines hold")
    return _fan(numbers, counts, np.asarray(starts, dtype=np.int64), dtype=index_dtype)


# -- PLY

_PLY_TYPES = {"char": "i1", "uchar": "u1", "short": "i2", "ushort": "u2", "int": "i4", "uint": "u4",
              "float": "f4", "double": "f8", "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2",
              "int32": "i4", "uint32": "u4", "int64": "i8", "uint64": "u8", "float32": "f4",
              "float64": "f8"}
_PLY_FACE_LISTS = ("vertex_indices", "vertex_index")


@dataclass
class _PlyElement:
    name: str
    count: int
    # (name, value type, count type or None for a single value)
    properties: list[tuple[str, np.dtype, np.dtype | None]] = field(default_factory=list)

    def position(self, name: str) -> int | None:
        return next((i for i, p in enumerate(self.properties) if p[0] == name), None)


def _ply_header(handle) -> tuple[str, list[_PlyElement], int]:
    """Encoding, elements and the offset of the data."""
    head = b""
    while b"end_header" not in head:
        more = handle.read(1 << 16)
        if not more or len(head) > _BLOCK_BYTES:
            raise _Damaged("PLY header without an end_header line")
        head += more
    end = head.index(b"end_header")
    newline = head.find(b"\n", end)
    while newline < 0:
        more = handle.read(1 << 16)
        if not more:
            raise _Damaged("PLY file ends in its header")
        head += more
        newline = head.find(b"\n", end)
    lines = head[:end].decode("ascii", "replace").splitlines()
    if not lines or lines[0].strip() != "ply":
        raise _Damaged("not a PLY file (no 'ply' line)")
    encoding, elements = None, []
    for line in lines[1:]:
        words = line.split()
        try:
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "format":
                encoding = words[1]
            elif words[0] == "element":
                elements.append(_PlyElement(words[1], int(words[2])))
            elif words[0] == "property" and words[1] == "list":
                elements[-1].properties.append((words[4], np.dtype(_PLY_TYPES[words[3]]),
                                                np.dtype(_PLY_TYPES[words[2]])))
            elif words[0] == "property":
                elements[-1].properties.append((words[2], np.dtype(_PLY_TYPES[words[1]]), None))
            else:
                raise _NotNative(f"PLY header line {line!r}")
        except (IndexError, KeyError, ValueError):
            raise _Damaged(f"bad PLY header line {line.strip()!r}") from None
    if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise _Damaged(f"unknown PLY format {encoding!r}")
    return encoding, elements, newline + 1


def _ply_parts(elements: list[_PlyElement]) -> tuple[_PlyElement, _PlyElement, int]:
    """The vertex and face elements and which face property lists the vertex indices."""
    by_name = {e.name: e for e in elements}
    vertex, face = by_name.get("vertex"), by_name.get("face")
    if vertex is None or face is None or face.count == 0:
        raise _NotNative("no vertex or face element")  # a point cloud: trimesh says what it is
    if any(vertex.position(axis) is None for axis in "xyz") or any(p[2] is not None for p in vertex.properties):
        raise _NotNative("vertices without x, y, z, or with lists")
    index_list = next((face.position(n) for n in _PLY_FACE_LISTS if face.position(n) is not None), None)
    if index_list is None or face.properties[index_list][2] is None:
        raise _NotNative("faces without a vertex_indices list")
    return vertex, face, index_list


def _vertex_type(vertex: _PlyElement) -> np.dtype:
    types = {vertex.properties[vertex.position(axis)][1] for axis in "xyz"}
    return types.pop() if len(types) == 1 and next(iter(types)).kind == "f" else np.dtype(np.float64)


def _read_ply(path: Path):
    with open(path, "rb") as handle:
        encoding, elements, offset = _ply_header(handle)
        vertex, face, index_list = _ply_parts(elements)
        if encoding == "ascii":
            return _ply_text(handle, elements, offset, vertex, face, index_list)
        endian = "<" if encoding == "binary_little_endian" else ">"
        return _ply_binary(handle, elements, offset, endian, vertex, face, index_list)


def _ply_record(handle, element: _PlyElement, offset: int, endian: str) -> np.dtype:
    """The record dtype of ``element``, its lists as long as in its first record."""
    fields = []
    head = b"" if element.count == 0 else None  # no record to peek: its lists are empty
    at = 0
    for i, (name, value, count) in enumerate(element.properties):
        value = value.newbyteorder(endian)
        if count is None:
            fields.append((f"p{i}", value))
            at += value.itemsize
            continue
        count = count.newbyteorder(endian)
        if head is None:
            handle.seek(offset)
            head = handle.read(1 << 16)
        if element.count and at + count.itemsize > len(head):
            raise _NotNative("a first record too long to peek")
        length = int(np.frombuffer(head, dtype=count, count=1, offset=at)[0]) if element.count else 0
        fields += [(f"c{i}", count), (f"p{i}", value, (max(length, 0),))]
        at += count.itemsize + length * value.itemsize
    return np.dtype(fields)


class _VaryingLists(Exception):
    """Face records whose lists are not all as long as the first record's."""


def _ply_binary(handle, elements, offset, endian, vertex, face, index_list):
    size = os.fstat(handle.fileno()).st_size
    records, position = {}, offset
    for element in elements:
        dtype = _ply_record(handle, element, position, endian)
        records[element.name] = (dtype, position)
        position += element.count * dtype.itemsize
    v_dtype, v_offset = records["vertex"]
    f_dtype, f_offset = records["face"]
    handle.seek(v_offset)
    vertices = _binary_vertices(handle, vertex, v_dtype)
    handle.seek(f_offset)
    try:
        faces = _binary_faces(handle, face, f_dtype, index_list)
    except _VaryingLists:
        if v_offset > f_offset:
            raise _NotNative("faces of varying length before the vertices") from None
        handle.seek(f_offset)
        faces, face_bytes = _binary_polygons(handle.read(), face, endian, index_list)
        position += face_bytes - face.count * f_dtype.itemsize
    if position != size:
        raise _Damaged(f"PLY data is {size - offset:,} bytes but its header describes "
                         f"{position - offset:,} (truncated, or the header's counts are wrong)")
    return vertices, faces


_TRUNCATED = "truncated: the file ends before the records its header declares"


def _binary_vertices(handle, vertex: _PlyElement, dtype: np.dtype) -> np.ndarray:
    out_type = _vertex_type(vertex)
    columns = [f"p{vertex.position(axis)}" for axis in "xyz"]
    native = out_type.newbyteorder("=")
    vertices = np.empty((vertex.count, 3), dtype=native)
    if dtype.names == tuple(columns) and all(dtype[c] == dtype[columns[0]] for c in columns) and (
            dtype[columns[0]].itemsize == out_type.itemsize):
        # Only x, y, z of one float type: the records are the vertex array.
        if _read_into(handle, vertices) < vertices.nbytes:
            raise _Damaged(_TRUNCATED)
        if not dtype[columns[0]].isnative:
            vertices.byteswap(inplace=True)
        return vertices
    rows = max(1, _BLOCK_BYTES // dtype.itemsize)
    chunk = np.empty(min(rows, vertex.count), dtype=dtype)
    for start in range(0, vertex.count, rows):
        part = chunk[: min(rows, vertex.count - start)]
        if _read_into(handle, part) < part.nbytes:
            raise _Damaged(_TRUNCATED)
        for axis, column in enumerate(columns):
            vertices[start : start + len(part), axis] = part[column]
    return vertices


def _binary_faces(handle, face: _PlyElement, dtype: np.dtype, index_list: int) -> np.ndarray:
    lists = [i for i, p in enumerate(face.properties) if p[2] is not None]
    corners = dtype[f"p{index_list}"].shape[0]
    index_type = _index_dtype(face.properties[index_list][1])
    faces = np.empty((face.count * max(corners - 2, 0), 3), dtype=index_type)
    rows = max(1, _BLOCK_BYTES // dtype.itemsize)
    chunk = np.empty(min(rows, face.count), dtype=dtype)
    done = 0
    for start in range(0, face.count, rows):
        part = chunk[: min(rows, face.count - start)]
        got = _read_into(handle, part)
        complete = part[: got // dtype.itemsize]
        # A short read may be lists of varying length as well as a truncated file: the count
        # fields read so far (of a partial record too) tell which.
        partial = got % dtype.itemsize
        varying = any((complete[f"c{i}"] != dtype[f"p{i}"].shape[0]).any() for i in lists) or any(
            part[len(complete)][f"c{i}"] != dtype[f"p{i}"].shape[0] for i in lists
            if partial and dtype.fields[f"c{i}"][1] + dtype[f"c{i}"].itemsize <= partial)
        if varying:
            raise _VaryingLists()
        if got < part.nbytes:
            raise _Damaged(_TRUNCATED)
        if corners == 3:
            faces[done : done + len(part)] = part[f"p{index_list}"]
        else:
            fan = _fan(part[f"p{index_list}"].ravel(), np.full(len(part), corners), dtype=index_type)
            faces[done : done + len(fan)] = fan
        done += len(part) * max(corners - 2, 0)
    return faces


def _binary_polygons(data: bytes, face: _PlyElement, endian: str, index_list: int) -> tuple[np.ndarray, int]:
    """Triangles of face records with lists of varying length (triangles and quads mixed),
    walked one record at a time (slow: ~0.2 s a million faces), and the bytes they took."""
    order = "little" if endian == "<" else "big"
    layout = [(value.itemsize, count) for _, value, count in face.properties]
    starts, counts, at = [], [], 0
    try:
        for _ in range(face.count):
            for position, (size, count) in enumerate(layout):
                if count is None:
                    at += size
                    continue
                if count.itemsize == 1:
                    length = data[at]
                else:
                    length = int.from_bytes(data[at : at + count.itemsize], order, signed=count.kind == "i")
                at += count.itemsize
                if position == index_list:
                    starts.append(at)
                    counts.append(length)
                at += length * size
    except IndexError:
        raise _Damaged(_TRUNCATED) from None
    if at > len(data):
        raise _Damaged(_TRUNCATED)
    value = face.properties[index_list][1].newbyteorder(endian)
    counts = np.asarray(counts, dtype=np.int64)
    corner = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    offsets = np.repeat(np.asarray(starts, dtype=np.int64), counts) + corner * value.itemsize
    raw = np.frombuffer(data, dtype=np.uint8)
    indices = raw[offsets[:, None] + np.arange(value.itemsize)].view(value).ravel()
    return _fan(indices, counts, dtype=_index_dtype(value)), at


def _ply_text(handle, elements, offset, vertex, face, index_list):
    handle.seek(offset)
    lines = _Lines(handle)
    vertices = faces = None
    for element in elements:
        pieces = lines.take(element.count)
        if element is vertex:
            columns = [vertex.position(axis) for axis in "xyz"]
            vertices = _text_vertices(pieces, element.count, len(element.properties), columns,
                                      _vertex_type(vertex).newbyteorder("="))
        elif element is face:
            layout = ["list" if p[2] is not None else None for p in element.properties]
            faces = _text_polygons(pieces, layout, index_list, _index_dtype(element.properties[index_list][1]))
        else:
            for _ in pieces:
                pass
    return vertices, faces


# -- STL

_STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (9,)), ("attributes", "<u2")])
_STL_WORDS = (b"endfacet", b"endloop", b"outer loop", b"facet normal", b"vertex")


def _read_stl(path: Path):
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(84)
        count = int.from_bytes(head[80:84], "little") if len(head) == 84 else -1
        if count >= 0 and 84 + 50 * count == size:
            corners = np.empty((3 * count, 3), dtype=np.float32)
            rows = _BLOCK_BYTES // _STL_RECORD.itemsize
            chunk = np.empty(min(rows, count), dtype=_STL_RECORD)
            for start in range(0, count, rows):
                part = chunk[: min(rows, count - start)]
                _read_into(handle, part)
                corners[3 * start : 3 * (start + len(part))] = part["corners"].reshape(-1, 3)
            return _index_corners(corners)
        if head.lstrip()[:5].lower() == b"solid":
            handle.seek(head.index(b"solid") + 5)
            return _stl_text(handle, path)
    if count < 0:
        raise _Damaged(f"not an STL file: {size} bytes, shorter than a binary STL header")
    raise _Damaged(f"binary STL of {count:,} facets should be {84 + 50 * count:,} bytes, "
                     f"the file has {size:,} (truncated, or not an STL file)")


def _stl_text(handle, path: Path):
    handle.readline()  # the rest of the "solid name" line
    corners, carry = [], b""
    while True:
        data = handle.read(_BLOCK_BYTES)
        text = carry + data
        end = text.find(b"endsolid")
        if end >= 0:
            body, carry = text[:end], b""
            if b"facet" in text[end:] + handle.read():
                raise _NotNative("several solids")
        elif not data:
            raise _Damaged("ASCII STL without 'endsolid' (truncated?)")
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
    numbers = _text_numbers(body)
    if numbers.size != 12 * count:
        raise _BadText("facets without a normal and 3 vertices")
    return numbers.reshape(count, 12)[:, 3:].reshape(-1, 3).astype(np.float64)


# -- OFF

def _read_off(path: Path):
    with open(path, "rb") as handle:
        first = handle.readline().split(b"#", 1)[0].split()
        if not first or first[0] != b"OFF":
            raise _NotNative("not plain OFF (COFF, NOFF, ...)")
        counts = first[1:]
        while not counts:
            line = handle.readline()
            if not line:
                raise _Damaged("OFF file without its vertex and face counts")
            counts = line.split(b"#", 1)[0].split()
        try:
            vertex_count, face_count = int(counts[0]), int(counts[1])
        except (IndexError, ValueError):
            raise _Damaged(f"bad OFF counts line {b' '.join(counts)!r}") from None
        lines = _Lines(handle)
        lines.skip_blank()
        first_vertex = None
        vertices = np.empty((vertex_count, 3))
        done = 0
        for text, count in lines.take(vertex_count):
            numbers = _text_numbers(text)
            width = numbers.size // count if count else 3
            if first_vertex is None:
                first_vertex = width
            if numbers.size != count * width or width != first_vertex or width < 3:
                raise _BadText("vertex lines of different lengths")
            vertices[done : done + count] = numbers.reshape(count, width)[:, :3]
            done += count
        # A face line: its vertex count, the indices, maybe a colour.
        lines.skip_blank()
        faces = _text_polygons(lines.take(face_count), ["list"], 0, np.int32, trailing=True)
    # As trimesh's OFF reader does (so the error stays the same): indices checked on reading.
    if len(faces) and (faces.min() < 0 or faces.max() >= vertex_count):
        raise _Damaged("OFF file has a face index outside the range of its vertices")
    return vertices, faces


# -- OBJ

def _read_obj(path: Path):
    with open(path, "rb") as handle:
        vertex_parts, face_parts, vertex_count = [], [], 0
        for block, ends in _Lines(handle).rest():
            vertices, faces = _obj_block(block, ends, vertex_count)
            vertex_parts += vertices
            face_parts += faces
            vertex_count += sum(len(v) for v in vertices)
    vertices = np.concatenate(vertex_parts) if vertex_parts else np.zeros((0, 3))
    faces = np.concatenate(face_parts) if face_parts else np.zeros((0, 3), dtype=np.int64)
    return vertices, faces.astype(np.int32 if len(vertices) < 2**31 else np.int64)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).view(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _obj_block(block: bytes, ends: np.ndarray, vertices_before: int):
    """The ``v`` and ``f`` lines of a block of whole lines, as arrays (others are skipped)."""
    chars = np.frombuffer(block, dtype=np.uint8)
    starts = np.concatenate(([0], ends[:-1])) if len(ends) else np.zeros(0, dtype=np.int64)
    first = chars[starts]
    second = chars.take(starts + 1, mode="clip")
    spaced = (second == ord(" ")) | (second == ord("\t"))
    if ((first == ord(" ")) | (first == ord("\t"))).any() or b"\\\n" in block:
        raise _NotNative("indented or continued lines")
    is_vertex, is_face = (first == ord("v")) & spaced, (first == ord("f")) & spaced
    bounds = np.append(starts, len(block))
    vertices, faces = [], []
    vertex_lines_before = np.cumsum(is_vertex) - is_vertex
    for start, stop in _runs(is_vertex):
        text = block[bounds[start] : bounds[stop]].translate(None, b"v")
        numbers = _text_numbers(text)
        width = numbers.size // (stop - start)
        if numbers.size != width * (stop - start) or width < 3:
            raise _BadText("vertex lines of different lengths")
        vertices.append(numbers.reshape(-1, width)[:, :3].astype(np.float64))
    for start, stop in _runs(is_face):
        before = vertices_before + vertex_lines_before[start:stop]
        faces.append(_obj_faces(block[bounds[start] : bounds[stop]], before))
    return vertices, faces


_SLASH_TO_SPACE = bytes.maketrans(b"/", b" ")


def _obj_faces(text: bytes, vertices_before: np.ndarray) -> np.ndarray:
    """Triangles of a run of ``f`` lines (``f a b c``, ``a/t/n``, ``a//n``, ``a/t``; polygons
    fan-triangulated; negative indices count back from the last vertex before the line)."""
    lines = len(vertices_before)
    token = text[2:].split(None, 1)[0] if len(text) > 2 else b""
    slashes = token.count(b"/")
    per_corner = 1 + slashes - (b"//" in token)
    numbers = _text_numbers(text.translate(_SLASH_TO_SPACE, b"f"))
    if numbers.dtype != np.int64 or numbers.size % per_corner:
        raise _BadText("face indices that are not integers")
    corners = numbers.size // per_corner
    if text.count(b"/") != slashes * corners or text.count(b"//") != (corners if b"//" in token else 0):
        raise _BadText("faces mixing index forms")
    indices = numbers[::per_corner]
    if corners == 3 * lines:
        counts = np.full(lines, 3)
    else:  # polygons: corners per line from the tokens on each line
        chars = np.frombuffer(text, dtype=np.uint8)
        space = chars <= 32
        token_starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))
        newlines = np.flatnonzero(chars == ord("\n"))
        counts = np.bincount(np.searchsorted(newlines, token_starts), minlength=lines)[:lines] - 1
        if counts.sum() != corners:
            raise _BadText("face lines the parser cannot split")
    base = np.repeat(vertices_before, counts)
    indices = np.where(indices < 0, indices + base, indices - 1)
    narrow = len(indices) == 0 or (int(indices.min()) >= -(2**31) and int(indices.max()) < 2**31)
    return _fan(indices, counts, dtype=np.int32 if narrow else np.int64)


_NATIVE_READERS = {".ply": _read_ply, ".stl": _read_stl, ".obj": _read_obj, ".off": _read_off}


def _units_from_header(path: Path) -> str | None:
    """Units recorded by mesh-export (or by a tool using the same ``units=`` convention)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    match = _UNITS_IN_HEADER.search(head)
    if not match:
        return None
    try:
        return normalize_units(match.group(1).decode())
    except Exception:
        return None


def _triangulate_meshio(mesh):
    import numpy as np

    pieces = []
    for block in mesh.cells:
        data = np.asarray(block.data)
        if block.type == "triangle":
            pieces.append(data)
        elif block.type == "quad":
            pieces.append(data[:, [0, 1, 2]])
            pieces.append(data[:, [0, 2, 3]])
        elif block.type == "polygon" and data.shape[1] >= 3:
            for k in range(1, data.shape[1] - 1):
                pieces.append(data[:, [0, k, k + 1]])
    if not pieces:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(pieces)


def load(path: str | os.PathLike, units: str | None = None):
    """Read a surface mesh file into a ``trimesh.Trimesh`` (no processing, vertex order kept;
    an STL's corners merged where bit-identical).

    ``units`` declares the file's units; without it they come from the file where it
    records them (mesh-export's own headers, 3MF) and are otherwise unknown (None).
    """
    return to_trimesh(*read_surface(path, units=units))


def read_surface(path: str | os.PathLike, units: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(vertices, faces, metadata)`` of a surface mesh file, as ``load`` reads it but without
    a trimesh.Trimesh: PLY, STL, OBJ and OFF come as the file stores them (float32 vertices
    stay float32, faces int32), for writers and figures that need no more. ``metadata`` has
    ``source`` and, when known, ``units``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input file is not readable: {path}")
    suffix = path.suffix.lower()
    library_units = None
    try:
        arrays = None
        if suffix in _NATIVE_READERS:
            try:
                arrays = _NATIVE_READERS[suffix](path)
            except _NotNative:
                arrays = None  # a variant for trimesh
        if arrays is None:
            mesh = _load_trimesh(path) if suffix in _TRIMESH_FORMATS else _load_meshio(path)
            arrays = (np.asarray(mesh.vertices), np.asarray(mesh.faces))
            library_units = _trimesh_units(mesh)
    except InputError:
        raise
    except Exception as exc:  # the libraries raise anything from ValueError to KeyError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read {path} as a mesh: {reason}") from exc

    declared = normalize_units(units) if units else None
    metadata: dict = {"source": {"file": str(path)}}
    found = declared or _units_from_header(path) or library_units
    if found:
        metadata["units"] = normalize_units(found)
    return arrays[0], arrays[1], metadata


def to_trimesh(vertices, faces, metadata: dict):
    """A ``trimesh.Trimesh`` (no processing) of arrays and metadata from ``read_surface``."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    mesh.metadata.update({k: v for k, v in metadata.items() if k != "units"})
    set_mesh_units(mesh, metadata.get("units"))
    return mesh


def _trimesh_units(mesh) -> str | None:
    units = mesh.metadata.get("units")
    if units is None:
        return None
    units = str(units).lower()
    return _TRIMESH_UNIT_NAMES.get(units, units if units in ("nm", "um", "mm", "m") else None)


def _load_trimesh(path: Path):
    import trimesh

    loaded = trimesh.load(path, process=False, force="mesh")
    if not isinstance(loaded, trimesh.Trimesh):
        raise InputError(f"{path} holds no triangle mesh")
    units = loaded.metadata.get("units")
    mesh = trimesh.Trimesh(vertices=loaded.vertices, faces=loaded.faces, process=False)
    if units is not None:
        mesh.metadata["units"] = units
    return mesh


def _load_meshio(path: Path):
    import trimesh
    from meshio._helpers import _filetypes_from_path, reader_map

    # Not meshio.read(): on a file it cannot parse, it prints and calls sys.exit(1).
    try:
        candidates = _filetypes_from_path(path)
    except Exception as exc:
        raise InputError(f"unknown mesh file type: {path}") from exc
    errors = []
    for file_format in candidates:
        try:
            data = reader_map[file_format](str(path))
            break
        except (Exception, SystemExit) as exc:
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    else:
        if path.suffix.lower() == ".vtk" and any("POLYDATA" in e for e in errors):
            return _load_vtk_polydata(path)
        raise InputError(f"cannot read {path} as a mesh: {errors[-1] if errors else 'unknown format'}")
    faces = _triangulate_meshio(data)
    return trimesh.Trimesh(vertices=data.points[:, :3], faces=faces, process=False)


def _load_vtk_polydata(path: Path):
    """Legacy VTK POLYDATA, which meshio cannot read, through VTK itself (optional extra)."""
    try:
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkFiltersCore import vtkTriangleFilter
        from vtkmodules.vtkIOLegacy import vtkPolyDataReader
    except ImportError:
        raise InputError(f"{path} is legacy VTK POLYDATA, which needs the optional 'vtk' package "
                         "(pip install 'mesh-export[vtk]')") from None
    import trimesh

    reader = vtkPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    triangulate = vtkTriangleFilter()
    triangulate.SetInputConnection(reader.GetOutputPort())
    triangulate.PassLinesOff()
    triangulate.PassVertsOff()
    triangulate.Update()
    polydata = triangulate.GetOutput()
    if polydata.GetPoints() is None:
        raise InputError(f"{path} holds no points")
    vertices = vtk_to_numpy(polydata.GetPoints().GetData())
    faces = vtk_to_numpy(polydata.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
