"""VTK XML: PolyData (``.vtp``) and UnstructuredGrid (``.vtu``), written as raw appended
binary, read in every encoding VTK writes.

Arrays go in one appended block, each prefixed by its UInt64 byte count; with
``compress=True`` each array is zlib-compressed in 1 MiB blocks behind the block table
VTK's vtkZLibDataCompressor expects.

``read_vtk_xml`` reads ascii, inline binary (base64) and appended (raw or base64) arrays,
UInt32 or UInt64 headers, either byte order, uncompressed or zlib/lzma compressed (lz4 when
the ``lz4`` package is there), every piece; the cells go to ``core.cells`` as blocks.
"""

from __future__ import annotations

import base64
import os
import re
import zlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from mesh_export.core.cells import Block, Cells, blocks_of_vtk_cells
from mesh_export.core.validate import SurfaceValues
from mesh_export.model import FACE_ATTRIBUTES, VERTEX_ATTRIBUTES, element_attributes, kind_of
from mesh_export.writers._layout import Rows, converted_rows, scratch_array, write_layout
from mesh_export.writers._mesh import provenance_line, triangles
from mesh_export.writers._read import Damaged, NotNative, read_into, text_numbers
from mesh_export.writers.registry import SURFACE, VOLUME, Writer, register_builtin

_BLOCK = 1 << 20
_VTK_TRIANGLE = 5
_ZLIB_LEVEL = 1  # 3-4x faster than the default level for a few percent in size


def _encode(array: np.ndarray | Rows, dtype: str, compress: bool, check=None) -> tuple[int, list]:
    """The appended-data parts of one array: (total bytes, list of bytes and Rows)."""
    if not compress:
        rows = array if isinstance(array, Rows) else converted_rows(array, dtype, check)
        return 8 + rows.nbytes, [np.uint64(rows.nbytes).tobytes(), rows]
    if isinstance(array, Rows):
        array = np.frombuffer(array.fill(0, array.count, {}), dtype=dtype)
    raw = memoryview(np.ascontiguousarray(array, dtype=dtype)).cast("B")
    blocks = [zlib.compress(raw[i : i + _BLOCK], _ZLIB_LEVEL) for i in range(0, raw.nbytes, _BLOCK)]
    last = raw.nbytes % _BLOCK if raw.nbytes % _BLOCK else (_BLOCK if raw.nbytes else 0)
    table = np.array([len(blocks), _BLOCK, last] + [len(b) for b in blocks], dtype="<u8")
    return table.nbytes + sum(len(b) for b in blocks), [table.tobytes(), *blocks]


def _vtk_type(dtype: str) -> str:
    return {"<f4": "Float32", "<i4": "Int32", "<i8": "Int64", "|u1": "UInt8"}[np.dtype(dtype).str]


def _write(mesh, path, kind: str, compress: bool) -> None:
    vertices, faces = triangles(mesh)
    n_vertices, n_faces = len(vertices), len(faces)
    checks = SurfaceValues(vertices, faces)
    if compress:
        checks.whole()  # compressed arrays are converted whole, before anything is written
    index_dtype = "<i4" if max(n_vertices, 3 * n_faces + 1) < 2**31 else "<i8"
    offsets = _offsets(n_faces, index_dtype)
    # (name, array, dtype written, components, check): conversions happen chunk by chunk on write.
    arrays = [("Points", vertices, "<f4", 3, checks.vertices), ("connectivity", faces, index_dtype, 1, checks.faces),
              ("offsets", offsets, index_dtype, 1, None)]
    if kind == "UnstructuredGrid":
        arrays.append(("types", _triangle_types(n_faces), "|u1", 1, None))
    arrays += _vertex_colours(mesh)
    cell_data = _cell_data(mesh)
    arrays += cell_data

    encoded, declarations, offset = [], {}, 0
    for name, array, dtype, components, check in arrays:
        nbytes, parts = _encode(array, dtype, compress, check)
        encoded.extend(parts)
        declarations[name] = (
            f'<DataArray type="{_vtk_type(dtype)}" Name="{name}" '
            + (f'NumberOfComponents="{components}" ' if components > 1 else "")
            + f'format="appended" offset="{offset}"/>'
        )
        offset += nbytes

    compressor = ' compressor="vtkZLibDataCompressor"' if compress else ""
    # ParaView shows an unsigned char RGB(A) Scalars array as colours; PointData, then CellData,
    # precede Points in VTK's file-format order.
    point_data = f'<PointData Scalars="Colors">{declarations["Colors"]}</PointData>\n' if "Colors" in declarations else ""
    cells = _cell_data_block(cell_data, declarations)
    if kind == "PolyData":
        piece = (
            f'<Piece NumberOfPoints="{n_vertices}" NumberOfVerts="0" NumberOfLines="0" '
            f'NumberOfStrips="0" NumberOfPolys="{n_faces}">\n{point_data}{cells}'
            f"<Points>{declarations['Points']}</Points>\n"
            f"<Polys>{declarations['connectivity']}{declarations['offsets']}</Polys>\n"
        )
    else:
        piece = (
            f'<Piece NumberOfPoints="{n_vertices}" NumberOfCells="{n_faces}">\n{point_data}{cells}'
            f"<Points>{declarations['Points']}</Points>\n"
            f"<Cells>{declarations['connectivity']}{declarations['offsets']}{declarations['types']}</Cells>\n"
        )
    head = (
        '<?xml version="1.0"?>\n'
        f"<!-- {provenance_line(mesh)} -->\n"
        f'<VTKFile type="{kind}" version="1.0" byte_order="LittleEndian" header_type="UInt64"{compressor}>\n'
        f"<{kind}>\n{piece}</Piece>\n</{kind}>\n"
        '<AppendedData encoding="raw">\n_'
    )
    with open(path, "xb") as handle:
        write_layout(handle, [head.encode("ascii"), *encoded, b"\n</AppendedData>\n</VTKFile>\n"])


