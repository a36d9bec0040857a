"""PLY, binary little-endian (default) and ASCII, with units and tool in comments."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from mesh_export.writers import _text
from mesh_export.core.validate import SurfaceValues
from mesh_export.model import FACE_ATTRIBUTES, VERTEX_ATTRIBUTES, element_attributes
from mesh_export.writers._layout import Rows, converted_rows, write_layout
from mesh_export.writers._mesh import counted_triangles, provenance_line, triangles, units_of
from mesh_export.writers._read import (BLOCK_BYTES, BadText, Damaged, Lines, NotNative, after_binary_body, check_declared,
                                       current, fan, located, open_text_source, read_into, size_of, text_numbers,
                                       text_polygons)
from mesh_export.writers.registry import Writer, register_builtin


def write_ply(mesh, path, ascii: bool = False) -> None:
    vertices, faces = triangles(mesh)
    checks = SurfaceValues(vertices, faces)
    extras = _vertex_extras(mesh)
    labels = _face_labels(mesh)
    if extras:
        _write_ply_with_extras(mesh, path, ascii, vertices, faces, checks, extras, labels)
        return
    encoding = "ascii" if ascii else "binary_little_endian"
    header = (
        "ply\n"
        f"format {encoding} 1.0\n"
        f"comment {provenance_line(mesh)}\n"
        f"comment units {units_of(mesh)}\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\n"
        "property list uchar int vertex_indices\n"
        + "".join(f"property {kind} {name}\n" for name, (kind, _) in labels.items())
        + "end_header\n"
    )
    if not ascii:
        face_rows = (_labelled_triangles(faces, checks.faces, labels) if labels
                     else counted_triangles(faces, checks.faces, "u1", "<i4"))
        with open(path, "xb") as handle:
            write_layout(handle, [header.encode("ascii"), converted_rows(vertices, "<f4", checks.vertices), face_rows])
        return
    checks.whole()
    decimals = _text.choose_decimals(vertices)
    with open(path, "xb") as handle:
        handle.write(header.encode("ascii"))
        _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], len(vertices))
        _text.write_text(handle, _face_text(faces, labels), len(faces))


def _face_text(faces: np.ndarray, labels: dict) -> list:
    """ASCII face rows ``3 a b c`` followed by each label's value."""
    columns = [b"3 "] + _text.int_columns(faces)
    for _, values in labels.values():
        columns += [b" "] + (_text.int_columns(values[:, None]) if values.dtype.kind in "iu"
                             else _text.fixed_columns(values[:, None], 3))
    return columns + [b"\n"]


# Face labels a PLY face element carries after its vertex list: name -> PLY type, numpy type.
_FACE_PROPERTIES = {"compartment": ("uchar", "u1"), "path_distance": ("float", "<f4")}


def _face_labels(mesh) -> dict[str, tuple[str, np.ndarray]]:
    arrays = element_attributes(mesh, FACE_ATTRIBUTES)
    return {name: (kind, np.asarray(arrays[name]).astype(dtype, copy=False))
            for name, (kind, dtype) in _FACE_PROPERTIES.items() if name in arrays}


def _labelled_triangles(faces: np.ndarray, check, labels: dict) -> Rows:
    """Face records ``3 a b c`` followed by each label's value (packed)."""
    record = np.dtype([("count", "u1"), ("indices", "<i4", (3,))]
                      + [(name, values.dtype.str) for name, (_, values) in labels.items()], align=False)

    def fill(start: int, stop: int, scratch) -> memoryview:
        chunk = faces[start:stop]
        check(chunk)
        out = np.empty(stop - start, dtype=record)
        out["count"] = 3
        out["indices"] = chunk
        for name, (_, values) in labels.items():
            out[name] = values[start:stop]
        return memoryview(out).cast("B")

    return Rows(len(faces), record.itemsize, fill)


def _vertex_extras(mesh) -> dict[str, np.ndarray]:
    """The per-vertex arrays PLY holds beside x, y, z: colour (uint8 RGBA) and uv (float32)."""
    arrays = element_attributes(mesh, VERTEX_ATTRIBUTES)
    extras = {}
    if "color" in arrays and arrays["color"].ndim == 2 and arrays["color"].shape[1] in (3, 4):
        extras["color"] = np.asarray(arrays["color"]).astype(np.uint8, copy=False)
    if "uv" in arrays and arrays["uv"].ndim == 2 and arrays["uv"].shape[1] == 2:
        extras["uv"] = np.asarray(arrays["uv"], dtype=np.float32)
    return extras


