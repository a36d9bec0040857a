"""Wavefront OBJ (text only), units and tool in a leading comment."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mesh_export.core.atomic import atomic_output, intended_name
from mesh_export.model import (COMPARTMENT_COLORS, COMPARTMENT_NAMES, FACE_ATTRIBUTES, VERTEX_ATTRIBUTES,
                               element_attributes)
from mesh_export.writers import _text
from mesh_export.writers._mesh import provenance_line, triangles
from mesh_export.writers._read import BadText, Lines, NotNative, current, fan, open_text_source, text_numbers
from mesh_export.writers.registry import Writer, register_builtin


def write_obj(mesh, path) -> None:
    vertices, faces = triangles(mesh)
    decimals = _text.choose_decimals(vertices)
    compartments = element_attributes(mesh, FACE_ATTRIBUTES).get("compartment")
    with open(path, "xb") as handle:
        handle.write(f"# {provenance_line(mesh)}\n".encode())
        if compartments is not None:
            handle.write(f"mtllib {write_mtl(path)}\n".encode())
        _text.write_text(handle, [b"v "] + _text.fixed_columns(vertices, decimals) + _colour_columns(mesh) + [b"\n"],
                         len(vertices))
        uv = element_attributes(mesh, VERTEX_ATTRIBUTES).get("uv")
        with_uv = uv is not None and uv.ndim == 2 and uv.shape[1] == 2  # a vt line per vertex, f a/a b/b c/c
        if with_uv:
            _text.write_text(handle, [b"vt "] + _text.fixed_columns(np.asarray(uv, dtype=np.float64), 7) + [b"\n"],
                             len(uv))
        if compartments is not None:
            _write_groups(handle, faces, compartments, with_uv)
            return
        if with_uv:
            _text.write_text(handle, _corners_with_uv(faces + 1), len(faces))
            return
        # OBJ indices are 1-based.
        _text.write_text(handle, [b"f "] + _text.int_columns(faces + 1) + [b"\n"], len(faces))


def _corners_with_uv(faces: np.ndarray) -> list:
    """``f a/a b/b c/c``: each corner's texture index is its vertex's (one vt line per vertex)."""
    segments: list = [b"f "]
    for column in range(3):
        segments += [b" "] if column else []
        segments += [_text.Int(faces[:, column]), b"/", _text.Int(faces[:, column])]
    return segments + [b"\n"]


def _colour_columns(mesh) -> list:
    """`` r g b`` (0-1, as MeshLab, trimesh and Open3D append them to ``v`` lines) when the mesh
    has vertex colours; six decimals bring each 8-bit value back exactly."""
    colour = element_attributes(mesh, VERTEX_ATTRIBUTES).get("color")
    if colour is None or colour.ndim != 2 or colour.shape[1] < 3:
        return []
    return [b" "] + _text.fixed_columns(np.asarray(colour[:, :3], dtype=np.float64) / 255.0, 6)


def mtl_name(obj_path) -> str:
    """The material library beside an OBJ (named after the OBJ's final name, not a temporary one)."""
    return Path(intended_name(obj_path)).with_suffix(".mtl").name


def write_mtl(obj_path) -> str:
    """``<stem>.mtl`` beside ``obj_path`` (atomically): a diffuse colour per compartment."""
    name = mtl_name(obj_path)
    lines = [f"# compartment colours of {intended_name(obj_path)} (mesh-export)"]
    for label, part in COMPARTMENT_NAMES.items():
        r, g, b, _ = (c / 255.0 for c in COMPARTMENT_COLORS[label])
        lines += [f"newmtl {part}", f"Kd {r:.4f} {g:.4f} {b:.4f}", "Ka 0 0 0", "Ks 0.1 0.1 0.1", "d 1", "illum 2", ""]
    with atomic_output(Path(obj_path).parent / name, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines))
    return name


