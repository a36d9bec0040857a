"""VTK XML: PolyData (``.vtp``) and UnstructuredGrid (``.vtu``), raw appended binary.

Arrays go in one appended block, each prefixed by its UInt64 byte count; with
``compress=True`` each array is zlib-compressed in 1 MiB blocks behind the block table
VTK's vtkZLibDataCompressor expects.
"""

from __future__ import annotations

import zlib

import numpy as np

from mesh_export.core.validate import SurfaceValues
from mesh_export.model import FACE_ATTRIBUTES, element_attributes, kind_of
from mesh_export.writers._layout import Rows, converted_rows, scratch_array, write_layout
from mesh_export.writers._mesh import provenance_line, triangles
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
    cells = _cell_data_block(cell_data, declarations)
    if kind == "PolyData":
        piece = (
            f'<Piece NumberOfPoints="{n_vertices}" NumberOfVerts="0" NumberOfLines="0" '
            f'NumberOfStrips="0" NumberOfPolys="{n_faces}">\n{cells}'
            f"<Points>{declarations['Points']}</Points>\n"
            f"<Polys>{declarations['connectivity']}{declarations['offsets']}</Polys>\n"
        )
    else:
        piece = (
            f'<Piece NumberOfPoints="{n_vertices}" NumberOfCells="{n_faces}">\n{cells}'
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