_EXTRA_PROPERTIES = {"color": ("uchar", ("red", "green", "blue", "alpha")), "uv": ("float", ("s", "t"))}


def _write_ply_with_extras(mesh, path, ascii, vertices, faces, checks, extras, labels) -> None:
    """A PLY whose vertex records carry colours and/or uv (as MeshLab and trimesh write them), and
    its faces their ``labels``. Not the fast path: records are built whole, as coloured meshes
    are small."""
    checks.whole()
    properties = ["property float x", "property float y", "property float z"]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    for name, values in extras.items():
        kind, names = _EXTRA_PROPERTIES[name]
        properties += [f"property {kind} {n}" for n in names[: values.shape[1]]]
        fields += [(n, "u1" if kind == "uchar" else "<f4") for n in names[: values.shape[1]]]
    encoding = "ascii" if ascii else "binary_little_endian"
    header = "\n".join(["ply", f"format {encoding} 1.0", f"comment {provenance_line(mesh)}",
                        f"comment units {units_of(mesh)}", f"element vertex {len(vertices)}", *properties,
                        f"element face {len(faces)}", "property list uchar int vertex_indices",
                        *(f"property {kind} {name}" for name, (kind, _) in labels.items()), "end_header", ""])
    with open(path, "xb") as handle:
        handle.write(header.encode("ascii"))
        if ascii:
            segments = _text.fixed_columns(vertices, _text.choose_decimals(vertices))
            for name, values in extras.items():
                segments += [b" "] + (_text.int_columns(values) if name == "color" else _text.fixed_columns(values, 6))
            _text.write_text(handle, segments + [b"\n"], len(vertices))
            _text.write_text(handle, _face_text(faces, labels), len(faces))
            return
        records = np.empty(len(vertices), dtype=fields)
        for axis, name in enumerate("xyz"):
            records[name] = vertices[:, axis]
        for name, values in extras.items():
            for column, field_name in enumerate(_EXTRA_PROPERTIES[name][1][: values.shape[1]]):
                records[field_name] = values[:, column]
        handle.write(records.tobytes())
        handle.write(memoryview(_labelled_triangles(faces, lambda chunk: None, labels).fill(0, len(faces), None)))


# ---------------------------------------------------------------------------- reading
#
# The native reader (shared machinery in _read).

def _index_dtype(value_type: np.dtype) -> np.dtype:
    """int32 for indices stored in up to 4 bytes (uint32 too: a valid index is below 2**31)."""
    return np.dtype(np.int64) if value_type.itemsize > 4 else np.dtype(np.int32)



def _rows(pieces: Iterator[tuple[bytes, int]], width: int) -> Iterator[np.ndarray]:
    """Each piece's numbers as ``(lines, width)`` rows; BadText unless each line has ``width``."""
    for text, lines in pieces:
        numbers = text_numbers(text)
        if numbers.size != lines * width:
            raise BadText(f"expected {width} numbers a line")
        yield numbers.reshape(lines, width)


def _text_vertices(pieces, count: int, width: int, columns, dtype) -> np.ndarray:
    vertices = np.empty((count, len(columns)), dtype=dtype)
    done = 0
    for rows in _rows(pieces, width):
        vertices[done : done + len(rows)] = rows[:, columns]
        done += len(rows)
    return vertices



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
        if not more or len(head) > BLOCK_BYTES:
            raise Damaged("PLY header without an end_header line")
        head += more
    end = head.index(b"end_header")
    newline = head.find(b"\n", end)
    while newline < 0:
        more = handle.read(1 << 16)
        if not more:
            raise Damaged("PLY file ends in its header")
        head += more
        newline = head.find(b"\n", end)
    lines = head[:end].decode("ascii", "replace").splitlines()
    if not lines or lines[0].strip() != "ply":
        raise Damaged("not a PLY file (no 'ply' line)")
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
                raise NotNative(f"PLY header line {line!r}")
        except (IndexError, KeyError, ValueError):
            raise Damaged(f"bad PLY header line {line.strip()!r}") from None
    if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise Damaged(f"unknown PLY format {encoding!r}")
    return encoding, elements, newline + 1