def _write_groups(handle, faces: np.ndarray, compartments: np.ndarray, with_uv: bool = False) -> None:
    """Faces grouped by compartment (``g``/``usemtl`` runs), each group's faces in file order."""
    order = np.argsort(compartments, kind="stable")
    ordered = compartments[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
        label = int(ordered[start])
        part = COMPARTMENT_NAMES.get(label, COMPARTMENT_NAMES[0])
        handle.write(f"g {part}\nusemtl {part}\n".encode())
        group = faces[order[start:stop]]
        corners = _corners_with_uv(group + 1) if with_uv else [b"f "] + _text.int_columns(group + 1) + [b"\n"]
        _text.write_text(handle, corners, len(group))


# ---------------------------------------------------------------------------- reading
#
# The native reader (shared machinery in _read).

def read_obj(path: Path):
    with open_text_source(path) as handle:
        vertex_parts, face_parts, uv_parts, vertex_count = [], [], [], 0
        uv_per_vertex = True  # every corner's texture index is its vertex index, so far
        for block, ends in Lines(handle).rest():
            if b"#" in block:  # comments after the numbers ("f 1 2 3 # top"): cut, lines kept
                block = _COMMENT.sub(b"", block)
                ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")) + 1
            vertices, faces, uvs, aligned = _obj_block(block, ends, vertex_count)
            vertex_parts += vertices
            face_parts += faces
            uv_parts += uvs
            uv_per_vertex &= aligned
            vertex_count += sum(len(v) for v in vertices)
    notes = current()
    if uv_parts and uv_per_vertex and face_parts and sum(len(u) for u in uv_parts) == vertex_count:
        notes.vertex_attributes["uv"] = np.concatenate(uv_parts).astype(np.float32)
    notes.vertex_place = lambda i: f"'v' line {i + 1:,}"
    if vertex_parts and all(v.shape[1] >= 6 for v in vertex_parts):
        _note_colours(np.concatenate([v[:, 3:7] for v in vertex_parts]))
    vertices = np.concatenate([v[:, :3] for v in vertex_parts]) if vertex_parts else np.zeros((0, 3))
    faces = np.concatenate(face_parts) if face_parts else np.zeros((0, 3), dtype=np.int64)
    return vertices, faces.astype(np.int32 if len(vertices) < 2**31 else np.int64)


_COMMENT = re.compile(rb"#[^\n]*")


def _note_colours(values: np.ndarray) -> None:
    """``v x y z r g b [a]`` (MeshLab, trimesh, Open3D): colours 0-1, as uint8 RGBA."""
    if not np.isfinite(values).all():  # "nan" colours (seen in the wild): no colour to carry
        current().skip("vertex colours with NaN or infinite values")
        return
    colour = np.full((len(values), 4), 255, dtype=np.uint8)
    colour[:, : values.shape[1]] = np.clip(np.round(values * 255), 0, 255)
    current().vertex_attributes["color"] = colour


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
        raise NotNative("indented or continued lines")
    is_vertex, is_face = (first == ord("v")) & spaced, (first == ord("f")) & spaced
    third = chars.take(starts + 2, mode="clip")
    is_uv = (first == ord("v")) & (second == ord("t")) & ((third == ord(" ")) | (third == ord("\t")))
    for letter, what in ((b"l", "'l' lines (polylines)"), (b"p", "'p' lines (points)")):
        current().drop(what, int(((first == ord(letter)) & spaced).sum()))
    bounds = np.append(starts, len(block))
    vertices, faces = [], []
    vertex_lines_before = np.cumsum(is_vertex) - is_vertex
    for start, stop in _runs(is_vertex):
        text = block[bounds[start] : bounds[stop]].translate(None, b"v")
        numbers = text_numbers(text)
        width = numbers.size // (stop - start)
        if numbers.size != width * (stop - start) or width < 3:
            raise BadText("vertex lines of different lengths")
        # x y z, and the colour some tools append (r g b, maybe a); w of a rational curve's points is not one
        columns = width if width in (6, 7) else 3
        vertices.append(numbers.reshape(-1, width)[:, :columns].astype(np.float64))
    uvs, aligned = [], True
    for start, stop in _runs(is_uv):
        numbers = text_numbers(block[bounds[start] : bounds[stop]].translate(None, b"vt"))
        width = numbers.size // (stop - start)
        if numbers.size != width * (stop - start) or width < 2:
            raise BadText("texture lines of different lengths")
        uvs.append(numbers.reshape(-1, width)[:, :2].astype(np.float64))
    for start, stop in _runs(is_face):
        before = vertices_before + vertex_lines_before[start:stop]
        triangles, same = _obj_faces(block[bounds[start] : bounds[stop]], before)
        faces.append(triangles)
        aligned &= same
    return vertices, faces, uvs, aligned


_SLASH_TO_SPACE = bytes.maketrans(b"/", b" ")


def _obj_faces(text: bytes, vertices_before: np.ndarray) -> tuple[np.ndarray, bool]:
    """Triangles of a run of ``f`` lines (``f a b c``, ``a/t/n``, ``a//n``, ``a/t``; polygons
    fan-triangulated; negative indices count back from the last vertex before the line), and
    whether every corner's texture index equals its vertex index (uv per vertex)."""
    lines = len(vertices_before)
    token = text[2:].split(None, 1)[0] if len(text) > 2 else b""
    slashes = token.count(b"/")
    per_corner = 1 + slashes - (b"//" in token)
    numbers = text_numbers(text.translate(_SLASH_TO_SPACE, b"f"))
    if numbers.dtype != np.int64 or numbers.size % per_corner:
        raise BadText("face indices that are not integers")
    corners = numbers.size // per_corner
    if text.count(b"/") != slashes * corners or text.count(b"//") != (corners if b"//" in token else 0):
        raise BadText("faces mixing index forms")
    indices = numbers[::per_corner]
    same_uv = slashes > 0 and b"//" not in token and bool(np.array_equal(numbers[1::per_corner], indices))
    if corners == 3 * lines:
        counts = np.full(lines, 3)
    else:  # polygons: corners per line from the tokens on each line
        chars = np.frombuffer(text, dtype=np.uint8)
        space = chars <= 32
        token_starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))
        newlines = np.flatnonzero(chars == ord("\n"))
        counts = np.bincount(np.searchsorted(newlines, token_starts), minlength=lines)[:lines] - 1
        if counts.sum() != corners:
            raise BadText("face lines the parser cannot split")
    base = np.repeat(vertices_before, counts)
    indices = np.where(indices < 0, indices + base, indices - 1)
    narrow = len(indices) == 0 or (int(indices.min()) >= -(2**31) and int(indices.max()) < 2**31)
    return fan(indices, counts, dtype=np.int32 if narrow else np.int64), same_uv


register_builtin(
    Writer(
        name="obj",
        extensions=(".obj",),
        write=write_obj,
        modes=("ascii",),
        description="Wavefront OBJ; Blender, Maya, most 3D tools",
    )
)
