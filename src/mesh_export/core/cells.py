"""Cells of any kind (VTK's and meshio's names) reduced to what mesh-export holds: surface
triangles, or linear volume cells; and the figures of a volume mesh (volume, boundary).

Every reader that meets mixed cells (VTK XML and legacy, meshio's formats) hands its blocks
here, so a pixel, a triangle strip or a ``wedge15`` means the same whichever file it came
from. Quadratic and higher-order cells keep their corners (every format lists them first);
lines and points are dropped and counted; what cannot be mapped is refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from mesh_export.errors import InputError, InvalidMeshError

# VTK's cell type ids (vtkCellType.h) -> meshio's names, which the rest of this module speaks.
VTK_CELL_NAMES = {
    0: "empty", 1: "vertex", 2: "poly_vertex", 3: "line", 4: "poly_line", 5: "triangle",
    6: "triangle_strip", 7: "polygon", 8: "pixel", 9: "quad", 10: "tetra", 11: "voxel",
    12: "hexahedron", 13: "wedge", 14: "pyramid", 15: "penta_prism", 16: "hexa_prism",
    21: "line3", 22: "triangle6", 23: "quad8", 24: "tetra10", 25: "hexahedron20", 26: "wedge15",
    27: "pyramid13", 28: "quad9", 29: "hexahedron27", 30: "quad6", 31: "wedge12", 32: "wedge18",
    33: "hexahedron24", 34: "triangle7", 35: "line4", 36: "quadratic_polygon", 37: "pyramid14",
    42: "polyhedron", 68: "lagrange_curve", 69: "lagrange_triangle", 70: "lagrange_quad",
    71: "lagrange_tetra", 72: "lagrange_hexahedron", 73: "lagrange_wedge", 74: "lagrange_pyramid",
}
# Nodes of each fixed-size VTK cell (the variable ones, polygons, strips and high-order
# Lagrange cells, take theirs from the offsets).
VTK_CELL_SIZES = {1: 1, 3: 2, 5: 3, 8: 4, 9: 4, 10: 4, 11: 8, 12: 8, 13: 6, 14: 5, 21: 3, 22: 6, 23: 8,
                  24: 10, 25: 20, 26: 15, 27: 13, 28: 9, 29: 27, 30: 6, 31: 12, 32: 18, 33: 24, 34: 7,
                  35: 4, 37: 14}

# Surface cells: name -> (corners kept, reordering of them into a polygon's order).
_SURFACE = {"triangle": 3, "triangle6": 3, "triangle7": 3, "lagrange_triangle": 3,
            "quad": 4, "quad8": 4, "quad9": 4, "quad6": 4, "lagrange_quad": 4, "pixel": 4}
_PIXEL_TRIANGLES = [0, 1, 2, 1, 3, 2]  # a pixel's corners go along x, then y (as a quad: 0, 1, 3, 2)
# Volume cells: name -> the linear cell its corners make.
_VOLUME = {"tetra": "tetra", "tetra10": "tetra", "lagrange_tetra": "tetra",
           "hexahedron": "hexahedron", "hexahedron20": "hexahedron", "hexahedron24": "hexahedron",
           "hexahedron27": "hexahedron", "lagrange_hexahedron": "hexahedron", "voxel": "hexahedron",
           "wedge": "wedge", "wedge12": "wedge", "wedge15": "wedge", "wedge18": "wedge", "lagrange_wedge": "wedge",
           "pyramid": "pyramid", "pyramid13": "pyramid", "pyramid14": "pyramid", "lagrange_pyramid": "pyramid"}
_VOXEL_ORDER = [0, 1, 3, 2, 4, 5, 7, 6]
VOLUME_CELLS = ("tetra", "hexahedron", "wedge", "pyramid")
_CORNERS = {"tetra": 4, "hexahedron": 8, "wedge": 6, "pyramid": 5}
# Lines and points: dropped from a surface or volume and counted.
_DROPPED = {"vertex", "poly_vertex", "line", "poly_line", "line3", "line4", "lagrange_curve"}
# The faces of each linear volume cell, any way round (boundary faces are turned outwards by
# their cell's centre, so the conventions of VTK, Gmsh and others for wedges need not agree).
_FACES = {
    "tetra": ([[0, 1, 2], [0, 1, 3], [1, 2, 3], [0, 2, 3]], []),
    "pyramid": ([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]], [[0, 1, 2, 3]]),
    "wedge": ([[0, 1, 2], [3, 4, 5]], [[0, 1, 4, 3], [1, 2, 5, 4], [2, 0, 3, 5]]),
    "hexahedron": ([], [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]]),
}
_HIGHER_ORDER = re.compile(r"^(tetra|hexahedron|wedge|pyramid|triangle|quad|line)\d+$")
_MESHIO_LAGRANGE = {"VTK_LAGRANGE_CURVE": "line", "VTK_LAGRANGE_TRIANGLE": "triangle",
                    "VTK_LAGRANGE_QUADRILATERAL": "quad", "VTK_LAGRANGE_TETRAHEDRON": "tetra",
                    "VTK_LAGRANGE_HEXAHEDRON": "hexahedron", "VTK_LAGRANGE_WEDGE": "wedge",
                    "VTK_LAGRANGE_PYRAMID": "pyramid"}


def _known(name: str) -> str:
    """A cell name as this module's tables know it: meshio's higher-order names ("tetra20",
    "hexahedron64", "VTK_LAGRANGE_WEDGE") by their linear cell, whose corners they list first."""
    if name in _VOLUME or name in _SURFACE or name in _DROPPED:
        return name
    if name in _MESHIO_LAGRANGE:
        return _MESHIO_LAGRANGE[name]
    match = _HIGHER_ORDER.match(name)
    return match.group(1) if match else name


def is_volume_cell(name: str) -> bool:
    return _known(name) in _VOLUME


@dataclass
class Block:
    """Cells of one type: ``data`` (n, k), or for cells of varying size (polygons, strips) the
    flat ``data`` with ``offsets`` (each cell's end, as VTK stores them)."""

    name: str
    data: np.ndarray
    offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) if self.offsets is not None else len(self.data)


