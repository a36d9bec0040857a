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
import re
import zlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from mesh_export.core.cells import Block, Cells, blocks_of_vtk_cells
from mesh_export.core.validate import SurfaceValues
from mesh_export.model import kind_of
from mesh_export.writers._layout import Rows, converted_rows, scratch_array, write_layout
from mesh_export.writers._mesh import provenance_line, triangles
from mesh_export.writers._read import Damaged, NotNative, read_into, text_numbers
from mesh_export.writers.registry import SURFACE, VOLUME, Writer, register

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
    if kind == "PolyData":
        piece = (
            f'<Piece NumberOfPoints="{n_vertices}" NumberOfVerts="0" NumberOfLines="0" '
            f'NumberOfStrips="0" NumberOfPolys="{n_faces}">\n'
            f"<Points>{declarations['Points']}</Points>\n"
            f"<Polys>{declarations['connectivity']}{declarations['offsets']}</Polys>\n"
        )
    else:
        piece = (
            f'<Piece NumberOfPoints="{n_vertices}" NumberOfCells="{n_faces}">\n'
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

_XML_TYPES = {"Int8": "i1", "UInt8": "u1", "Int16": "i2", "UInt16": "u2", "Int32": "i4", "UInt32": "u4",
              "Int64": "i8", "UInt64": "u8", "Float32": "f4", "Float64": "f8"}
_APPENDED = re.compile(rb"<AppendedData\b([^>]*)>\s*_")


class _Arrays:
    """Decodes the DataArrays of one VTK XML file (``data``: the whole file, writable)."""

    def __init__(self, root, data, appended_at: int, appended_encoding: str, where: str):
        self.where = where
        self.order = ">" if root.get("byte_order") == "BigEndian" else "<"
        self.header = np.dtype(self.order + ("u8" if root.get("header_type") == "UInt64" else "u4"))
        self.compressor = root.get("compressor") or None
        if self.compressor not in (None, "vtkZLibDataCompressor", "vtkLZMADataCompressor", "vtkLZ4DataCompressor"):
            raise Damaged(f"unknown compressor {self.compressor}")
        self.data, self.appended_at, self.appended_encoding = data, appended_at, appended_encoding

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
            values = self._binary(base64.b64decode("".join((element.text or "").split())), dtype, element)
        elif form == "appended":
            if self.appended_at < 0:
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

    def _table(self, buffer, at: int) -> tuple[np.ndarray, int]:
        """A compressed array's block table at ``at``: (table, bytes it takes)."""
        size = self.header.itemsize
        if len(buffer) < at + 3 * size:
            raise Damaged("it ends inside an array's header")
        blocks = int(np.frombuffer(buffer, self.header, 1, at)[0])
        if len(buffer) < at + (3 + blocks) * size:
            raise Damaged("it ends inside an array's block table")
        return np.frombuffer(buffer, self.header, 3 + blocks, at).astype(np.int64), (3 + blocks) * size

    def _inflate(self, table: np.ndarray, compressed, dtype) -> np.ndarray:
        blocks, self._block_size, last = int(table[0]), int(table[1]), int(table[2])
        sizes = table[3:]
        if int(sizes.sum()) > len(compressed):
            raise Damaged("it ends inside a compressed array")
        total = (blocks - 1) * self._block_size + (last or self._block_size) if blocks else 0
        out = np.empty(total, dtype=np.uint8)
        at = done = 0
        for size in sizes.tolist():
            piece = self._decompress(bytes(compressed[at : at + size]))
            out[done : done + len(piece)] = np.frombuffer(piece, np.uint8)
            at, done = at + size, done + len(piece)
        if done != total or total % dtype.itemsize:
            raise Damaged("a compressed array's blocks do not add up to its size")
        return out.view(dtype)

    def _raw(self, start: int, dtype) -> np.ndarray:
        data = self.data
        if self.compressor:
            table, used = self._table(data, start)
            return self._inflate(table, memoryview(data)[start + used :], dtype)
        if len(data) < start + self.header.itemsize:
            raise Damaged("it ends inside an array's header")
        nbytes = int(np.frombuffer(data, self.header, 1, start)[0])
        begin = start + self.header.itemsize
        if nbytes % dtype.itemsize or len(data) < begin + nbytes:
            raise Damaged("it ends inside an appended array (truncated)")
        return np.frombuffer(data, dtype, nbytes // dtype.itemsize, begin)

    def _binary(self, decoded: bytes, dtype, element) -> np.ndarray:
        if self.compressor:
            # The block table is base64-encoded on its own, then the blocks.
            text = "".join((element.text or "").split())
            first = base64.b64decode(text[: _base64_chars(3 * self.header.itemsize)])
            blocks = int(np.frombuffer(first, self.header, 1)[0])
            head_chars = _base64_chars((3 + blocks) * self.header.itemsize)
            table, _ = self._table(base64.b64decode(text[:head_chars]), 0)
            return self._inflate(table, base64.b64decode(text[head_chars:]), dtype)
        nbytes = int(np.frombuffer(decoded, self.header, 1)[0]) if len(decoded) >= self.header.itemsize else -1
        if nbytes < 0 or nbytes % dtype.itemsize or len(decoded) < self.header.itemsize + nbytes:
            raise Damaged("a binary DataArray shorter than its header says")
        return np.frombuffer(decoded, dtype, nbytes // dtype.itemsize, self.header.itemsize).copy()

    def _appended_base64(self, start: int, dtype) -> np.ndarray:
        data = self.data
        stop = _base64_end(data, start)
        if self.compressor:
            first = base64.b64decode(bytes(data[start : start + _base64_chars(3 * self.header.itemsize)]))
            blocks = int(np.frombuffer(first, self.header, 1)[0])
            head_chars = _base64_chars((3 + blocks) * self.header.itemsize)
            table, _ = self._table(base64.b64decode(bytes(data[start : start + head_chars])), 0)
            body_chars = _base64_chars(int(table[3:].sum()))
            body = base64.b64decode(bytes(data[start + head_chars : start + head_chars + body_chars]))
            return self._inflate(table, body, dtype)
        head = base64.b64decode(bytes(data[start : start + _base64_chars(self.header.itemsize)]))
        nbytes = int(np.frombuffer(head, self.header, 1)[0])
        chars = _base64_chars(self.header.itemsize + nbytes)
        if start + chars > stop:
            # Written with the header encoded on its own.
            head_chars = _base64_chars(self.header.itemsize)
            decoded = base64.b64decode(bytes(data[start + head_chars : start + head_chars + _base64_chars(nbytes)]))
            return np.frombuffer(decoded, dtype, nbytes // dtype.itemsize).copy()
        decoded = base64.b64decode(bytes(data[start : start + chars]))
        if len(decoded) < self.header.itemsize + nbytes:
            raise Damaged("it ends inside an appended array (truncated)")
        return np.frombuffer(decoded, dtype, nbytes // dtype.itemsize, self.header.itemsize).copy()


def _base64_chars(nbytes: int) -> int:
    return -(-nbytes // 3) * 4


def _base64_end(data, start: int) -> int:
    end = data.find(b"</AppendedData", start)
    return len(data) if end < 0 else end


def _file_bytes(path: Path) -> bytearray:
    size = path.stat().st_size
    data = bytearray(size)
    with open(path, "rb") as handle:
        if read_into(handle, np.frombuffer(data, np.uint8)) != size:
            raise Damaged("the file changed while it was read")
    return data


def read_vtk_xml(path) -> Cells:
    """The points and cells of a VTK XML PolyData or UnstructuredGrid file, every piece, in any
    encoding (see the module's doc). Raises Damaged for a file that contradicts itself."""
    path = Path(path)
    data = _file_bytes(path)
    found = _APPENDED.search(data)
    if found:
        head = bytes(data[: found.start()]) + b"</VTKFile>"
        encoding = (re.search(rb'encoding="([^"]*)"', found.group(1)) or [b"", b"raw"])[1].decode()
        appended_at = found.end()
    else:
        head, encoding, appended_at = bytes(data), "raw", -1
    try:
        root = ElementTree.fromstring(head)
    except ElementTree.ParseError as exc:
        raise Damaged(f"not well-formed XML ({exc})") from None
    kind = root.get("type")
    if root.tag != "VTKFile" or kind not in ("PolyData", "UnstructuredGrid"):
        raise NotNative(f"a VTK XML {kind or root.tag} file, not PolyData or UnstructuredGrid")
    arrays = _Arrays(root, data, appended_at, encoding, str(path))
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
            for section, name in (("Verts", "vertex"), ("Lines", "poly_line"), ("Strips", "triangle_strip"),
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
                for block in blocks_of_vtk_cells(connectivity, offsets, types, str(path)):
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
    offsets = arrays.read(_named(piece, section, "offsets"), count).astype(np.int64, copy=False)
    connectivity = arrays.read(_named(piece, section, "connectivity"))
    if not connectivity.dtype.isnative:
        connectivity = connectivity.astype(connectivity.dtype.newbyteorder("="))
    if len(offsets) and (int(offsets[-1]) != len(connectivity) or offsets[0] < 0):
        raise Damaged(f"the {section} offsets end at {int(offsets[-1]):,}, the connectivity holds "
                      f"{len(connectivity):,}")
    return connectivity, offsets


_COMPRESS_HELP = "zlib-compress the appended data (smaller, slower)"
register(
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
register(
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
