"""Legacy VTK (``.vtk``) POLYDATA, binary (default) and ASCII; read natively (``read_legacy``).

Version 4.2 layout (``POLYGONS n 4n`` followed by ``3 a b c`` records) is read by every
ParaView/VTK release and by meshio. Legacy binary is big-endian by definition.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mesh_export.writers import _text
from mesh_export.core.validate import SurfaceValues
from mesh_export.errors import InputError
from mesh_export.core.cells import Block, Cells, blocks_of_vtk_cells
from mesh_export.writers._read import Damaged, NotNative, read_into, text_numbers
from mesh_export.writers._layout import converted_rows, write_layout
from mesh_export.writers._mesh import counted_triangles, provenance_line, triangles
from mesh_export.model import kind_of
from mesh_export.writers.registry import SURFACE, VOLUME, Writer, register_builtin


def write_vtk(mesh, path, ascii: bool = False) -> None:
    if kind_of(mesh) == VOLUME:
        # Volume meshes are rare and small next to surfaces: meshio's UNSTRUCTURED_GRID writer is enough.
        import meshio

        meshio.write(path, mesh, file_format="vtk", binary=not ascii)
        return
    vertices, faces = triangles(mesh)
    n_vertices, n_faces = len(vertices), len(faces)
    checks = SurfaceValues(vertices, faces)
    head = (
        "# vtk DataFile Version 4.2\n"
        f"{provenance_line(mesh)}\n"
        f"{'ASCII' if ascii else 'BINARY'}\n"
        "DATASET POLYDATA\n"
        f"POINTS {n_vertices} float\n"
    )
    if not ascii:
        polygons = f"\nPOLYGONS {n_faces} {4 * n_faces}\n".encode()
        with open(path, "xb") as handle:
            write_layout(handle, [head.encode("ascii"), converted_rows(vertices, ">f4", checks.vertices), polygons,
                                  counted_triangles(faces, checks.faces, ">i4", ">i4"), b"\n"])
        return
    checks.whole()
    decimals = _text.choose_decimals(vertices)
    with open(path, "xb") as handle:
        handle.write(head.encode("ascii"))
        _text.write_text(handle, _text.fixed_columns(vertices, decimals) + [b"\n"], n_vertices)
        handle.write(f"POLYGONS {n_faces} {4 * n_faces}\n".encode())
        _text.write_text(handle, [b"3 "] + _text.int_columns(faces) + [b"\n"], n_faces)


# ---------------------------------------------------------------------------- reading
#
# Natively: POLYDATA and UNSTRUCTURED_GRID, ASCII or binary (big-endian), the 4.2 cell lists
# ("POLYGONS n size" then "k i1 .. ik" per cell) and the 5.1 ones (OFFSETS and CONNECTIVITY).
# Attribute sections (POINT_DATA, CELL_DATA) follow the geometry and are not read.

_LEGACY_TYPES = {"bit": None, "unsigned_char": "u1", "char": "i1", "unsigned_short": "u2", "short": "i2",
                 "unsigned_int": "u4", "int": "i4", "unsigned_long": "u8", "long": "i8", "float": "f4",
                 "double": "f8", "vtktypeint64": "i8", "vtktypeuint64": "u8", "vtkidtype": "i8",
                 "vtktypeint32": "i4", "vtktypeuint32": "u4"}
_SECTIONS = (b"POINTS", b"VERTICES", b"LINES", b"POLYGONS", b"TRIANGLE_STRIPS", b"CELLS", b"CELL_TYPES",
             b"POINT_DATA", b"CELL_DATA", b"METADATA", b"FIELD", b"OFFSETS", b"CONNECTIVITY")
_NEXT_SECTION = re.compile(rb"(?m)^[ \t]*(?:" + b"|".join(_SECTIONS) + rb")\b")
_POLY_SECTIONS = {b"VERTICES": "poly_vertex", b"LINES": "poly_line", b"POLYGONS": "polygon",
                  b"TRIANGLE_STRIPS": "triangle_strip"}


class _Legacy:
    """A legacy file's lines and sections: binary arrays read from the file straight into their
    arrays; an ASCII body read whole (its sections end where the next keyword starts)."""

    def __init__(self, handle):
        self.handle, self.binary, self.text, self.at = handle, False, None, 0

    def _raw_line(self) -> bytes | None:
        if self.text is None:
            return self.handle.readline() or None
        if self.at >= len(self.text):
            return None
        end = self.text.find(b"\n", self.at)
        end = len(self.text) if end < 0 else end
        line, self.at = self.text[self.at : end + 1], end + 1
        return line

    def line(self, blank: bool = False) -> bytes:
        """The next non-blank line (``blank``: the next line, even blank), stripped; b"" at the end."""
        while True:
            line = self._raw_line()
            if line is None:
                return b""
            if line.strip() or blank:
                return line.strip()

    def text_body(self) -> None:
        self.text, self.at = self.handle.read(), 0

    def mark(self) -> int:
        return self.handle.tell() if self.text is None else self.at

    def back(self, mark: int) -> None:
        if self.text is None:
            self.handle.seek(mark)
        else:
            self.at = mark

    def numbers(self, count: int, type_name: str, leading: list[bytes] | None = None) -> np.ndarray:
        """``count`` values; ``leading``: those an ASCII file wrote on the keyword's own line
        (VTK reads by words, not lines, and some writers start the list there)."""
        code = _LEGACY_TYPES.get(type_name.lower())
        if code is None:
            raise NotNative(f"legacy VTK data of type {type_name!r}")
        if self.binary:
            where = self.handle.tell()
            if count < 0 or where + count * int(code[1]) > os.fstat(self.handle.fileno()).st_size:
                raise Damaged(f"a section of {count:,} values runs past the file's end (truncated, or a wrong count)")
            values = np.empty(count, dtype=">" + code)
            if read_into(self.handle, values) != values.nbytes:
                raise Damaged(f"it ends inside a section of {count:,} values (truncated)")
            return values.byteswap(inplace=True).view(values.dtype.newbyteorder("="))
        found = _NEXT_SECTION.search(self.text, self.at)
        stop = found.start() if found else len(self.text)
        values = text_numbers(b" ".join(leading or []) + b" " + self.text[self.at : stop])
        if len(values) != count:
            raise Damaged(f"a section holds {len(values):,} values where its header says {count:,}")
        self.at = stop
        if code[0] == "f":
            return values.astype(code)
        if values.dtype.kind == "f":
            raise Damaged("a cell list with numbers that are not integers")
        return values


def _counted(values: np.ndarray, cells: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A 4.2 cell list ("k i1 .. ik" per cell) as (connectivity, offsets)."""
    if cells == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    k = int(values[0])
    if k > 0 and len(values) == cells * (k + 1) and (values[:: k + 1] == k).all():
        # Every cell of k points: the counts squeezed out in place, a block of rows at a time
        # (each block moves to lower addresses), rather than a second copy of the indices.
        rows = values.reshape(cells, k + 1)
        flat = values[: cells * k]
        step = 1 << 20
        for start in range(0, cells, step):
            stop = min(start + step, cells)
            flat[start * k : stop * k] = rows[start:stop, 1:].ravel()
        index = np.int32 if k * cells < 2**31 else np.int64
        return flat, np.arange(k, k * cells + 1, k, dtype=index)
    listed = values.tolist()
    starts, counts, at = [], [], 0
    for _ in range(cells):  # cells of varying size: walked one by one
        if at >= len(listed) or listed[at] < 0:
            raise Damaged(f"{where}: a cell list shorter than its header says")
        starts.append(at + 1)
        counts.append(int(listed[at]))
        at += 1 + int(listed[at])
    if at != len(listed):
        raise Damaged(f"{where}: a cell list whose sizes do not add up to its header's")
    counts_array = np.asarray(counts, dtype=np.int64)
    flat = values[np.repeat(np.asarray(starts, dtype=np.int64), counts_array)
                  + np.arange(int(counts_array.sum())) - np.repeat(np.cumsum(counts_array) - counts_array, counts_array)]
    return flat, np.cumsum(counts_array)