@dataclass
class Cells:
    """What a file's cells hold: points and blocks of cells, as read."""

    points: np.ndarray
    blocks: list[Block] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for block in self.blocks:
            found[block.name] = found.get(block.name, 0) + len(block)
        return found

    def is_volume(self) -> bool:
        return any(is_volume_cell(block.name) and len(block) for block in self.blocks)


def blocks_of_vtk_cells(connectivity: np.ndarray, offsets: np.ndarray, types: np.ndarray,
                        where: str) -> list[Block]:
    """An unstructured grid's cells (VTK's connectivity, offsets (ends) and types) as blocks,
    a block per type."""
    types = np.asarray(types)
    if types.dtype.kind not in "iu":
        types = types.astype(np.int64)
    offsets = np.asarray(offsets)
    if offsets.dtype.kind not in "iu":
        offsets = offsets.astype(np.int64)
    if len(types) != len(offsets):
        raise InputError(f"{where}: {len(types):,} cell types for {len(offsets):,} cells")
    steps = np.diff(offsets)
    if len(offsets) and (offsets[-1] > len(connectivity) or (steps < 0).any() or offsets[0] < 0):
        raise InputError(f"{where}: cell offsets run outside the connectivity array")
    if len(types) and (types == types[0]).all():
        codes = types[:1].astype(np.int64)  # one type of cell (np.bincount would widen 9M types to int64)
    else:
        codes = np.unique(types)
    size = VTK_CELL_SIZES.get(int(codes[0])) if len(codes) == 1 else None
    if size is not None and len(connectivity) == size * len(offsets) and offsets[0] == size and \
            (steps == size).all():
        # One type of cell, each after the other (a surface we wrote): the connectivity as it is.
        return [Block(VTK_CELL_NAMES[int(codes[0])], connectivity.reshape(-1, size))]
    del steps
    offsets = offsets.astype(np.int64, copy=False)
    blocks = []
    starts = np.empty_like(offsets)
    if len(offsets):
        starts[0] = 0
        starts[1:] = offsets[:-1]
    for code in codes.tolist():
        name = VTK_CELL_NAMES.get(code)
        if name is None:
            raise InputError(f"{where}: VTK cell type {code} is not one mesh-export knows")
        chosen = np.flatnonzero(types == code)
        size = VTK_CELL_SIZES.get(code)
        sizes = offsets[chosen] - starts[chosen]
        if size is not None and not (sizes == size).all():
            raise InputError(f"{where}: a {name} cell with {int(sizes[sizes != size][0])} points, not {size}")
        if size is not None:
            index = starts[chosen][:, None] + np.arange(size)
            blocks.append(Block(name, connectivity[index]))
        else:
            flat = connectivity[np.repeat(starts[chosen], sizes) + _ranges(sizes)]
            blocks.append(Block(name, flat, np.cumsum(sizes)))
    return blocks