def _vertex_colours(mesh) -> list:
    """The mesh's vertex colours (model.VERTEX_ATTRIBUTES "color", uint8 RGBA) as a point-data array."""
    colour = element_attributes(mesh, VERTEX_ATTRIBUTES).get("color")
    if colour is None or colour.ndim != 2 or colour.shape[1] not in (3, 4):
        return []
    return [("Colors", np.ascontiguousarray(colour, dtype=np.uint8), "|u1", colour.shape[1], None)]


# Face labels VTK holds as cell data (what ParaView colours by): name -> dtype written.
_CELL_ARRAYS = {"compartment": "|u1", "path_distance": "<f4"}


def _cell_data(mesh) -> list:
    """The mesh's face labels (compartment, path distance) as appended arrays."""
    faces = element_attributes(mesh, FACE_ATTRIBUTES)
    return [(name, np.asarray(faces[name]), dtype, 1, None) for name, dtype in _CELL_ARRAYS.items() if name in faces]


def _cell_data_block(cell_data: list, declarations: dict) -> str:
    if not cell_data:
        return ""
    names = [name for name, *_ in cell_data]
    return (f'<CellData Scalars="{names[0]}">' + "".join(declarations[name] for name in names) + "</CellData>\n")


def _offsets(n_faces: int, dtype: str) -> Rows:
    """3, 6, 9, ...: each triangle's end in the connectivity array, made a chunk at a time."""

    def fill(start: int, stop: int, scratch) -> memoryview:
        return memoryview(np.arange(3 * (start + 1), 3 * stop + 1, 3, dtype=dtype)).cast("B")

    return Rows(n_faces, np.dtype(dtype).itemsize, fill)


def _triangle_types(n_faces: int) -> Rows:
    def fill(start: int, stop: int, scratch) -> memoryview:
        types = scratch_array(scratch, "vtu.types", "|u1", stop - start, _set_triangle)
        return memoryview(types[: stop - start])

    return Rows(n_faces, 1, fill)


def _set_triangle(types: np.ndarray) -> None:
    types.fill(_VTK_TRIANGLE)


def write_vtp(mesh, path, compress: bool = False) -> None:
    _write(mesh, path, "PolyData", compress)


def write_vtu(mesh, path, compress: bool = False) -> None:
    if kind_of(mesh) == VOLUME:
        # Tetrahedral meshes are rare and small next to surfaces: meshio's writer is enough.
        import meshio

        meshio.write(path, mesh, file_format="vtu", binary=True, compression="zlib" if compress else None)
        return
    _write(mesh, path, "UnstructuredGrid", compress)


# ---------------------------------------------------------------------------- reading

# zlib inflates at most ~1032:1; lzma further, on data no mesh holds: a table claiming more is wrong.
_MAX_INFLATION = 1 << 14
_XML_TYPES = {"Int8": "i1", "UInt8": "u1", "Int16": "i2", "UInt16": "u2", "Int32": "i4", "UInt32": "u4",
              "Int64": "i8", "UInt64": "u8", "Float32": "f4", "Float64": "f8"}
_APPENDED = re.compile(rb"<AppendedData\b([^>]*)>\s*_")


