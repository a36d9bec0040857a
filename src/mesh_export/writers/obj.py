"""Wavefront OBJ (text only), units and tool in a leading comment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesh_export.core.atomic import atomic_output, intended_name
from mesh_export.model import COMPARTMENT_COLORS, COMPARTMENT_NAMES, FACE_ATTRIBUTES, element_attributes
from mesh_export.writers import _text
from mesh_export.writers._mesh import provenance_line, triangles
from mesh_export.writers._read import BadText, Lines, NotNative, fan, text_numbers
from mesh_export.writers.registry import Writer, register


def write_obj(mesh, path) -> None:
    vertices, faces = triangles(mesh)
    decimals = _text.choose_decimals(vertices)
    compartments = element_attributes(mesh, FACE_ATTRIBUTES).get("compartment")
    with open(path, "xb") as handle:
        handle.write(f"# {provenance_line(mesh)}\n".encode())
        if compartments is not None:
            handle.write(f"mtllib {write_mtl(path)}\n".encode())
        _text.write_text(handle, [b"v "] + _text.fixed_columns(vertices, decimals) + [b"\n"], len(vertices))
        if compartments is not None:
            _write_groups(handle, faces, compartments)
            return
        # OBJ indices are 1-based.
        _text.write_text(handle, [b"f "] + _text.int_columns(faces + 1) + [b"\n"], len(faces))


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


def _write_groups(handle, faces: np.ndarray, compartments: np.ndarray) -> None:
    """Faces grouped by compartment (``g``/``usemtl`` runs), each group's faces in file order."""
    order = np.argsort(compartments, kind="stable")
    ordered = compartments[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
        label = int(ordered[start])
        part = COMPARTMENT_NAMES.get(label, COMPARTMENT_NAMES[0])
        handle.write(f"g {part}\nusemtl {part}\n".encode())
        group = faces[order[start:stop]]
        _text.write_text(handle, [b"f "] + _text.int_columns(group + 1) + [b"\n"], len(group))


# ---------------------------------------------------------------------------- reading
#
# The native reader (shared machinery in _read).

def read_obj(path: Path):
    with open(path, "rb") as handle:
        vertex_parts, face_parts, vertex_count = [], [], 0
        for block, ends in Lines(handle).rest():
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
        raise NotNative("indented or continued lines")
    is_vertex, is_face = (first == ord("v")) & spaced, (first == ord("f")) & spaced
    bounds = np.append(starts, len(block))
    vertices, faces = [], []
    vertex_lines_before = np.cumsum(is_vertex) - is_vertex
    for start, stop in _runs(is_vertex):
        text = block[bounds[start] : bounds[stop]].translate(None, b"v")
        numbers = text_numbers(text)
        width = numbers.size // (stop - start)
        if numbers.size != width * (stop - start) or width < 3:
            raise BadText("vertex lines of different lengths")
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
    numbers = text_numbers(text.translate(_SLASH_TO_SPACE, b"f"))
    if numbers.dtype != np.int64 or numbers.size % per_corner:
        raise BadText("face indices that are not integers")
    corners = numbers.size // per_corner
    if text.count(b"/") != slashes * corners or text.count(b"//") != (corners if b"//" in token else 0):
        raise BadText("faces mixing index forms")
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
            raise BadText("face lines the parser cannot split")
    base = np.repeat(vertices_before, counts)
    indices = np.where(indices < 0, indices + base, indices - 1)
    narrow = len(indices) == 0 or (int(indices.min()) >= -(2**31) and int(indices.max()) < 2**31)
    return fan(indices, counts, dtype=np.int32 if narrow else np.int64)


register(
    Writer(
        name="obj",
        extensions=(".obj",),
        write=write_obj,
        modes=("ascii",),
        description="Wavefront OBJ; Blender, Maya, most 3D tools",
    )
)