def read_legacy(path) -> Cells:
    """The points and cells of a legacy VTK POLYDATA or UNSTRUCTURED_GRID file. Other datasets
    raise NotNative (VTK reads them, when it is installed)."""
    path = Path(path)
    with open(path, "rb") as handle:
        return _read_legacy(_Legacy(handle), str(path))


def _read_legacy(reader: _Legacy, where: str) -> Cells:
    if not reader.line().startswith(b"# vtk DataFile"):
        raise Damaged("no '# vtk DataFile' header")
    reader.line(blank=True)  # the title: any text, even none
    encoding = reader.line().upper()
    if encoding not in (b"ASCII", b"BINARY"):
        raise Damaged(f"the third line says {encoding[:20].decode(errors='replace')!r}, not ASCII or BINARY")
    reader.binary = encoding == b"BINARY"
    if not reader.binary:
        reader.text_body()
    dataset = reader.line().split()
    if dataset[:1] == [b"FIELD"]:
        raise Damaged("a FIELD file: arrays without points or cells")
    if len(dataset) < 2 or dataset[0].upper() != b"DATASET":
        raise Damaged("no DATASET line")
    kind = dataset[1].upper()
    if kind in (b"STRUCTURED_POINTS", b"STRUCTURED_GRID", b"RECTILINEAR_GRID"):
        raise NotNative(f"a legacy VTK {kind.decode()} dataset")
    if kind not in (b"POLYDATA", b"UNSTRUCTURED_GRID"):
        raise Damaged(f"DATASET {kind[:30].decode(errors='replace')} is not a VTK dataset type")
    points = None
    blocks: list[Block] = []
    grid_cells = None
    while True:
        line = reader.line()
        if not line:
            break
        words = line.split()
        keyword = words[0].upper()
        try:
            if keyword == b"POINTS":
                count = int(words[1])
                points = reader.numbers(3 * count, words[2].decode(), words[3:]).reshape(count, 3)
            elif keyword in _POLY_SECTIONS or keyword == b"CELLS":
                first, second = int(words[1]), int(words[2])
                connectivity, offsets = _cell_list(reader, first, second, where, words[3:])
                if keyword == b"CELLS":
                    grid_cells = (connectivity, offsets)
                elif len(offsets):
                    blocks.append(Block(_POLY_SECTIONS[keyword], connectivity, offsets))
            elif keyword == b"CELL_TYPES":
                if grid_cells is None:
                    raise Damaged("CELL_TYPES before CELLS")
                types = reader.numbers(int(words[1]), "int", words[2:])
                blocks.extend(blocks_of_vtk_cells(grid_cells[0], grid_cells[1], types, where))
            elif keyword == b"METADATA":
                while reader.line(blank=True):  # up to the next blank line
                    pass
            elif keyword in (b"POINT_DATA", b"CELL_DATA"):
                break
            else:
                raise NotNative(f"a legacy VTK section {keyword[:20].decode(errors='replace')!r}")
        except (IndexError, ValueError) as exc:
            if isinstance(exc, Damaged):
                raise
            raise Damaged(f"a malformed line {line[:40].decode(errors='replace')!r}") from None
    if points is None:
        raise Damaged("no POINTS section")
    return Cells(points, blocks)