class _File:
    """Bytes and arrays at offsets of an open file, read only when asked for (an appended block
    is read array by array, straight into the result, never whole)."""

    def __init__(self, handle):
        self.handle = handle
        self.size = os.fstat(handle.fileno()).st_size

    def _fits(self, start: int, count: int) -> None:
        # A header's byte count is checked against the file before anything that size is made.
        if count < 0 or start + count > self.size:
            raise Damaged(f"an appended array of {count:,} bytes at byte {start:,} runs past the file's end "
                          f"({self.size:,} bytes: truncated, or a wrong header)")

    def bytes_at(self, start: int, count: int) -> bytes:
        self._fits(start, count)
        self.handle.seek(start)
        data = self.handle.read(count)
        if len(data) < count:
            raise Damaged("it ends inside an appended array (truncated)")
        return data

    def array_at(self, start: int, dtype, count: int) -> np.ndarray:
        self._fits(start, count * np.dtype(dtype).itemsize)
        array = np.empty(count, dtype=dtype)
        self.handle.seek(start)
        if read_into(self.handle, array) != array.nbytes:
            raise Damaged("it ends inside an appended array (truncated)")
        return array


class _Arrays:
    """Decodes the DataArrays of one VTK XML file; appended data from ``source`` (a _File)."""

    def __init__(self, root, source: _File | None, appended_at: int, appended_encoding: str, where: str):
        self.where = where
        self.order = ">" if root.get("byte_order") == "BigEndian" else "<"
        self.header = np.dtype(self.order + ("u8" if root.get("header_type") == "UInt64" else "u4"))
        self.compressor = root.get("compressor") or None
        if self.compressor not in (None, "vtkZLibDataCompressor", "vtkLZMADataCompressor", "vtkLZ4DataCompressor"):
            raise Damaged(f"unknown compressor {self.compressor}")
        self.source, self.appended_at, self.appended_encoding = source, appended_at, appended_encoding

    def read(self, element, count: int | None = None) -> np.ndarray:
        """A DataArray's values (flat), ``count`` of them when known."""
        name = element.get("type")
        if name not in _XML_TYPES:
            raise Damaged(f"a DataArray of type {name!r}")
        dtype = np.dtype(self.order + _XML_TYPES[name])
        form = element.get("format", "ascii")
        if form == "ascii":
            values = text_numbers((element.text or "").encode())
            values = values.astype(dtype.newbyteorder("="), copy=False)
        elif form == "binary":
            values = self._binary("".join((element.text or "").split()), dtype)
        elif form == "appended":
            if self.source is None:
                raise Damaged("an appended DataArray but no AppendedData")
            start = self.appended_at + int(element.get("offset", "0"))
            if self.appended_encoding == "base64":
                values = self._appended_base64(start, dtype)
            else:
                values = self._raw(start, dtype)
        else:
            raise Damaged(f"a DataArray in format {form!r}")
        if not values.dtype.isnative:
            values = values.astype(values.dtype.newbyteorder("="))
        if count is not None and len(values) != count:
            raise Damaged(f"the {element.get('Name') or 'unnamed'} array holds {len(values):,} values, "
                          f"not {count:,}")
        return values

    def _decompress(self, block: bytes) -> bytes:
        if self.compressor == "vtkZLibDataCompressor":
            return zlib.decompress(block)
        if self.compressor == "vtkLZMADataCompressor":
            import lzma

            return lzma.decompress(block)
        try:
            import lz4.block
        except ImportError:
            raise NotNative("lz4-compressed arrays need the lz4 package") from None
        return lz4.block.decompress(block, uncompressed_size=self._block_size)

    def _table(self, head: bytes) -> np.ndarray:
        """A compressed array's block table from its first bytes."""
        size = self.header.itemsize
        if len(head) < 3 * size:
            raise Damaged("it ends inside an array's header")
        blocks = int(np.frombuffer(head, self.header, 1)[0])
        if len(head) < (3 + blocks) * size:
            raise Damaged("it ends inside an array's block table")
        return np.frombuffer(head, self.header, 3 + blocks).astype(np.int64)

    def _inflate(self, table: np.ndarray, compressed, dtype) -> np.ndarray:
        blocks, self._block_size, last = int(table[0]), int(table[1]), int(table[2])
        sizes = table[3:]
        if int(sizes.sum()) > len(compressed):
            raise Damaged("it ends inside a compressed array")
        total = (blocks - 1) * self._block_size + (last or self._block_size) if blocks else 0
        if blocks != len(sizes) or total > _MAX_INFLATION * (int(sizes.sum()) + 1024):
            raise Damaged(f"a compressed array's header says {total:,} bytes from {int(sizes.sum()):,} compressed")
        out = np.empty(total, dtype=np.uint8)
        at = done = 0
        view = memoryview(compressed)
        for size in sizes.tolist():
            piece = self._decompress(view[at : at + size])
            if done + len(piece) > total:
                raise Damaged("a compressed array's blocks hold more than its header says")
            out[done : done + len(piece)] = np.frombuffer(piece, np.uint8)
            at, done = at + size, done + len(piece)
        if done != total or total % dtype.itemsize:
            raise Damaged("a compressed array's blocks do not add up to its size")
        return out.view(dtype)

    def _raw(self, start: int, dtype) -> np.ndarray:
        size = self.header.itemsize
        if self.compressor:
            blocks = int(np.frombuffer(self.source.bytes_at(start, size), self.header, 1)[0])
            table = self._table(self.source.bytes_at(start, (3 + blocks) * size))
            return self._inflate(table, self.source.bytes_at(start + (3 + blocks) * size, int(table[3:].sum())), dtype)
        nbytes = int(np.frombuffer(self.source.bytes_at(start, size), self.header, 1)[0])
        if nbytes % dtype.itemsize:
            raise Damaged(f"an appended array of {nbytes:,} bytes, not a whole number of {dtype.itemsize}-byte values")
        return self.source.array_at(start + size, dtype, nbytes // dtype.itemsize)

    def _binary(self, text: str, dtype) -> np.ndarray:
        size = self.header.itemsize
        if self.compressor:
            # The block table is base64-encoded on its own, then the blocks.
            first = base64.b64decode(text[: _base64_chars(3 * size)])
            blocks = int(np.frombuffer(first, self.header, 1)[0])
            head_chars = _base64_chars((3 + blocks) * size)
            return self._inflate(self._table(base64.b64decode(text[:head_chars])),
                                 base64.b64decode(text[head_chars:]), dtype)
        decoded = base64.b64decode(text)
        nbytes = int(np.frombuffer(decoded, self.header, 1)[0]) if len(decoded) >= size else -1
        if nbytes < 0 or nbytes % dtype.itemsize or len(decoded) < size + nbytes:
            raise Damaged("a binary DataArray shorter than its header says")
        return np.frombuffer(decoded, dtype, nbytes // dtype.itemsize, size).copy()

    def _appended_base64(self, start: int, dtype) -> np.ndarray:
        size, source = self.header.itemsize, self.source
        if self.compressor:
            first = base64.b64decode(source.bytes_at(start, _base64_chars(3 * size)))
            blocks = int(np.frombuffer(first, self.header, 1)[0])
            head_chars = _base64_chars((3 + blocks) * size)
            table = self._table(base64.b64decode(source.bytes_at(start, head_chars)))
            body = source.bytes_at(start + head_chars, _base64_chars(int(table[3:].sum())))
            return self._inflate(table, base64.b64decode(body), dtype)
        head_chars = _base64_chars(size)
        head = source.bytes_at(start, head_chars)
        if head.endswith(b"="):  # the byte count encoded on its own (padded), then the data
            nbytes = int(np.frombuffer(base64.b64decode(head), self.header, 1)[0])
            decoded = base64.b64decode(source.bytes_at(start + head_chars, _base64_chars(nbytes)))
            return np.frombuffer(decoded, dtype, nbytes // dtype.itemsize).copy()
        nbytes = int(np.frombuffer(base64.b64decode(source.bytes_at(start, _base64_chars(3 * size))),
                                   self.header, 1)[0])
        decoded = base64.b64decode(source.bytes_at(start, _base64_chars(size + nbytes)))
        if len(decoded) < size + nbytes:
            raise Damaged("it ends inside an appended array (truncated)")
        return np.frombuffer(decoded, dtype, nbytes // dtype.itemsize, size).copy()


def _base64_chars(nbytes: int) -> int:
    return -(-nbytes // 3) * 4


_HEAD_BLOCK = 1 << 16
_COLLECTIONS = {"vtkMultiBlockDataSet", "vtkPartitionedDataSet", "vtkPartitionedDataSetCollection", "Collection",
                "PPolyData", "PUnstructuredGrid", "vtkOverlappingAMR", "vtkHierarchicalBoxDataSet"}


def _head(handle) -> tuple[bytes, re.Match | None, int]:
    """The XML before the appended data (the whole file when it has none), the AppendedData
    tag's match in it, and the offset where the appended data starts."""
    data = b""
    while True:
        block = handle.read(_HEAD_BLOCK)
        searched_from = max(0, len(data) - 64)
        data += block
        found = _APPENDED.search(data, searched_from)
        if found:
            return data, found, found.end()
        if not block:
            return data, None, -1


def read_vtk_xml(path) -> Cells:
    """The points and cells of a VTK XML PolyData or UnstructuredGrid file, every piece, in any
    encoding (see the module's doc). Raises Damaged for a file that contradicts itself."""
    path = Path(path)
    with open(path, "rb") as handle:
        data, found, appended_at = _head(handle)
        if found:
            head = data[: found.start()] + b"</VTKFile>"
            encoding = (re.search(rb'encoding="([^"]*)"', found.group(1)) or [b"", b"raw"])[1].decode()
        else:
            head, encoding = data, "raw"
        del data
        try:
            root = ElementTree.fromstring(head)
        except ElementTree.ParseError as exc:
            raise Damaged(f"not well-formed XML ({exc})") from None
        kind = root.get("type")
        if root.tag == "VTKFile" and kind in _COLLECTIONS:
            raise Damaged(f"a VTK XML {kind}: a list of other files, not a mesh (read those one by one)")
        if root.tag != "VTKFile" or kind not in ("PolyData", "UnstructuredGrid"):
            raise NotNative(f"a VTK XML {kind or root.tag} file, not PolyData or UnstructuredGrid")
        arrays = _Arrays(root, _File(handle) if found else None, appended_at, encoding, str(path))
        return _cells_of(root, kind, arrays, str(path))


def _cells_of(root, kind: str, arrays: _Arrays, where: str) -> Cells:
    points, blocks, base = [], [], 0
    for piece in root.iter("Piece"):
        n_points = int(piece.get("NumberOfPoints", "0"))
        point_array = piece.find("Points/DataArray")
        if n_points and point_array is None:
            raise Damaged("a piece with points but no Points array")
        if n_points:
            components = int(point_array.get("NumberOfComponents", "3"))
            xyz = arrays.read(point_array, n_points * components).reshape(n_points, components)
            points.append(xyz[:, :3] if components >= 3 else np.pad(xyz, ((0, 0), (0, 3 - components))))
        if kind == "PolyData":
            for section, name in (("Verts", "poly_vertex"), ("Lines", "poly_line"), ("Strips", "triangle_strip"),
                                  ("Polys", "polygon")):
                count = int(piece.get(f"NumberOf{section}", "0"))
                if count:
                    connectivity, offsets = _cell_arrays(arrays, piece, section, count)
                    blocks.append(Block(name, connectivity + base if base else connectivity, offsets))
        else:
            count = int(piece.get("NumberOfCells", "0"))
            if count:
                connectivity, offsets = _cell_arrays(arrays, piece, "Cells", count)
                types = arrays.read(_named(piece, "Cells", "types"), count)
                for block in blocks_of_vtk_cells(connectivity, offsets, types, where):
                    if base:
                        block.data = block.data + base
                    blocks.append(block)
        base += n_points
    if not points:
        return Cells(np.zeros((0, 3), dtype=np.float32), blocks)
    return Cells(points[0] if len(points) == 1 else np.concatenate(points), blocks)


def _named(piece, section: str, name: str):
    for element in piece.iterfind(f"{section}/DataArray"):
        if element.get("Name") == name:
            return element
    raise Damaged(f"no {section} {name} array")


def _cell_arrays(arrays: _Arrays, piece, section: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = arrays.read(_named(piece, section, "offsets"), count)
    connectivity = arrays.read(_named(piece, section, "connectivity"))
    if len(offsets) and (int(offsets[-1]) != len(connectivity) or offsets[0] < 0):
        raise Damaged(f"the {section} offsets end at {int(offsets[-1]):,}, the connectivity holds "
                      f"{len(connectivity):,}")
    return connectivity, offsets


_COMPRESS_HELP = "zlib-compress the appended data (smaller, slower)"
register_builtin(
    Writer(
        name="vtp",
        extensions=(".vtp",),
        write=write_vtp,
        checks_values=True,
        modes=("binary",),
        options={"compress": _COMPRESS_HELP},
        description="VTK XML PolyData; ParaView",
    )
)
register_builtin(
    Writer(
        name="vtu",
        extensions=(".vtu",),
        write=write_vtu,
        checks_values=True,
        accepts=(SURFACE, VOLUME),
        modes=("binary",),
        options={"compress": _COMPRESS_HELP},
        description="VTK XML UnstructuredGrid; ParaView, FEniCS tools",
    )
)