def _ply_parts(elements: list[_PlyElement]) -> tuple[_PlyElement, _PlyElement, int]:
    """The vertex and face elements and which face property lists the vertex indices."""
    by_name = {e.name: e for e in elements}
    vertex, face = by_name.get("vertex"), by_name.get("face")
    if vertex is None or face is None or face.count == 0:
        raise NotNative("no vertex or face element")  # a point cloud: trimesh says what it is
    if any(vertex.position(axis) is None for axis in "xyz") or any(p[2] is not None for p in vertex.properties):
        raise NotNative("vertices without x, y, z, or with lists")
    index_list = next((face.position(n) for n in _PLY_FACE_LISTS if face.position(n) is not None), None)
    if index_list is None or face.properties[index_list][2] is None:
        raise NotNative("faces without a vertex_indices list")
    return vertex, face, index_list


def _vertex_type(vertex: _PlyElement) -> np.dtype:
    types = {vertex.properties[vertex.position(axis)][1] for axis in "xyz"}
    return types.pop() if len(types) == 1 and next(iter(types)).kind == "f" else np.dtype(np.float64)


def read_ply(path: Path):
    with open_text_source(path) as handle:
        encoding, elements, offset = _ply_header(handle)
        vertex, face, index_list = _ply_parts(elements)
        _check_counts(elements, encoding, size_of(handle) - offset)
        if encoding == "ascii":
            handle.seek(0)
            header_lines = handle.read(offset).count(b"\n")
            return _ply_text(handle, elements, offset, vertex, face, index_list, header_lines)
        endian = "<" if encoding == "binary_little_endian" else ">"
        return _ply_binary(handle, elements, offset, endian, vertex, face, index_list)


def _check_counts(elements: list[_PlyElement], encoding: str, available: int) -> None:
    """Refuse counts the file cannot hold before allocating for them: a binary record is at
    least its single values and list counts, a text line two characters a property."""
    if any(e.count < 0 for e in elements):
        raise Damaged(f"a negative PLY element count ({', '.join(f'{e.name} {e.count}' for e in elements)})")
    if encoding == "ascii":
        needed = sum(e.count * 2 * len(e.properties) for e in elements)
    else:
        needed = sum(e.count * sum((c if c is not None else v).itemsize for _, v, c in e.properties)
                     for e in elements)
    check_declared(", ".join(f"{e.count:,} {e.name}" for e in elements), needed, available)


# Per-vertex arrays PLY files carry beside x, y, z: name -> the properties that hold them, in order.
_VERTEX_EXTRAS = {"color": [("red", "green", "blue", "alpha"), ("diffuse_red", "diffuse_green", "diffuse_blue")],
                  "uv": [("s", "t"), ("u", "v"), ("texture_u", "texture_v"), ("texture_s", "texture_t")]}


def _extra_columns(vertex: _PlyElement) -> dict[str, list[int]]:
    """The property positions of the vertex colours and texture coordinates the file has."""
    found = {}
    for name, spellings in _VERTEX_EXTRAS.items():
        for names in spellings:
            positions = [vertex.position(n) for n in names]
            needed = 3 if name == "color" else 2
            if all(p is not None for p in positions[:needed]):
                found[name] = [p for p in positions if p is not None]
                break
    return found