def _cell_list(reader: _Legacy, first: int, second: int, where: str,
               leading: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """A cell list in either layout: 4.2 ("k i1 .. ik"), or 5.1 (OFFSETS and CONNECTIVITY
    sections; ``first`` is then the number of offsets, one more than the cells)."""
    saved = reader.mark()
    following = [] if leading else reader.line().split()
    if following and following[0].upper() == b"OFFSETS":
        offsets = reader.numbers(first, following[1].decode()).astype(np.int64)
        words = reader.line().split()
        if not words or words[0].upper() != b"CONNECTIVITY":
            raise Damaged("OFFSETS without CONNECTIVITY")
        connectivity = reader.numbers(second, words[1].decode())
        if len(offsets) and (offsets[0] != 0 or offsets[-1] != len(connectivity)):
            raise Damaged(f"{where}: offsets that do not span the connectivity")
        return connectivity, offsets[1:]
    reader.back(saved)
    return _counted(reader.numbers(second, "int", leading), first, where)


register_builtin(
    Writer(
        name="vtk",
        extensions=(".vtk",),
        write=write_vtk,
        checks_values=True,
        accepts=(SURFACE, VOLUME),
        modes=("binary", "ascii"),
        description="Legacy VTK POLYDATA (a volume mesh: UNSTRUCTURED_GRID); ParaView, VisIt",
    )
)
