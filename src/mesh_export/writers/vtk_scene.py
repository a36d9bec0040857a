"""VTK multiblock scenes (``.vtm``): a block per cell, named by its root id, holding its surface
(a ``.vtp`` with the compartment and path-distance cell data) and its synapses (a ``.vtp`` of
points with point data ``direction`` 1 input / 2 output, ``partner``, ``synapse_id``, ``size``
and ``tag`` 0 none / 1 soma / 2 shaft / 3 spine). ParaView opens the ``.vtm`` and lists the
blocks by name.

The pieces go in a folder named after the ``.vtm`` beside it, written under a temporary name
and renamed into place before the ``.vtm`` that names them is (which the caller renames last).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from mesh_export.core.atomic import intended_name
from mesh_export.core.synapses import TAGS
from mesh_export.errors import OutputError
from mesh_export.model import SCENE, SYNAPSE_POINTS
from mesh_export.writers._mesh import provenance_line
from mesh_export.writers.gltf_scene import as_scene
from mesh_export.writers.registry import SURFACE, Writer, register_builtin
from mesh_export.writers.vtk_xml import write_vtp

__all__ = ["write_vtm", "read_vtm", "DIRECTION_CODES", "TAG_CODES"]

DIRECTION_CODES = {"input": 1, "output": 2}
TAG_CODES = {tag: k + 1 for k, tag in enumerate(TAGS)}


def _points_vtp(points: dict, path: Path, comment: str) -> None:
    positions = np.ascontiguousarray(points["positions"], dtype="<f4").reshape(-1, 3)
    n = len(positions)
    arrays = [  # (section, name, bytes, vtk type, components)
        ("PointData", "direction", np.array([DIRECTION_CODES.get(str(d), 0) for d in points["direction"]], "|u1"),
         "UInt8", 1),
        ("PointData", "partner", np.asarray(points["partner"], "<i8"), "Int64", 1),
        ("PointData", "synapse_id", np.asarray(points["id"], "<i8"), "Int64", 1),
        ("PointData", "size", np.asarray(points["size"], "<f4"), "Float32", 1),
        ("PointData", "tag", np.array([TAG_CODES.get(str(t), 0) for t in points["tag"]], "|u1"), "UInt8", 1),
        ("Points", "Points", positions, "Float32", 3),
        ("Verts", "connectivity", np.arange(n, dtype="<i8"), "Int64", 1),
        ("Verts", "offsets", np.arange(1, n + 1, dtype="<i8"), "Int64", 1),
    ]
    sections: dict[str, list[str]] = {}
    blobs, offset = [], 0
    for section, name, values, kind, components in arrays:
        data = np.ascontiguousarray(values).tobytes()
        sections.setdefault(section, []).append(
            f'<DataArray type="{kind}" Name="{name}" '
            + (f'NumberOfComponents="{components}" ' if components > 1 else "")
            + f'format="appended" offset="{offset}"/>')
        blobs += [np.uint64(len(data)).tobytes(), data]
        offset += 8 + len(data)
    head = ('<?xml version="1.0"?>\n'
            f"<!-- {comment} -->\n"
            '<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n<PolyData>\n'
            f'<Piece NumberOfPoints="{n}" NumberOfVerts="{n}" NumberOfLines="0" NumberOfStrips="0" NumberOfPolys="0">\n'
            f'<PointData Scalars="direction">{"".join(sections["PointData"])}</PointData>\n'
            f'<Points>{"".join(sections["Points"])}</Points>\n'
            f'<Verts>{"".join(sections["Verts"])}</Verts>\n'
            '</Piece>\n</PolyData>\n<AppendedData encoding="raw">\n_')
    with open(path, "xb") as handle:
        handle.write(head.encode("ascii"))
        for blob in blobs:
            handle.write(blob)
        handle.write(b"\n</AppendedData>\n</VTKFile>\n")


def _make_room(folder: Path) -> None:
    """Remove an earlier scene's pieces folder; refuse one that holds anything else."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir() or any(
            not (p.is_file() and p.suffix == ".vtp") for p in folder.iterdir()):
        raise OutputError(f"{folder} is in the way of the scene's pieces and holds other files; not replacing it")
    shutil.rmtree(folder)