def _note_extras(vertex: _PlyElement, columns: dict[str, list[int]], values) -> None:
    """Hand the colours (uint8 RGBA; float colours are 0-1) and uv (float32) to the read's notes;
    ``values(position)`` is one property's column."""
    notes = current()
    for name, positions in columns.items():
        parts = [np.asarray(values(p)) for p in positions]
        if name == "uv":
            notes.vertex_attributes["uv"] = np.stack(parts, axis=1).astype(np.float32)
            continue
        if vertex.properties[positions[0]][1].kind == "f":
            parts = [np.asarray(p, dtype=np.float64) * 255 for p in parts]
            if not all(np.isfinite(p).all() for p in parts):
                notes.skip("vertex colours with NaN or infinite values")
                continue
            parts = [np.clip(np.round(p), 0, 255) for p in parts]
        colour = np.full((vertex.count, 4), 255, dtype=np.uint8)
        for k, part in enumerate(parts):
            colour[:, k] = np.clip(part, 0, 255)
        notes.vertex_attributes["color"] = colour


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
            raise NotNative("a first record too long to peek")
        length = int(np.frombuffer(head, dtype=count, count=1, offset=at)[0]) if element.count else 0
        fields += [(f"c{i}", count), (f"p{i}", value, (max(length, 0),))]
        at += count.itemsize + length * value.itemsize
    return np.dtype(fields)


class _VaryingLists(Exception):
    """Face records whose lists are not all as long as the first record's."""


def _ply_binary(handle, elements, offset, endian, vertex, face, index_list):
    size = size_of(handle)
    records, position = {}, offset
    for element in elements:
        dtype = _ply_record(handle, element, position, endian)
        if element.count and dtype.itemsize > size - position:
            raise Damaged(f"byte {position:,}: the first {element.name} record is {dtype.itemsize:,} bytes, more "
                          "than the file holds (truncated, or a wrong list count)")
        records[element.name] = (dtype, position)
        position += element.count * dtype.itemsize
    try:
        return _ply_binary_body(handle, elements, offset, endian, vertex, face, index_list, size, records, position)
    except Damaged as exc:
        if str(exc) != _TRUNCATED:
            raise
        raise Damaged(f"byte {size:,}: the file ends inside the records its header declares (data from byte "
                      f"{offset:,}; truncated, or the header's counts are wrong)") from None


def _ply_binary_body(handle, elements, offset, endian, vertex, face, index_list, size, records, position):
    v_dtype, v_offset = records["vertex"]
    f_dtype, f_offset = records["face"]
    handle.seek(v_offset)
    vertices = _binary_vertices(handle, vertex, v_dtype)
    notes = current()
    notes.vertex_place = lambda i: f"byte {v_offset + i * v_dtype.itemsize:,}"
    handle.seek(f_offset)
    try:
        if face.count * f_dtype.itemsize > size - f_offset:
            raise _VaryingLists()  # lists of other lengths, or a truncated file: the walk tells which
        faces = _binary_faces(handle, face, f_dtype, index_list)
        if f_dtype[f"p{index_list}"].shape[0] == 3:
            notes.face_place = lambda i: f"byte {f_offset + i * f_dtype.itemsize:,}"
    except _VaryingLists:
        if v_offset > f_offset:
            raise NotNative("faces of varying length before the vertices") from None
        handle.seek(f_offset)
        faces, face_bytes = _binary_polygons(handle.read(), face, endian, index_list)
        position += face_bytes - face.count * f_dtype.itemsize
    if position > size:
        raise Damaged(f"byte {size:,}: the file ends; its header describes {position - offset:,} bytes of data "
                      f"from byte {offset:,} (truncated, or the header's counts are wrong)")
    if position < size:
        _trailing(handle, elements, records, position, size)
    return vertices, faces


def _trailing(handle, elements, records, position: int, size: int) -> None:
    """Bytes after the last element's records: a newline or text is skipped, more binary refused."""
    last = next((e for e in reversed(elements) if e.count), elements[-1])
    after_binary_body(handle, position, size, records[last.name][0].itemsize, f"{last.name} record")


_TRUNCATED = "truncated: the file ends before the records its header declares"