def _ranges(sizes: np.ndarray) -> np.ndarray:
    """0..s-1 for each size, one after another."""
    total = int(sizes.sum())
    return np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def blocks_of_meshio(mesh) -> list[Block]:
    """A meshio.Mesh's cell blocks (meshio's names; polygons as meshio gives them: one block per
    corner count)."""
    blocks = []
    for block in mesh.cells:
        data = block.data
        if isinstance(data, list):  # polyhedra: a list of faces per cell
            blocks.append(Block(block.type, np.zeros((len(data), 0), dtype=np.int64)))
            continue
        name = "polygon" if block.type.startswith("polygon") else block.type
        blocks.append(Block(name, np.asarray(data)))
    return blocks


# ---------------------------------------------------------------------------- surfaces

def _fan(indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    fans = counts - 2
    polygon = np.repeat(np.arange(len(counts)), fans)
    corner = np.arange(len(polygon)) - np.repeat(np.cumsum(fans) - fans, fans) + 1
    first = starts[polygon]
    return np.stack([indices[first], indices[first + corner], indices[first + corner + 1]], axis=1)


def _strips(indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """VTK's decomposition of triangle strips: triangle i of a strip is (i, i+1, i+2), its odd
    ones (i+1, i, i+2), so that every triangle keeps the strip's winding."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    each = counts - 2
    strip = np.repeat(np.arange(len(counts)), each)
    step = np.arange(len(strip)) - np.repeat(np.cumsum(each) - each, each)
    first = starts[strip] + step
    odd = (step % 2).astype(bool)
    a = np.where(odd, first + 1, first)
    b = np.where(odd, first, first + 1)
    return np.stack([indices[a], indices[b], indices[first + 2]], axis=1)


def triangles_of(cells: Cells, where: str) -> tuple[np.ndarray, dict[str, int]]:
    """The triangles of ``cells``' surface cells (see the module's doc) and the count of
    cells dropped, by type. Volume cells are not surfaces: ask ``boundary`` for theirs."""
    pieces, dropped = [], {}
    for block in cells.blocks:
        name, data = _known(block.name), block.data
        if len(block) == 0:
            continue
        if name in _DROPPED or name == "empty":
            dropped[name] = dropped.get(name, 0) + len(block)
        elif name in _SURFACE:
            corners = data[:, :_SURFACE[name]]
            if name == "pixel":  # split along its 1-2 diagonal, as VTK splits it
                pieces.append(corners[:, _PIXEL_TRIANGLES].reshape(-1, 3))
            else:
                pieces.append(corners if corners.shape[1] == 3 else _fan(corners.ravel(), np.full(len(corners), 4)))
        elif name in ("polygon", "triangle_strip", "quadratic_polygon"):
            if block.offsets is None:  # meshio's fixed-size polygon block
                counts = np.full(len(data), data.shape[1] if data.ndim == 2 else 0)
                flat = data.ravel()
            else:
                offsets, flat = block.offsets, data
                if (name == "polygon" and len(flat) == 3 * len(offsets) and offsets[0] == 3
                        and (np.diff(offsets) == 3).all()):
                    pieces.append(flat.reshape(-1, 3))  # triangles only: no fan to make
                    continue
                counts = np.diff(offsets.astype(np.int64, copy=False), prepend=0)
            if name == "quadratic_polygon":  # corners first, then the edge midpoints
                starts = np.cumsum(counts) - counts
                counts = counts // 2
                flat = flat[np.repeat(starts, counts) + _ranges(counts)]
            if len(counts) and counts.min() < 3:
                raise InputError(f"{where}: a {name.replace('_', ' ')} with {int(counts.min())} points")
            pieces.append(_strips(flat, counts) if name == "triangle_strip" else _fan(flat, counts))
        elif name not in _VOLUME:
            raise InputError(f"{where}: {name.replace('_', ' ')} cells cannot be read as a surface")
    if not pieces:
        return np.zeros((0, 3), dtype=np.int32), dropped
    triangles = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    return triangles.astype(np.int32 if len(cells.points) < 2**31 else np.int64, copy=False), dropped


# ---------------------------------------------------------------------------- volumes

def volume_blocks(cells: Cells, where: str) -> tuple[list[tuple[str, np.ndarray]], dict[str, int]]:
    """The volume cells of ``cells`` as linear cells (corners of quadratic ones; voxels as
    hexahedra; collapsed hexahedra as the wedges, pyramids, tetrahedra they are), one block per type, and the count of the other cells (surface, line, point),
    which a volume mesh leaves aside, by type."""
    found: dict[str, list[np.ndarray]] = {}
    aside: dict[str, int] = {}
    for block in cells.blocks:
        if len(block) == 0:
            continue
        linear = _VOLUME.get(_known(block.name))
        if linear is None:
            if block.name in ("polyhedron", "penta_prism", "hexa_prism"):
                raise InputError(f"{where}: {block.name.replace('_', ' ')} cells cannot be mapped to "
                                 "tetrahedra, hexahedra, wedges or pyramids")
            aside[block.name] = aside.get(block.name, 0) + len(block)
            continue
        data = block.data[:, : _CORNERS[linear]]
        if block.name == "voxel":
            data = data[:, _VOXEL_ORDER]
        if linear == "hexahedron":
            for name, cells in _collapsed(data):
                found.setdefault(name, []).append(cells)
            continue
        found.setdefault(linear, []).append(data)
    return [(name, np.concatenate(found[name])) for name in VOLUME_CELLS if name in found], aside


def _collapsed(hexahedra: np.ndarray):
    """Hexahedra some of whose corners coincide, as formats without wedges, pyramids or tetrahedra
    store those (Tecplot's bricks): (0 1 2 2 3 4 5 5) or (0 1 4 3 2 2 5 5) is a wedge, (0 1 2 3 4 4 4 4) a pyramid,
    (0 1 2 2 3 3 3 3) a tetrahedron; the rest stay hexahedra."""
    h = hexahedra
    top = (h[:, 4] == h[:, 5]) & (h[:, 5] == h[:, 6]) & (h[:, 6] == h[:, 7])
    tetra = top & (h[:, 2] == h[:, 3])
    pyramid = top & ~tetra
    wedge = ~top & (h[:, 2] == h[:, 3]) & (h[:, 6] == h[:, 7])
    brick_wedge = ~top & ~wedge & (h[:, 4] == h[:, 5]) & (h[:, 6] == h[:, 7])  # meshio's Tecplot (0 1 4 3 2 2 5 5)
    hexahedron = ~(tetra | pyramid | wedge | brick_wedge)
    wedges = np.concatenate([h[wedge][:, [0, 1, 2, 4, 5, 6]], h[brick_wedge][:, [0, 1, 4, 3, 2, 6]]])
    return [(name, cells) for name, cells in (("hexahedron", h[hexahedron]), ("tetra", h[tetra][:, [0, 1, 2, 4]]),
                                             ("wedge", wedges), ("pyramid", h[pyramid][:, :5])) if len(cells)]


def cell_volumes(points: np.ndarray, name: str, data: np.ndarray) -> np.ndarray:
    """The volume of each linear cell: its boundary (quads split in two) against its centre."""
    points = np.asarray(points, dtype=np.float64)
    centre = points[data].mean(axis=1)
    triangles, quadrilaterals = _FACES[name]
    faces = list(triangles) + [q[:3] for q in quadrilaterals] + [[q[0], q[2], q[3]] for q in quadrilaterals]
    total = np.zeros(len(data))
    for face in faces:
        a, b, c = (points[data[:, k]] - centre for k in face)
        # The face tables are not all outward: each face's tetrahedron with the centre is taken
        # by its size, which for a convex cell is its outward part.
        total += np.abs(np.einsum("ij,ij->i", np.cross(a, b), c)) / 6.0
    return total


def boundary(points: np.ndarray, blocks) -> np.ndarray:
    """The triangles of a volume mesh's boundary: the faces used by one cell only, turned to face
    away from their cell's centre (quads split along their first diagonal)."""
    points = np.asarray(points)
    out = []
    for size in (3, 4):
        faces, centres = [], []
        for name, data in blocks:
            table = _FACES[name][0 if size == 3 else 1]
            if not table:
                continue
            centre = np.asarray(points[data], dtype=np.float64).mean(axis=1)
            for face in table:
                faces.append(data[:, face])
                centres.append(centre)
        if not faces:
            continue
        faces_all = np.concatenate(faces)
        centre_all = np.concatenate(centres)
        keys = np.sort(faces_all, axis=1)
        _, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
        once = first[counts == 1]
        faces_once, centre_once = faces_all[once], centre_all[once]
        triangles = faces_once if size == 3 else np.concatenate([faces_once[:, [0, 1, 2]], faces_once[:, [0, 2, 3]]])
        centre_tri = centre_once if size == 3 else np.concatenate([centre_once, centre_once])
        p = np.asarray(points[triangles], dtype=np.float64)
        normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        inward = np.einsum("ij,ij->i", normal, p.mean(axis=1) - centre_tri) < 0
        triangles[inward] = triangles[inward][:, [0, 2, 1]]
        out.append(triangles)
    if not out:
        return np.zeros((0, 3), dtype=np.int32)
    return np.concatenate(out).astype(np.int32 if len(points) < 2**31 else np.int64)


def check_volume_blocks(points: np.ndarray, blocks, where: str = "volume mesh") -> None:
    if not blocks or not sum(len(data) for _, data in blocks):
        raise InvalidMeshError(f"{where} has no volume cells")
    if not np.isfinite(np.asarray(points)).all():
        raise InvalidMeshError(f"{where} has non-finite points")
    for name, data in blocks:
        if data.min() < 0 or data.max() >= len(points):
            raise InvalidMeshError(f"{where}: {name} cells index points out of range")


def volume_figures(mesh) -> dict:
    """A volume mesh's (meshio.Mesh) cells by type, their count and total volume (quadratic
    cells by their corners)."""
    points = np.asarray(mesh.points)
    cells: dict[str, int] = {}
    volume = 0.0
    for block in mesh.cells:
        linear = _VOLUME.get(_known(block.type))
        if linear is None:
            continue
        data = np.asarray(block.data)[:, : _CORNERS[linear]]
        if block.type == "voxel":
            data = data[:, _VOXEL_ORDER]
        cells[block.type] = cells.get(block.type, 0) + len(data)
        volume += float(cell_volumes(points, linear, data).sum())
    return {"cells": cells, "elements": int(sum(cells.values())), "volume": volume}