def write_vtm(data, path, compress: bool = False) -> None:
    scene = as_scene(data)
    target = Path(path).parent / intended_name(path)
    folder_name = target.stem
    final = target.parent / folder_name
    work = target.parent / f".{folder_name}.{secrets.token_hex(8)}.part"
    work.mkdir()
    comment = provenance_line(scene.cells[0]) if scene.cells else "mesh-export"
    blocks = []
    try:
        for index, cell in enumerate(scene.cells):
            name = str((getattr(cell, "metadata", None) or {}).get("root_id", f"cell_{index}"))
            datasets = [("surface", f"{name}.vtp")]
            write_vtp(cell, work / f"{name}.vtp", compress=compress)
            points = (getattr(cell, "metadata", None) or {}).get(SYNAPSE_POINTS)
            if points and len(points.get("positions", ())):
                _points_vtp(points, work / f"{name}_synapses.vtp", comment)
                datasets.append(("synapses", f"{name}_synapses.vtp"))
            entries = "".join(f'<DataSet index="{k}" name={quoteattr(label)} file={quoteattr(folder_name + "/" + file)}/>\n'
                              for k, (label, file) in enumerate(datasets))
            blocks.append(f'<Block index="{index}" name={quoteattr(name)}>\n{entries}</Block>\n')
        _make_room(final)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    text = ('<?xml version="1.0"?>\n'
            f"<!-- {comment} -->\n"
            '<VTKFile type="vtkMultiBlockDataSet" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n'
            f'<vtkMultiBlockDataSet>\n{"".join(blocks)}</vtkMultiBlockDataSet>\n</VTKFile>\n')
    with open(path, "xb") as handle:
        handle.write(text.encode())


def read_vtm(path):
    """The points and cells (``core.cells.Cells``) of every dataset a ``.vtm`` names (VTK XML
    pieces, paths relative to it), as one: a scene's surfaces together, its synapse points (VTK
    vertices) dropped and counted as any point cells are."""
    from xml.etree import ElementTree

    from mesh_export.core.cells import Block, Cells
    from mesh_export.errors import InputError
    from mesh_export.writers._read import NotNative
    from mesh_export.writers.vtk_xml import read_vtk_xml

    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise InputError(f"{path}: not a VTK multiblock file ({exc})") from None
    if root.find(".//vtkMultiBlockDataSet") is None and root.tag != "vtkMultiBlockDataSet":
        raise InputError(f"{path}: not a VTK multiblock file (no vtkMultiBlockDataSet)")
    files = [element.get("file") for element in root.iter("DataSet") if element.get("file")]
    if not files:
        raise InputError(f"{path}: a multiblock that names no dataset files")
    points, blocks, base = [], [], 0
    for name in files:
        piece = path.parent / name
        if not piece.is_file():
            raise InputError(f"{path}: names {name}, which is not there")
        try:
            cells = read_vtk_xml(piece)
        except NotNative as exc:  # a piece the native reader leaves (lz4, structured grids): VTK's
            from mesh_export.writers._vtk_library import read_with_vtk

            cells = read_with_vtk(piece, str(exc))
        points.append(np.asarray(cells.points, dtype=np.float64))
        blocks += [Block(block.name, np.asarray(block.data) + base if block.data.size else block.data, block.offsets)
                   for block in cells.blocks]
        base += len(cells.points)
    return Cells(np.concatenate(points) if points else np.zeros((0, 3)), blocks)


register_builtin(Writer("vtm", (".vtm",), write_vtm, accepts=(SURFACE, SCENE), modes=("binary",),
                options={"compress": "zlib-compress the surfaces' appended data"},
                description="VTK multiblock: a block per cell (surface with compartments, synapse points); ParaView"))