def _binary_vertices(handle, vertex: _PlyElement, dtype: np.dtype) -> np.ndarray:
    out_type = _vertex_type(vertex)
    columns = [f"p{vertex.position(axis)}" for axis in "xyz"]
    native = out_type.newbyteorder("=")
    vertices = np.empty((vertex.count, 3), dtype=native)
    extras = _extra_columns(vertex)
    if extras:
        handle_at = handle.tell()
        data = handle.read(vertex.count * dtype.itemsize)
        if len(data) < vertex.count * dtype.itemsize:
            raise Damaged(_TRUNCATED)
        records = np.frombuffer(data, dtype=dtype)
        _note_extras(vertex, extras, lambda p: records[f"p{p}"])
        handle.seek(handle_at)
    if dtype.names == tuple(columns) and all(dtype[c] == dtype[columns[0]] for c in columns) and (
            dtype[columns[0]].itemsize == out_type.itemsize):
        # Only x, y, z of one float type: the records are the vertex array.
        if read_into(handle, vertices) < vertices.nbytes:
            raise Damaged(_TRUNCATED)
        if not dtype[columns[0]].isnative:
            vertices.byteswap(inplace=True)
        return vertices
    rows = max(1, BLOCK_BYTES // dtype.itemsize)
    chunk = np.empty(min(rows, vertex.count), dtype=dtype)
    for start in range(0, vertex.count, rows):
        part = chunk[: min(rows, vertex.count - start)]
        if read_into(handle, part) < part.nbytes:
            raise Damaged(_TRUNCATED)
        for axis, column in enumerate(columns):
            vertices[start : start + len(part), axis] = part[column]
    return vertices


def _binary_faces(handle, face: _PlyElement, dtype: np.dtype, index_list: int) -> np.ndarray:
    lists = [i for i, p in enumerate(face.properties) if p[2] is not None]
    corners = dtype[f"p{index_list}"].shape[0]
    index_type = _index_dtype(face.properties[index_list][1])
    faces = np.empty((face.count * max(corners - 2, 0), 3), dtype=index_type)
    rows = max(1, BLOCK_BYTES // dtype.itemsize)
    chunk = np.empty(min(rows, face.count), dtype=dtype)
    done = 0
    for start in range(0, face.count, rows):
        part = chunk[: min(rows, face.count - start)]
        got = read_into(handle, part)
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
            raise Damaged(_TRUNCATED)
        if corners == 3:
            faces[done : done + len(part)] = part[f"p{index_list}"]
        else:
            fanned = fan(part[f"p{index_list}"].ravel(), np.full(len(part), corners), dtype=index_type)
            faces[done : done + len(fanned)] = fanned
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
        raise Damaged(_TRUNCATED) from None
    if at > len(data):
        raise Damaged(_TRUNCATED)
    value = face.properties[index_list][1].newbyteorder(endian)
    counts = np.asarray(counts, dtype=np.int64)
    corner = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    offsets = np.repeat(np.asarray(starts, dtype=np.int64), counts) + corner * value.itemsize
    raw = np.frombuffer(data, dtype=np.uint8)
    indices = raw[offsets[:, None] + np.arange(value.itemsize)].view(value).ravel()
    return fan(indices, counts, dtype=_index_dtype(value)), at


def _ply_text(handle, elements, offset, vertex, face, index_list, header_lines):
    handle.seek(offset)
    lines = Lines(handle, first_number=header_lines + 1)
    vertices = faces = None
    notes = current()
    for element in elements:
        pieces = lines.take(element.count)
        first = lines.number()
        try:
            if element is vertex:
                columns = [vertex.position(axis) for axis in "xyz"]
                extras = _extra_columns(vertex)
                wanted = columns + sorted({p for ps in extras.values() for p in ps})
                values = _text_vertices(pieces, element.count, len(element.properties), wanted,
                                        _vertex_type(vertex).newbyteorder("=") if not extras else np.float64)
                vertices = values[:, :3].astype(_vertex_type(vertex).newbyteorder("="), copy=False)
                if extras:
                    _note_extras(vertex, extras, lambda p: values[:, wanted.index(p)])
                notes.vertex_place = lambda i, first=first: f"line {first + i:,}"
            elif element is face:
                layout = ["list" if p[2] is not None else None for p in element.properties]
                faces = text_polygons(pieces, layout, index_list, _index_dtype(element.properties[index_list][1]))
                if len(faces) == element.count:
                    notes.face_place = lambda i, first=first: f"line {first + i:,}"
            else:
                for _ in pieces:
                    pass
        except BadText as exc:
            raise located(exc, lines) from None
    lines.after_body("elements")
    return vertices, faces


register_builtin(
    Writer(
        name="ply",
        extensions=(".ply",),
        write=write_ply,
        checks_values=True,
        modes=("binary", "ascii"),
        description="Stanford polygon format; Blender, MeshLab, CloudCompare",
    )
)
